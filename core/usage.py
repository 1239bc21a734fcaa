"""Token and search usage of API calls, as the API reports it.

One immutable record type serves every level (turn, agent, layer, run) so that sums are exact
and the cost of any total can be recomputed from the records it was built from. A plain value at
the bottom of ``core``: events, the budget and the stores carry it without depending on the API client.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Billable usage: uncached input, output, cache writes by TTL, cache reads, web searches."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_input_tokens: int = 0
    web_search_requests: int = 0

    @property
    def cache_creation_input_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    @property
    def total_input_tokens(self) -> int:
        """Everything the model read: uncached + cache writes + cache reads."""
        return self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens

    @property
    def total_tokens(self) -> int:
        return self.total_input_tokens + self.output_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(*(getattr(self, f.name) + getattr(other, f.name) for f in _FIELDS))

    def to_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in _FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenUsage:
        return cls(**{f.name: int(data.get(f.name, 0)) for f in fields(cls)})

    @classmethod
    def from_api(cls, usage: Any) -> TokenUsage:
        """Read an SDK ``Usage`` (or a dict of the same shape) without trusting optional fields."""

        def get(obj: Any, name: str) -> Any:
            if obj is None:
                return None
            if isinstance(obj, dict):
                return obj.get(name)
            return getattr(obj, name, None)

        creation = get(usage, "cache_creation")
        write_5m = get(creation, "ephemeral_5m_input_tokens")
        write_1h = get(creation, "ephemeral_1h_input_tokens")
        total_creation = get(usage, "cache_creation_input_tokens") or 0
        if write_5m is None and write_1h is None:
            # Without the TTL breakdown the API's default TTL (5 minutes) applies.
            write_5m, write_1h = total_creation, 0
        server_tools = get(usage, "server_tool_use")
        return cls(
            input_tokens=int(get(usage, "input_tokens") or 0),
            output_tokens=int(get(usage, "output_tokens") or 0),
            cache_write_5m_tokens=int(write_5m or 0),
            cache_write_1h_tokens=int(write_1h or 0),
            cache_read_input_tokens=int(get(usage, "cache_read_input_tokens") or 0),
            web_search_requests=int(get(server_tools, "web_search_requests") or 0),
        )


_FIELDS = fields(TokenUsage)


@dataclass(frozen=True, slots=True)
class Unconfirmed:
    """The part of a spend that is a bound, not a reported usage: dollars and searches charged for
    attempts whose usage never arrived (a cut stream, a kill, a stop, a timeout), and how many
    attempts those were. The rest of the spend is billed: the usage the API reported."""

    usd: float = 0.0
    attempts: int = 0
    searches: int = 0

    def plus(self, usd: float, searches: int, attempts: int = 1) -> Unconfirmed:
        return Unconfirmed(self.usd + usd, self.attempts + attempts, self.searches + searches)


ALL_BILLED = Unconfirmed()
"""Nothing unconfirmed: every dollar was billed (also what a record from before the split holds)."""


def money_text(cost_usd: float, unconfirmed: Unconfirmed, *, digits: int = 4) -> str:
    """``$B billed + $U unconfirmed (N attempts)``: a spend told apart the same way everywhere it is
    shown (the headless lines, ``runs``, ``checkpoints``, the report header, ``verify``)."""
    billed = cost_usd - unconfirmed.usd
    text = f"${billed:.{digits}f} billed + ${unconfirmed.usd:.{digits}f} unconfirmed"
    if unconfirmed.attempts:
        plural = "s" if unconfirmed.attempts != 1 else ""
        text += f" ({unconfirmed.attempts} attempt{plural} whose usage never arrived)"
    return text
