"""The typed model of ``research_config.yaml``.

Unknown keys are errors everywhere (``extra="forbid"``): a typo in a budget cap must never be
silently ignored. Loading, line numbers and error formatting live in :mod:`core.config.loader`.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from core.config.simulator import SimulatorSettings
from core.prices import batch_priced

LayerMode = Literal["stream", "batch"]
WebSearchVersion = Literal["web_search_20250305", "web_search_20260209", "web_search_20260318"]
AGENT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"

Loc = tuple[str | int, ...]
"""A key path into the config document, as pydantic reports it: ``("layers", 0, "agents", 1, "id")``."""

SKIP_REFERENCE_CHECK = "skip_reference_check"
"""Validation-context flag: the caller (:mod:`core.config.loader`) reports reference issues itself,
one per offending key, so the model must not raise them again as a single lump."""

DEFAULT_SYSTEM_PROMPT = (
    "You are a meticulous research analyst working as one agent of a larger research program. "
    "Use the web search tool to find current, primary sources. Cite every factual claim. "
    "Prefer numbers, dates and named sources over generalities, and say plainly when evidence is thin."
)
DEFAULT_FOLLOW_UPS = (
    "Go deeper: search for the strongest evidence on the points that are still uncertain, "
    "and for any data that contradicts what you found so far.",
    "Look for the most recent developments (the last twelve months) and quantify them.",
    "Find primary sources (filings, official statistics, peer-reviewed studies) for your key numbers, "
    "and note where secondary sources disagree with them.",
    "Compare regions or market segments: where is the picture different, and why?",
    "Identify the main risks and counter-arguments to your emerging conclusion, with evidence.",
    "Look for forecasts and the assumptions behind them; say which look credible.",
)
DEFAULT_REPORT_PROMPT = (
    "Now write your report: a Markdown document with a short summary, your key findings "
    "(each with its citations), open questions, and what a decision maker should watch."
)


# Upper bounds of the numbers a config may hold: what the API accepts and the product can run.
# A limit beyond them is a typo (a max_turns of 10^9 would freeze the run, not research longer).
MAX_TURNS = 500
MAX_USES = 20
DEFAULT_MAX_USES = 5
"""Searches per request when the config sets ``max_uses: null``: every request carries one."""
"""Searches per request: the API's server loop runs about 10 iterations per request."""
MAX_OUTPUT_TOKENS = 128_000
MAX_CONTINUATIONS = 100
MAX_AGENT_SEARCHES = 10_000
MAX_RUN_SEARCHES = 10_000_000
MAX_RUN_TOKENS = 10**12
MAX_USD = 1_000_000.0
MAX_PRICE_PER_MTOK = 10_000.0
MAX_CONTEXT_WINDOW = 100_000_000
MAX_AGENTS = 1_000
MAX_SECONDS = 86_400.0


def _accepts_bool(annotation: Any) -> bool:
    if annotation is bool or annotation is Any:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_accepts_bool(arg) for arg in get_args(annotation))
    return False


