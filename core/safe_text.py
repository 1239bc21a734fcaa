"""Text from files and configs, made safe to print: control characters shown, never obeyed.

A run id is a directory name and a program name comes from a YAML file; either may hold terminal
escape sequences (ESC, BEL, bidi overrides) that would recolour, retitle or hide output if printed
raw. :func:`printable` shows them as ``\\x1b``-style escapes instead.
"""

from __future__ import annotations

import unicodedata

_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def is_control(char: str, *, allow_whitespace: bool = False) -> bool:
    """True for characters a terminal acts on rather than shows (tab and newline optionally allowed)."""
    if allow_whitespace and char in "\t\n\r":
        return False
    return unicodedata.category(char) == "Cc" or char in _BIDI_CONTROLS


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control character replaced by its escape (``\\x1b``, ``\\u202e``).

    ``keep_newlines`` leaves line breaks alone, for multi-line messages.
    """
    if text.isprintable():
        return text
    return "".join(
        char.encode("unicode_escape").decode("ascii")
        if is_control(char) and not (keep_newlines and char == "\n")
        else char
        for char in text
    )


def first_control(text: str) -> str | None:
    """The first control character of ``text`` other than tab, newline and carriage return."""
    return next((char for char in text if is_control(char, allow_whitespace=True)), None)
