"""Settings of the embedded API simulator (also the ``simulator:`` block of a research config).

Every number has bounds: the simulator runs inside ``run --simulate``, so a value no real setting
needs (a seed of 10^170, a latency of ``.inf``, a pace of 10^-300 tokens a second) must be refused
with its key path, not make the run hang.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FaultKind = Literal["rate_limit", "overloaded", "server_error", "stream_error", "disconnect", "slow"]
FAULT_KINDS: tuple[str, ...] = (
    "rate_limit",
    "overloaded",
    "server_error",
    "stream_error",
    "disconnect",
    "slow",
)
MAX_SEED = 2**63 - 1
MAX_WAIT_MS = 60_000.0  # a minute before a byte or per search: slow enough for any test
MAX_PER_MINUTE = 10**12
MAX_TOKENS_PER_TURN = 1_000_000
MAX_SEARCHES_PER_TURN = 100
Probability = Annotated[float, Field(ge=0, le=1)]
Searches = Annotated[int, Field(ge=0, le=MAX_SEARCHES_PER_TURN)]
Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS_PER_TURN)]


class RateLimits(BaseModel):
    """Organisation limits per minute; ``None`` means unlimited (the default)."""

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = Field(default=None, gt=0, le=MAX_PER_MINUTE)
    input_tokens_per_minute: int | None = Field(default=None, gt=0, le=MAX_PER_MINUTE)
    output_tokens_per_minute: int | None = Field(default=None, gt=0, le=MAX_PER_MINUTE)


class SimulatorSettings(BaseModel):
    """How the simulated API behaves. Every random choice derives from ``seed``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    seed: int = Field(default=0, ge=0, le=MAX_SEED, description="Seed of every random choice (0 to 2^63-1).")
    latency_ms: float = Field(
        default=0.0, ge=0, le=MAX_WAIT_MS, description="Wait before the first byte of each response."
    )
    tokens_per_second: float = Field(
        default=0.0,
        ge=0,
        le=10_000_000,
        description="Streaming pace of output tokens; 0 streams as fast as possible, else at least 1.",
    )
    faults: dict[FaultKind, Probability] = Field(
        default_factory=dict, description="Probability (0..1) of each injected fault per request."
    )
    search_latency_ms: float = Field(
        default=0.0,
        ge=0,
        le=MAX_WAIT_MS,
        description="Wait while each streamed search runs (pings are sent meanwhile).",
    )
    slow_first_byte_s: float = Field(
        default=5.0, ge=0, le=MAX_WAIT_MS / 1000, description="Extra wait of the `slow` fault."
    )
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
        le=MAX_SEARCHES_PER_TURN,
        description="Searches the server-side loop runs in one request before it pauses a turn that "
        "wants more (the API's iteration limit, about 10; lower by default to keep turns short).",
    )
    searches_per_turn: tuple[Searches, Searches] = (1, 3)
    output_tokens_per_turn: tuple[Tokens, Tokens] = (250, 700)
    context_window: int | None = Field(
        default=None, gt=0, le=100_000_000, description="Override every model's context window (tokens)."
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
        default=1.0, gt=0, le=3_600, description="The retry-after of injected rate_limit faults."
    )
    cache_min_tokens: int | None = Field(
        default=None,
        ge=0,
        le=MAX_TOKENS_PER_TURN,
        description="Override the per-model minimum cacheable prompt length.",
    )

    thread_expiry_s: float = Field(
        default=300.0,
        gt=0,
        le=3_600,
        description="Seconds after its last request that a message thread expires (the API's 5 minutes); "
        "a continue after that answers 404 thread_not_found.",
    )
    validation_ms_per_1k_tokens: float = Field(
        default=0.0,
        ge=0,
        le=1_000,
        description="Extra wait before the first byte per thousand prompt tokens the request itself "
        "carries (the API validates and tokenizes what it is sent: a thread continue carries only its "
        "new messages); 0 by default so tests stay fast.",
    )

    batch_processing_s: float = Field(
        default=3.0,
        ge=0,
        le=86_400,
        description="Simulated seconds a Message Batch takes from creation until its last request ends "
        "(its requests finish one by one over that time; the API usually takes minutes to an hour).",
    )
    batch_expiry_s: float = Field(
        default=86_400.0,
        gt=0,
        le=86_400,
        description="Seconds after creation that a Message Batch expires (the API's 24 hours): requests "
        "not finished by then end `expired`; set it below `batch_processing_s` to make requests expire.",
    )
    batch_server_loop_limit: int | None = Field(
        default=None,
        ge=1,
        le=MAX_SEARCHES_PER_TURN,
        description="Searches the server-side loop runs in one batch request before it pauses "
        "(batches run more iterations per turn than synchronous calls); default twice `server_loop_limit`.",
    )
    batch_max_requests: int = Field(
        default=100_000,
        ge=1,
        le=100_000,
        description="Requests one Message Batch may hold (the API's 100,000); tests set it lower.",
    )

    @property
    def batch_loop_limit(self) -> int:
        """The server loop's limit per batch request: more than a synchronous call's."""
        if self.batch_server_loop_limit is not None:
            return self.batch_server_loop_limit
        return min(MAX_SEARCHES_PER_TURN, 2 * self.server_loop_limit)

    @model_validator(mode="after")
    def _batches_loop_longer(self) -> SimulatorSettings:
        batch_limit, limit = self.batch_server_loop_limit, self.server_loop_limit
        if batch_limit is not None and batch_limit < limit:
            raise ValueError(
                f"batch_server_loop_limit ({batch_limit}) must be at least server_loop_limit ({limit}): "
                "batch requests run more server-loop iterations, not fewer"
            )
        return self

    @field_validator("tokens_per_second")
    @classmethod
    def _a_pace_that_ends(cls, value: float) -> float:
        if 0 < value < 1:
            raise ValueError("give 0 (as fast as possible) or at least 1 token a second")
        return value
