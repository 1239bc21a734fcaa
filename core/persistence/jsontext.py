"""JSON read back from run files and the control socket, which someone else may have written.

``json.loads`` raises ``RecursionError`` (not ``ValueError``) for a document nested a few thousand
levels deep: one line of ``[[[[...`` planted in ``events.jsonl`` or a checkpoint would escape every
``except ValueError`` and end the command in a traceback. Here every malformed input is a ValueError.
"""

from __future__ import annotations

import json
from typing import Any


def parse_json(data: str | bytes, *, unique_keys: bool = False) -> Any:
    """``json.loads``, with a document nested too deeply reported as a ``ValueError`` like any other.

    ``unique_keys`` refuses an object that names a key twice (JSON lets the last one win silently):
    for requests, where what a reader checks and what is acted on must be the same thing.
    """
    try:
        return json.loads(data, object_pairs_hook=_unique if unique_keys else None)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {key!r} appears twice")
        result[key] = value
    return result