class Strict(BaseModel):
    """Unknown keys are errors; numbers are finite (no ``.inf``/``.nan``) and never ``true``/``false``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_not_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name is not None:
            field = cls.model_fields.get(info.field_name)
            if field is not None and not _accepts_bool(field.annotation):
                raise ValueError(f"expected a number, not {str(value).lower()}")
        return value


class UserLocation(Strict):
    type: Literal["approximate"] = "approximate"
    city: str | None = None
    region: str | None = None
    country: str | None = Field(default=None, min_length=2, max_length=2)
    timezone: str | None = None


class WebSearchSettings(Strict):
    version: WebSearchVersion = "web_search_20250305"
    max_uses: int | None = Field(
        default=5, gt=0, le=MAX_USES, description="Searches allowed per API request (null: the default, 5)."
    )
    allowed_domains: list[str] | None = None
    blocked_domains: list[str] | None = None
    user_location: UserLocation | None = None

    @property
    def per_request(self) -> int:
        """The ``max_uses`` every request asks for: the configured one, or the default for null."""
        return self.max_uses or DEFAULT_MAX_USES

    @model_validator(mode="after")
    def _one_domain_filter(self) -> WebSearchSettings:
        if self.allowed_domains and self.blocked_domains:
            raise ValueError("give allowed_domains or blocked_domains, not both (the API rejects both)")
        return self


class CachingSettings(Strict):
    enabled: bool = True
    ttl: Literal["5m", "1h"] = "5m"


class AgentDefaults(Strict):
    model: str = Field(default="claude-sonnet-5", description="Model id for agents that name none.")
    max_tokens: int = Field(
        default=4096, gt=0, le=MAX_OUTPUT_TOKENS, description="Output tokens per API request."
    )
    max_turns: int = Field(
        default=4, gt=0, le=MAX_TURNS, description="User turns, the final report turn included."
    )
    max_searches: int | None = Field(
        default=None, gt=0, le=MAX_AGENT_SEARCHES, description="Searches per agent over its run."
    )
    web_search: WebSearchSettings = Field(default_factory=WebSearchSettings)
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    follow_up_prompts: tuple[str, ...] = Field(
        default=DEFAULT_FOLLOW_UPS, description="User turns sent after the brief, before the report turn."
    )
    report_prompt: str = Field(default=DEFAULT_REPORT_PROMPT, description="The final turn's instruction.")
    max_pause_continuations: int = Field(
        default=8, ge=0, le=MAX_CONTINUATIONS, description="How often one turn may resume after pause_turn."
    )
    max_tokens_continuations: int = Field(
        default=2,
        ge=0,
        le=MAX_CONTINUATIONS,
        description="How often an answer cut off by max_tokens continues.",
    )
    caching: CachingSettings = Field(default_factory=CachingSettings)
    message_threads: bool = Field(
        default=False,
        description="Send each agent's later calls (turns and pause_turn continuations) as message-thread "
        "continues carrying only their new messages (beta message-threads-2026-08-12): faster first tokens "
        "on long conversations, billed the same; the API then holds the conversation in memory for up to "
        "an hour (not ZDR-eligible), hence off by default. The checkpoints stay the source of truth.",
    )


class AgentConfig(Strict):
    id: str = Field(pattern=AGENT_ID_PATTERN, description="Unique agent id: lowercase, digits, '-', '_'.")
    title: str = Field(default="", description="Display name; default: the id in title case.")
    brief: str = Field(min_length=1, description="The agent's research assignment (its first user turn).")
    model: str | None = Field(default=None, description="Overrides defaults.model.")
    max_tokens: int | None = Field(
        default=None, gt=0, le=MAX_OUTPUT_TOKENS, description="Overrides defaults.max_tokens."
    )
    max_turns: int | None = Field(
        default=None, gt=0, le=MAX_TURNS, description="Overrides defaults.max_turns."
    )
    max_searches: int | None = Field(
        default=None, gt=0, le=MAX_AGENT_SEARCHES, description="Overrides defaults.max_searches."
    )
    reads: list[str] | None = Field(
        default=None,
        description="Agent ids or layer names whose reports this agent reads; default: the previous layer.",
    )


class LayerConfig(Strict):
    name: str = Field(pattern=AGENT_ID_PATTERN, description="Unique layer name; `reads` may name it.")
    description: str = ""
    agents: list[AgentConfig] = Field(
        min_length=1, max_length=MAX_AGENTS, description="Agents run concurrently within the layer."
    )
    message_threads: bool | None = Field(
        default=None, description="Overrides defaults.message_threads for this layer's agents."
    )
    mode: LayerMode = Field(
        default="stream",
        description="'stream' (each call streamed as it is made) or 'batch' (each round, every ready "
        "agent's next request goes into one Message Batch: half the token price, results within the "
        "hour rather than at once; nothing streams).",
    )

    @field_validator("mode", mode="before")
    @classmethod
    def _known_mode(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in get_args(LayerMode):
            raise ValueError(
                f"mode '{value}' is not a layer mode: use 'stream' (the default) or 'batch'"
                f"{did_you_mean(value, get_args(LayerMode))}"
            )
        return value

    @model_validator(mode="after")
    def _batch_has_no_threads(self) -> LayerConfig:
        if self.mode == "batch" and self.message_threads:
            raise ValueError(
                "message_threads: true cannot be used with mode: batch (a batch request carries its "
                "whole conversation): remove one of them from this layer"
            )
        return self


class ProgramInfo(Strict):
    name: str = Field(min_length=1, description="Short program name, used in run ids.")
    question: str = Field(min_length=1, description="The question the whole program answers.")
    description: str = ""


class BudgetSettings(Strict):
    max_cost_usd: float | None = Field(
        default=None, gt=0, le=MAX_USD, description="Hard cap on the run's dollars."
    )
    max_searches: int | None = Field(
        default=None, gt=0, le=MAX_RUN_SEARCHES, description="Hard cap on the run's web searches."
    )
    max_tokens: int | None = Field(
        default=None, gt=0, le=MAX_RUN_TOKENS, description="Hard cap on the run's tokens."
    )
    per_agent_max_cost_usd: float | None = Field(default=None, gt=0, le=MAX_USD)
    per_agent_max_searches: int | None = Field(default=None, gt=0, le=MAX_AGENT_SEARCHES)
    reserve_for_later_layers: float = Field(
        default=0.15, ge=0, lt=1, description="Share of each cap held back so later layers can always run."
    )


class RetrySettings(Strict):
    max_attempts: int = Field(default=8, gt=0, le=100)
    max_total_seconds: float = Field(default=900.0, gt=0, le=MAX_SECONDS)
    base_delay_s: float = Field(default=1.0, ge=0, le=3_600)
    max_delay_s: float = Field(default=60.0, gt=0, le=3_600)


class CheckpointSettings(Strict):
    enabled: bool = True


class ContextSettings(Strict):
    compact_at_fraction: float = Field(
        default=0.85, gt=0.1, le=1, description="Compact the conversation beyond this share of the window."
    )
    keep_recent_turns: int = Field(default=2, ge=1, le=MAX_TURNS)


class ExecutionSettings(Strict):
    max_concurrent_agents: int = Field(
        default=8, gt=0, le=MAX_AGENTS, description="Agents running at the same time."
    )
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    checkpoints: CheckpointSettings = Field(default_factory=CheckpointSettings)
    context: ContextSettings = Field(default_factory=ContextSettings)
    stop_grace_s: float = Field(
        default=60.0,
        ge=0,
        le=3_600,
        description=(
            "On a stop, seconds the calls in flight get to finish their turn and be saved before they "
            "are cancelled (a cancelled call is charged its worst case); 0 cancels them at once."
        ),
    )

    @model_validator(mode="after")
    def _capped_runs_keep_their_spend(self) -> ExecutionSettings:
        """A cap counts the spend of every attempt of a run, which is saved with its checkpoints."""
        b = self.budget
        caps = (
            b.max_cost_usd,
            b.max_searches,
            b.max_tokens,
            b.per_agent_max_cost_usd,
            b.per_agent_max_searches,
        )
        if not self.checkpoints.enabled and any(cap is not None for cap in caps):
            raise ValueError(
                "checkpoints.enabled: false cannot be used with budget caps: the spend a cap counts across "
                "interrupts and resumes is saved with the checkpoints. Enable checkpoints or remove the caps"
            )
        return self


Trust = Literal["default", "system"]


class NetworkSettings(Strict):
    trust: Trust = Field(
        default="default",
        description="Whose certificates the API connection trusts: 'default' (SSL_CERT_FILE or "
        "SSL_CERT_DIR when set, else the system's) or 'system' (the operating system's trust store, "
        "through truststore: a corporate root certificate IT installed there).",
    )


class ModelPrice(Strict):
    """Dollars per million tokens; cache prices default to the API's multipliers of ``input``."""

    input: float = Field(gt=0, le=MAX_PRICE_PER_MTOK)
    output: float = Field(gt=0, le=MAX_PRICE_PER_MTOK)
    cache_write_5m: float | None = Field(default=None, gt=0, le=MAX_PRICE_PER_MTOK)
    cache_write_1h: float | None = Field(default=None, gt=0, le=MAX_PRICE_PER_MTOK)
    cache_read: float | None = Field(default=None, gt=0, le=MAX_PRICE_PER_MTOK)
    context_window: int | None = Field(default=None, gt=0, le=MAX_CONTEXT_WINDOW)


