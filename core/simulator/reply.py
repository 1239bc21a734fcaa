"""One Messages request answered: validated and counted (``prepare``), held to its model's context window
(``check_window``), then turned into a ``Turn`` (``compose``).

Shared by ``POST /v1/messages`` and the Message Batches worker, so a batch request is answered
exactly as the synchronous endpoint answers the same body (the server adds rate limits, faults and
pacing around it; a batch adds its larger server-loop limit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.config.simulator import SimulatorSettings
from core.simulator.caching import PromptCache, min_cacheable_tokens
from core.simulator.errors import InvalidRequest
from core.simulator.models import context_window
from core.simulator.responder import Turn, build_turn, request_digest
from core.simulator.tokens import Segment, prompt_segments
from core.simulator.validation import ParsedRequest, parse_request


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request that passed validation, its prompt counted, with the model's context window."""

    parsed: ParsedRequest
    segments: list[Segment]
    prompt_tokens: int
    window: int
    digest: bytes


def prepare(body: Any, settings: SimulatorSettings) -> Prepared:
    """Validate ``body`` as ``POST /v1/messages`` does; raises :class:`InvalidRequest` (a 4xx)."""
    parsed = parse_request(body)
    segments = prompt_segments(parsed.body)
    prompt_tokens = sum(s.tokens for s in segments)
    window = context_window(parsed.model, settings.context_window)
    return Prepared(parsed, segments, prompt_tokens, window, request_digest(parsed.body))


def check_window(prepared: Prepared) -> None:
    """The API's 400 for a prompt longer than the model's context window."""
    if prepared.prompt_tokens > prepared.window:
        tokens, window = prepared.prompt_tokens, prepared.window
        raise InvalidRequest(f"prompt is too long: {tokens} tokens > {window} maximum")


def compose(prepared: Prepared, settings: SimulatorSettings, cache: PromptCache) -> Turn:
    """The turn answering ``prepared``, its prompt-cache reads and writes accounted in ``cache``."""
    parsed = prepared.parsed
    min_tokens = settings.cache_min_tokens
    usage = cache.account(
        parsed.model,
        prepared.segments,
        parsed.body.get("cache_control"),
        min_cacheable_tokens(parsed.model) if min_tokens is None else min_tokens,
    )
    return build_turn(
        parsed,
        settings,
        prompt_tokens=prepared.prompt_tokens,
        cache=usage,
        context_window=prepared.window,
        digest=prepared.digest,
    )
