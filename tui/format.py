"""Short, fixed-width renderings of money, counts, times and statuses shared by every widget."""

from __future__ import annotations

import time


def money(usd: float) -> str:
    return f"${usd:,.2f}"


def count(n: int) -> str:
    """1234 -> 1.2k, 1_900_000 -> 1.9M: token counts stay short in narrow meters."""
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return str(n)


def elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def approx_duration(seconds: float) -> str:
    """A projection is an estimate, so it is shown coarsely: ~45 s, ~12 min, ~3 h 21 min."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"~{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"~{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours >= 48:
        return f"~{hours // 24} days"
    return f"~{hours} h {minutes} min"


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 search``, ``2 searches``, ``0 turns``: the count with the word in the right number."""
    if n == 1:
        return f"{n} {word}"
    return f"{n} {words or (word + 'es' if word.endswith(('s', 'sh', 'ch', 'x')) else word + 's')}"


def clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def middle(text: str, width: int) -> str:
    """Cut from the middle: ``20261124-1002…ion-2026-3f2a`` keeps a run id's date and its suffix."""
    if len(text) <= width:
        return text
    if width < 3:
        return text[:width]
    tail = (width - 1) // 2
    return text[: width - 1 - tail] + "…" + text[-tail:]
