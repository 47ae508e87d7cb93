"""End-to-end demos that run on a laptop CPU with text every Python ships."""
