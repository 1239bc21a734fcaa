"""JSON read back from run files and the control socket, which someone else may have written.

``json.loads`` raises ``RecursionError`` (not ``ValueError``) for a document nested a few thousand
levels deep: one line of ``[[[[...`` planted in ``events.jsonl`` or a checkpoint would escape every
``except ValueError`` and end the command in a traceback. Here every malformed input is a ValueError.
"""

from __future__ import annotations

import json
from typing import Any


def parse_json(data: str | bytes) -> Any:
    """``json.loads``, with a document nested too deeply reported as a ``ValueError`` like any other."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
