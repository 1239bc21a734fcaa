"""Per-model facts the simulator enforces: the context window."""

from __future__ import annotations

ONE_MILLION = 1_000_000
DEFAULT_CONTEXT_WINDOW = 200_000

# First matching prefix wins; unknown models get DEFAULT_CONTEXT_WINDOW.
_WINDOWS: tuple[tuple[str, int], ...] = (
    ("claude-haiku-4-5", 200_000),
    ("claude-sonnet-4-5", 200_000),
    ("claude-opus-4-5", 200_000),
    ("claude-opus-4-6", ONE_MILLION),
    ("claude-opus-4-7", ONE_MILLION),
    ("claude-opus-4-8", ONE_MILLION),
    ("claude-sonnet-4-6", ONE_MILLION),
)


def context_window(model: str, override: int | None = None) -> int:
    """The model's context window in tokens; ``override`` (from settings) wins."""
    if override is not None:
        return override
    for prefix, window in _WINDOWS:
        if model.startswith(prefix):
            return window
    parts = model.split("-")
    # claude-<family>-5, claude-<family>-5-5, ...: every 5.x model has a 1M window.
    if len(parts) >= 3 and parts[0] == "claude" and parts[2] == "5":
        return ONE_MILLION
    return DEFAULT_CONTEXT_WINDOW
