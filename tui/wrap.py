"""Incremental word wrap for streamed text.

Textual's ``Log`` is the cheapest widget that can append to its last line, but it never wraps;
prose from a model arrives as long paragraphs, so the pane wraps as it writes. The wrapper keeps
only the current column, so feeding a stream piece by piece gives the same lines as wrapping it
whole (as long as pieces end on whitespace: the pane holds back a trailing partial word).
"""

from __future__ import annotations

import re

from rich.cells import cell_len

_TOKENS = re.compile(r"(\n|[ \t]+|[^\s]+|\s)")


class StreamWrapper:
    def __init__(self, width: int) -> None:
        self.width = max(8, width)
        self.column = 0
        self._soft_break = False  # the last break was ours: swallow the spaces that follow it

    def reset(self, width: int | None = None) -> None:
        if width is not None:
            self.width = max(8, width)
        self.column = 0
        self._soft_break = False

    def newline_if_needed(self) -> str:
        """Text that puts the cursor at the start of a line (for notes between paragraphs)."""
        if self.column == 0:
            return ""
        self.column, self._soft_break = 0, False
        return "\n"

    def feed(self, text: str) -> str:
        out: list[str] = []
        for token in _TOKENS.findall(text):
            if token == "\n":
                if not (self.column == 0 and self._soft_break):  # our break already ended the line
                    out.append("\n")
                self.column, self._soft_break = 0, False
            elif token.isspace():
                for _ in token.replace("\t", "    "):  # one by one, so how a run is split never matters
                    if self.column == 0 and self._soft_break:
                        continue
                    if self.column + 1 > self.width:
                        out.append("\n")
                        self.column, self._soft_break = 0, True
                        continue
                    out.append(" ")
                    self.column += 1
            else:
                self._write_word(token, out)
        return "".join(out)

    def _write_word(self, word: str, out: list[str]) -> None:
        width = cell_len(word)
        if self.column and self.column + width > self.width:
            out.append("\n")
            self.column, self._soft_break = 0, True
        while width > self.width:  # a URL longer than the pane: hard-split it
            head, word = _split_cells(word, self.width - self.column)
            out.append(head + "\n")
            self.column, self._soft_break = 0, True
            width = cell_len(word)
        out.append(word)
        self.column += width
        self._soft_break = False


def _split_cells(word: str, cells: int) -> tuple[str, str]:
    used = 0
    for index, char in enumerate(word):
        used += cell_len(char)
        if used > cells:
            return word[:index], word[index:]
    return word, ""


def wrap_all(text: str, width: int) -> str:
    return StreamWrapper(width).feed(text)
