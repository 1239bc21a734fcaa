"""Settings of the embedded API simulator (also the ``simulator:`` block of a research config)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FaultKind = Literal["rate_limit", "overloaded", "server_error", "stream_error", "disconnect", "slow"]
FAULT_KINDS: tuple[str, ...] = (
    "rate_limit",
    "overloaded",
    "server_error",
    "stream_error",
    "disconnect",
    "slow",
)


class RateLimits(BaseModel):
    """Organisation limits per minute; ``None`` means unlimited (the default)."""

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = Field(default=None, gt=0)
    input_tokens_per_minute: int | None = Field(default=None, gt=0)
    output_tokens_per_minute: int | None = Field(default=None, gt=0)


class SimulatorSettings(BaseModel):
    """How the simulated API behaves. Every random choice derives from ``seed``."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    latency_ms: float = Field(default=0.0, ge=0, description="Wait before the first byte of each response.")
    tokens_per_second: float = Field(
        default=0.0, ge=0, description="Streaming pace of output tokens; 0 streams as fast as possible."
    )
    faults: dict[FaultKind, float] = Field(
        default_factory=dict, description="Probability (0..1) of each injected fault per request."
    )
    search_latency_ms: float = Field(
        default=0.0, ge=0, description="Wait while each streamed search runs (pings are sent meanwhile)."
    )
    slow_first_byte_s: float = Field(default=5.0, ge=0, description="Extra wait of the `slow` fault.")
    pause_turn_probability: float = Field(
        default=0.15,
        ge=0,
        le=1,
        description="Chance that a turn with web search wants more searches than `server_loop_limit` "
        "allows, so it pauses there (stop_reason pause_turn) with the next search dangling.",
    )
    server_loop_limit: int = Field(
        default=3,
        ge=1,
        description="Searches the server-side loop runs in one request before it pauses a turn that "
        "wants more (the API's iteration limit, about 10; lower by default to keep turns short).",
    )
    searches_per_turn: tuple[int, int] = (1, 3)
    output_tokens_per_turn: tuple[int, int] = (250, 700)
    context_window: int | None = Field(
        default=None, gt=0, description="Override every model's context window (tokens)."
    )
    stream_cut: Literal["middle", "anywhere", "start"] = Field(
        default="middle",
        description="Where a `stream_error` or `disconnect` fault breaks a stream: in the middle; "
        "anywhere (before `message_start`, mid-text, after a search result, in tool input, after "
        "`message_delta`), drawn per request from the seed; or at its start (before `message_start`).",
    )
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    api_keys: list[str] | None = Field(
        default=None, description="Accept only these API keys (others get 401); default: any non-empty key."
    )
    retry_after_s: float = Field(
        default=1.0, gt=0, description="The retry-after of injected rate_limit faults."
    )
    cache_min_tokens: int | None = Field(
        default=None, ge=0, description="Override the per-model minimum cacheable prompt length."
    )
