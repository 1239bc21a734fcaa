"""Reusable widgets of the run screens; each carries its own DEFAULT_CSS."""
