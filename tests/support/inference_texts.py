"""Sentences shared by the inference tests."""

from __future__ import annotations

SENTENCES = [
    "Return the number of items in a container.",
    "x",
    "If the optional argument is given, it is used as the default value for missing keys, "
    "and the returned mapping is a new object each time the function is called.",
    "Decode the bytes using the codec registered for encoding.",
]

# Sentences with one or several [MASK]s, for fill-mask.
MASKED_TEXTS = [
    "Return the [MASK] of the file.",
    "If the [MASK] is not found, raise a ValueError.",
    "This [MASK] returns a new [MASK] object.",
]
