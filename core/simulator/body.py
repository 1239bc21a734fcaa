"""A request body read as the API reads it: strict JSON, or the 400 saying why not.

Python's ``json`` is laxer than the API's parser and some of its failures are not ``ValueError``:
a document nested 100,000 deep raises ``RecursionError``; ``NaN`` and ``Infinity`` are accepted; a
lone surrogate escape (``"\\ud800"``) decodes to a string that cannot be encoded again, which
failed later, deep in the answer. Each was a 500 and a traceback, which makes a client retry a
request that can never succeed. Here each is the API's 400 ``invalid_request_error``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from core.simulator.errors import InvalidRequest

MAX_DEPTH = 64
"""Deeper than any real request (a tool's schema nests a few levels): a bound, not a feature."""
_PARSE_ERROR = "There was an error parsing the body of your request"
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def parse_body(raw: bytes) -> Any:
    """The JSON document in ``raw``; raises :class:`InvalidRequest` (400) for anything else."""
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise InvalidRequest(f"{_PARSE_ERROR}: JSON nested too deeply") from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise InvalidRequest(f"{_PARSE_ERROR}: invalid JSON ({exc})") from None
    _check_shape(body, strings=_SURROGATE_ESCAPE.search(raw) is not None)
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _check_shape(body: Any, *, strings: bool) -> None:
    """Depth within :data:`MAX_DEPTH`; with ``strings``, every string encodable (no lone surrogate)."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = [*value.keys(), *value.values()] if strings else value.values()
        elif isinstance(value, list):
            children = value
        else:
            if strings and isinstance(value, str):
                _encodable(value)
            continue
        if depth > MAX_DEPTH:
            raise InvalidRequest(f"{_PARSE_ERROR}: JSON nested more than {MAX_DEPTH} levels deep")
        stack.extend((child, depth + 1) for child in children)


def _encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest(
            f"{_PARSE_ERROR}: invalid JSON (a lone surrogate {text[exc.start]!r} at position {exc.start} "
            "of a string: not Unicode text)"
        ) from None
