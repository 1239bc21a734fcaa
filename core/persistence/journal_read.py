"""Reading ``events.jsonl`` back: a stream of JSON objects, kinds filtered, junk lines skipped.

Apart from the writer (:mod:`core.persistence.journal`) so that a reader (``verify``, a resume's
look at what was billed) loads no event classes: lines are read as plain dicts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from core.persistence.atomic import open_in_run
from core.persistence.jsontext import parse_json

MAX_LINE_BYTES = 16 * 1024 * 1024
"""A journal line longer than this is no event this product writes (text is flushed every
:data:`core.persistence.journal.FLUSH_CHARS`): it is skipped unread, so no line can make a reader
hold the file in memory."""


def read_journal(path: Path, kinds: Collection[str] | None = None) -> list[dict[str, Any]]:
    """The events of a journal; a line that is not a JSON object (a crash mid-write, tampering) is skipped.

    With ``kinds``, only events of those kinds (a line that cannot be one is not even parsed: a
    long run's journal is mostly streamed text).

    Raises :class:`~core.persistence.atomic.UnsafePathError` when the journal is a link or not a file.
    """
    return list(iter_journal(path, kinds))


def iter_journal(path: Path, kinds: Iterable[str] | None = None) -> Iterator[dict[str, Any]]:
    """The journal's events one at a time, read as a stream (memory bounded whatever its size).

    With ``kinds``, only events of those kinds are parsed and yielded: a line that does not even
    mention one is passed over without decoding (most lines are streamed text).
    """
    if not os.path.lexists(path):
        return
    wanted = frozenset(kinds) if kinds is not None else None
    needles = [json.dumps(kind).encode() for kind in wanted] if wanted is not None else []
    fd = open_in_run(path, os.O_RDONLY, kind="journal")  # a link or a directory there: refused
    with os.fdopen(fd, "rb") as file:
        for line in _lines(file):
            if needles and not any(needle in line for needle in needles):
                continue
            try:
                event = parse_json(line.decode("utf-8", "replace"))
            except ValueError:
                continue
            if isinstance(event, dict) and (wanted is None or event.get("kind") in wanted):
                yield event


def _lines(file: BinaryIO) -> Iterator[bytes]:
    """The file's lines, each at most :data:`MAX_LINE_BYTES` (a longer one is skipped whole)."""
    while line := file.readline(MAX_LINE_BYTES):
        if len(line) < MAX_LINE_BYTES or line.endswith(b"\n"):
            yield line
            continue
        while (rest := file.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
            pass  # the rest of an over-long line