class PricingSettings(Strict):
    models: dict[str, ModelPrice] = Field(default_factory=dict)
    web_search_per_1000: float = Field(default=10.0, gt=0, le=MAX_PRICE_PER_MTOK)


class ResolvedAgent(Strict):
    """One agent's effective settings: its own values over the program defaults."""

    id: str
    title: str
    brief: str
    layer: int  # 1-based
    model: str
    max_tokens: int
    max_turns: int
    max_searches: int | None
    reads: tuple[str, ...]  # agent ids, expanded from layer names
    message_threads: bool = False
    mode: LayerMode = "stream"  # its layer's

    @property
    def batched(self) -> bool:
        """Its calls go out in its layer's Message Batches (:mod:`core.engine.batch_round`)."""
        return self.mode == "batch"

    @property
    def priced_model(self) -> str:
        """The key the ledger prices its calls under: a batch layer's at the batch price."""
        return batch_priced(self.model) if self.batched else self.model


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or ``""``: a typo deserves a fix, not a riddle."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def reference_issues(layers: object) -> list[tuple[Loc, str]]:
    """Every broken cross-reference between layers and agents, each with the key path it belongs to.

    Works on the raw (possibly half-invalid) ``layers`` list as well as on a dumped model, so that a
    file with a type error elsewhere still gets its references checked in the same pass. Anything of
    the wrong shape is skipped here: field validation reports it.
    """
    if not isinstance(layers, list):
        return []
    issues: list[tuple[Loc, str]] = []
    layer_of_name: dict[str, int] = {}
    agent_at: dict[str, tuple[int, int]] = {}
    members: dict[int, list[str]] = {}
    agents_by_layer: list[list[tuple[int, Mapping[str, object]]]] = []
    for li, layer in enumerate(layers):
        agents: list[tuple[int, Mapping[str, object]]] = []
        agents_by_layer.append(agents)
        if not isinstance(layer, Mapping):
            continue
        name = layer.get("name")
        if isinstance(name, str):
            if name in layer_of_name:
                issues.append(
                    (
                        ("layers", li, "name"),
                        f"layer name '{name}' is used twice "
                        f"(also layers[{layer_of_name[name]}]); layer names must be unique",
                    )
                )
            else:
                layer_of_name[name] = li
        raw_agents = layer.get("agents")
        for ai, agent in enumerate(raw_agents if isinstance(raw_agents, list) else []):
            if not isinstance(agent, Mapping):
                continue
            agents.append((ai, agent))
            agent_id = agent.get("id")
            if not isinstance(agent_id, str):
                continue
            members.setdefault(li, []).append(agent_id)
            if agent_id in agent_at:
                fl, fa = agent_at[agent_id]
                issues.append(
                    (
                        ("layers", li, "agents", ai, "id"),
                        f"agent id '{agent_id}' is used twice "
                        f"(also layers[{fl}].agents[{fa}]); agent ids must be unique",
                    )
                )
            else:
                agent_at[agent_id] = (li, ai)

    for name, li in layer_of_name.items():
        # A one-agent layer may share its agent's id: either reading resolves to the same agent.
        if name in agent_at and members.get(li) != [name]:
            al, aa = agent_at[name]
            issues.append(
                (
                    ("layers", li, "name"),
                    f"layer name '{name}' is also the id of the agent at "
                    f"layers[{al}].agents[{aa}], so reading '{name}' would be ambiguous: rename one",
                )
            )

    known = [*agent_at, *layer_of_name]
    for li, agents in enumerate(agents_by_layer):
        for ai, agent in agents:
            reads = agent.get("reads")
            agent_id = agent.get("id")
            who = f"agent '{agent_id}'" if isinstance(agent_id, str) else "this agent"
            for ri, ref in enumerate(reads if isinstance(reads, list) else []):
                if not isinstance(ref, str):
                    continue
                loc: Loc = ("layers", li, "agents", ai, "reads", ri)
                if ref == agent_id:
                    issues.append((loc, f"{who} reads itself: an agent can only read earlier layers"))
                elif ref in layer_of_name:
                    target = layer_of_name[ref]
                    if target >= li:
                        where = "its own layer" if target == li else f"layer {target + 1}"
                        issues.append(
                            (
                                loc,
                                f"{who} in layer {li + 1} reads layer '{ref}' ({where}): "
                                "an agent can only read earlier layers",
                            )
                        )
                elif ref in agent_at:
                    target = agent_at[ref][0]
                    if target >= li:
                        own = " (its own layer)" if target == li else ""
                        issues.append(
                            (
                                loc,
                                f"{who} in layer {li + 1} reads '{ref}' from layer {target + 1}"
                                f"{own}: an agent can only read earlier layers",
                            )
                        )
                else:
                    issues.append(
                        (
                            loc,
                            f"{who} reads '{ref}', which is not an agent or layer{did_you_mean(ref, known)}",
                        )
                    )
    return issues


