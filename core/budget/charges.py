"""What a failed API attempt is charged: the most it can have been billed, from what it received.

A retried call is several requests, and the API bills each one for the work it did, whether or
not the answer reached us (it sets no idempotency key: a retried POST can double-bill). So every
attempt that may have run is charged, and the charge is a *bound*, never an estimate:

* **Not run** (no connection, a pool or write timeout, an error status such as 429 or 529, or an
  ``event: error`` before ``message_start``): nothing. The API sends ``message_start`` before
  it samples and answers an error status before doing any work; it bills neither.
* **Reported**: a ``message_delta`` arrived (it carries the cumulative usage and comes just before
  ``message_stop``): exactly that usage.
* **Received** (the server ended the stream after ``message_start``: an error event, a dropped
  connection, a stream cut short): the first sampling's input as ``message_start`` reported it;
  output at most the UTF-8 bytes of the text, thinking and tool-input JSON streamed (a token is at
  least one byte) plus ``BLOCK_TOKENS`` per content block (the markers that open and close a block
  are tokens that never stream as text) plus ``TAIL_TOKENS`` (sampled after the last frame sent,
  before the server stopped); the searches that ran and did not error (errored searches are not
  billed); and each search's re-read of the prompt, as in the ledger's worst case: the prompt,
  the output and ``search_input_tokens`` per search result so far, at the dearest input rate.
* **Unknown** (we stopped listening: a kill, a stop of the run, a read timeout, a request sent
  with no word back): the reservation's worst case, with the prompt's input as reported when
  ``message_start`` came. The server does not learn that we stopped until it next writes, bytes
  already on the wire were never parsed, and a request that timed out may have run to the end: so
  anything less than the request's own limits (``max_tokens``, ``max_uses``) could under-count.
  A user who stops a run sees its calls in flight charged as they were reserved: the meter never
  shows less than the API may bill.

No charge exceeds the reservation's worst case (it is clamped to it), so charging a failed attempt
never crosses a cap the reservation fitted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from core.api.attempt import AttemptProgress, Outcome
from core.usage import TokenUsage

BLOCK_TOKENS = 16
"""Tokens per content block that stream as no text: its start and stop markers, a tool's name."""
TAIL_TOKENS = 64
"""Tokens the API may have sampled after the last frame it sent, before it stopped."""

Basis = Literal["none", "reported", "received", "worst_case"]
InputField = Literal["input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens"]


@dataclass(frozen=True, slots=True)
class AttemptLimits:
    """What the request allowed, as the reservation held it."""

    max_tokens: int
    max_searches: int
    search_input_tokens: int
    dearest: InputField  # how an input token of this request is billed at its dearest
    worst: TokenUsage  # the reservation's worst case


@dataclass(frozen=True, slots=True)
class Charge:
    usage: TokenUsage
    basis: Basis

    @property
    def billed(self) -> bool:
        """The usage is the API's own report (exact); otherwise it is a bound (unconfirmed)."""
        return self.basis == "reported"


NOTHING = Charge(TokenUsage(), "none")


def attempt_charge(progress: AttemptProgress, outcome: Outcome, limits: AttemptLimits) -> Charge:
    """The bound of what a failed attempt was billed (see the module docstring)."""
    if outcome is Outcome.NOT_RUN:
        return NOTHING
    if progress.final_usage is not None:
        return Charge(progress.final_usage, "reported")
    start = progress.start_usage
    if start is None:
        return Charge(limits.worst, "worst_case")
    if outcome is Outcome.UNKNOWN:
        usage = _searched(
            start,
            output=limits.max_tokens,
            iterations=limits.max_searches,
            billed=limits.max_searches,
            limits=limits,
        )
        return _clamped(Charge(usage, "worst_case"), limits)
    ran = max(progress.searches, progress.results)
    output = progress.output_bytes + BLOCK_TOKENS * progress.blocks + TAIL_TOKENS
    usage = _searched(
        start,
        output=min(output, limits.max_tokens),
        iterations=ran,
        billed=max(0, ran - progress.search_errors),
        limits=limits,
    )
    return _clamped(Charge(usage, "received"), limits)


def _searched(
    start: TokenUsage, *, output: int, iterations: int, billed: int, limits: AttemptLimits
) -> TokenUsage:
    """The first sampling as reported, then one more per search, each re-reading the prompt, the
    output and the results so far: ``n·P + n·O + R·n(n+1)/2`` more input at the dearest rate."""
    prompt = start.total_input_tokens
    n, r = iterations, limits.search_input_tokens
    rereads = n * prompt + n * output + r * n * (n + 1) // 2
    extra = TokenUsage(**{limits.dearest: rereads})
    return replace(start, output_tokens=output, web_search_requests=billed) + extra


def _clamped(charge: Charge, limits: AttemptLimits) -> Charge:
    """Never more than the reservation's worst case (itself a bound of what the request can cost)."""
    usage, worst = charge.usage, limits.worst
    if (
        usage.total_input_tokens > worst.total_input_tokens
        or usage.output_tokens > worst.output_tokens
        or usage.web_search_requests > worst.web_search_requests
    ):
        return Charge(worst, "worst_case")
    return charge
