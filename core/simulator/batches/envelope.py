"""What ``POST /v1/messages/batches`` and the list endpoint check before answering: the envelope only.

The API refuses a malformed batch at once (400 ``invalid_request_error``, field path first): no
``requests``, an empty or too long list, a request that is not ``{custom_id, params}``, a
``custom_id`` not matching ``^[a-zA-Z0-9_-]{1,64}$`` or used twice. What is inside ``params`` is
validated later, request by request, and an invalid one becomes an ``errored`` result
(``worker``), never a 400 of the whole batch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.simulator.errors import InvalidRequest

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
BATCH_FIELDS = frozenset({"requests"})
REQUEST_FIELDS = frozenset({"custom_id", "params"})
DEFAULT_PAGE = 20
MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One request of a batch: its caller's id and the Messages parameters, not yet validated."""

    custom_id: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PageQuery:
    """A list call's cursor: at most ``limit`` batches after ``after_id`` or before ``before_id``."""

    limit: int = DEFAULT_PAGE
    after_id: str | None = None
    before_id: str | None = None


def parse_batch(body: Any, max_requests: int) -> list[BatchRequest]:
    """The requests of a create body; raises :class:`InvalidRequest` naming the first bad field."""
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    extra = sorted(set(body) - BATCH_FIELDS)
    if extra:
        raise InvalidRequest(f"{extra[0]}: Extra inputs are not permitted")
    if "requests" not in body:
        raise InvalidRequest("requests: Field required")
    requests = body["requests"]
    if not isinstance(requests, list):
        raise InvalidRequest("requests: Input should be a valid list")
    if not requests:
        raise InvalidRequest("requests: List should have at least 1 item after validation, not 0")
    if len(requests) > max_requests:
        raise InvalidRequest(
            f"requests: List should have at most {max_requests} items after validation, not {len(requests)}"
        )
    parsed = [_request(i, item) for i, item in enumerate(requests)]
    first_index: dict[str, int] = {}
    for i, request in enumerate(parsed):
        earlier = first_index.setdefault(request.custom_id, i)
        if earlier != i:
            raise InvalidRequest(
                f"requests.{i}.custom_id: Duplicate custom_id '{request.custom_id}' (also requests.{earlier}"
                ".custom_id); each request in a batch needs a custom_id of its own"
            )
    return parsed


def _request(i: int, item: Any) -> BatchRequest:
    where = f"requests.{i}"
    if not isinstance(item, dict):
        raise InvalidRequest(f"{where}: Input should be a valid dictionary")
    extra = sorted(set(item) - REQUEST_FIELDS)
    if extra:
        raise InvalidRequest(f"{where}.{extra[0]}: Extra inputs are not permitted")
    for name in ("custom_id", "params"):
        if name not in item:
            raise InvalidRequest(f"{where}.{name}: Field required")
    custom_id, params = item["custom_id"], item["params"]
    if not isinstance(custom_id, str):
        raise InvalidRequest(f"{where}.custom_id: Input should be a valid string")
    if not CUSTOM_ID.match(custom_id):
        raise InvalidRequest(f"{where}.custom_id: String should match pattern '{CUSTOM_ID.pattern}'")
    if not isinstance(params, dict):
        raise InvalidRequest(f"{where}.params: Input should be a valid dictionary")
    return BatchRequest(custom_id, params)


def parse_page_query(query: Mapping[str, str]) -> PageQuery:
    """``limit`` (1 to 1000, default 20) and one of ``after_id`` / ``before_id``, as the API takes them."""
    raw = query.get("limit")
    limit = DEFAULT_PAGE
    if raw is not None:
        try:
            limit = int(raw)
        except ValueError:
            raise InvalidRequest(
                f"limit: Input should be a valid integer, unable to parse string as an integer: '{raw}'"
            ) from None
        if not 1 <= limit <= MAX_PAGE:
            bound = "greater than or equal to 1" if limit < 1 else f"less than or equal to {MAX_PAGE}"
            raise InvalidRequest(f"limit: Input should be {bound}")
    after_id, before_id = query.get("after_id") or None, query.get("before_id") or None
    if after_id is not None and before_id is not None:
        raise InvalidRequest("after_id: give either after_id or before_id, not both")
    return PageQuery(limit, after_id, before_id)