class ResearchConfig(Strict):
    program: ProgramInfo
    defaults: AgentDefaults = Field(default_factory=AgentDefaults)
    layers: list[LayerConfig] = Field(min_length=1)
    execution_settings: ExecutionSettings = Field(default_factory=ExecutionSettings)
    pricing: PricingSettings = Field(default_factory=PricingSettings)
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)
    network: NetworkSettings = Field(default_factory=NetworkSettings)

    @model_validator(mode="after")
    def _references_resolve(self, info: ValidationInfo) -> ResearchConfig:
        """Keep a config built any way (not only through the loader) free of dangling ``reads``."""
        if info.context and info.context.get(SKIP_REFERENCE_CHECK):
            return self
        issues = reference_issues([layer.model_dump() for layer in self.layers])
        if issues:
            raise ValueError("; ".join(message for _, message in issues))
        return self

    def agents(self) -> list[ResolvedAgent]:
        """Every agent, in layer order, with defaults applied and ``reads`` expanded to agent ids."""
        layer_members = {layer.name: [a.id for a in layer.agents] for layer in self.layers}
        resolved: list[ResolvedAgent] = []
        for number, layer in enumerate(self.layers, start=1):
            previous = [a.id for a in self.layers[number - 2].agents] if number > 1 else []
            for agent in layer.agents:
                names = agent.reads if agent.reads is not None else previous
                reads: list[str] = []
                for name in names:
                    for agent_id in layer_members.get(name, [name]):
                        if agent_id not in reads:
                            reads.append(agent_id)
                resolved.append(
                    ResolvedAgent(
                        id=agent.id,
                        title=agent.title or agent.id.replace("-", " ").title(),
                        brief=agent.brief,
                        layer=number,
                        model=agent.model or self.defaults.model,
                        max_tokens=agent.max_tokens or self.defaults.max_tokens,
                        max_turns=agent.max_turns or self.defaults.max_turns,
                        max_searches=agent.max_searches or self.defaults.max_searches,
                        reads=tuple(reads),
                        message_threads=layer.mode != "batch"
                        and (
                            self.defaults.message_threads
                            if layer.message_threads is None
                            else layer.message_threads
                        ),
                        mode=layer.mode,
                    )
                )
        return resolved

    def agent(self, agent_id: str) -> ResolvedAgent:
        for agent in self.agents():
            if agent.id == agent_id:
                return agent
        raise KeyError(agent_id)
