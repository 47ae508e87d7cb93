"""Helpers, fixtures and scripts shared by tests/unit and tests/integration."""
