"""The typed model of ``research_config.yaml``.

Unknown keys are errors everywhere (``extra="forbid"``): a typo in a budget cap must never be
silently ignored. Loading, line numbers and error formatting live in :mod:`core.config_loader`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.simulator.settings import SimulatorSettings

WebSearchVersion = Literal["web_search_20250305", "web_search_20260209", "web_search_20260318"]
AGENT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"

DEFAULT_SYSTEM_PROMPT = (
    "You are a meticulous research analyst working as one agent of a larger research program. "
    "Use the web search tool to find current, primary sources. Cite every factual claim. "
    "Prefer numbers, dates and named sources over generalities, and say plainly when evidence is thin."
)
DEFAULT_FOLLOW_UPS = (
    "Go deeper: search for the strongest evidence on the points that are still uncertain, "
    "and for any data that contradicts what you found so far.",
    "Look for the most recent developments (the last twelve months) and quantify them.",
)
DEFAULT_REPORT_PROMPT = (
    "Now write your report: a Markdown document with a short summary, your key findings "
    "(each with its citations), open questions, and what a decision maker should watch."
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UserLocation(Strict):
    type: Literal["approximate"] = "approximate"
    city: str | None = None
    region: str | None = None
    country: str | None = Field(default=None, min_length=2, max_length=2)
    timezone: str | None = None


class WebSearchSettings(Strict):
    version: WebSearchVersion = "web_search_20250305"
    max_uses: int | None = Field(default=5, gt=0, description="Searches allowed per API request.")
    allowed_domains: list[str] | None = None
    blocked_domains: list[str] | None = None
    user_location: UserLocation | None = None

    @model_validator(mode="after")
    def _one_domain_filter(self) -> WebSearchSettings:
        if self.allowed_domains and self.blocked_domains:
            raise ValueError("give allowed_domains or blocked_domains, not both (the API rejects both)")
        return self


class CachingSettings(Strict):
    enabled: bool = True
    ttl: Literal["5m", "1h"] = "5m"


class AgentDefaults(Strict):
    model: str = "claude-sonnet-5"
    max_tokens: int = Field(default=4096, gt=0, le=128_000)
    max_turns: int = Field(default=4, gt=0, description="User turns, the final report turn included.")
    max_searches: int | None = Field(default=None, gt=0, description="Searches per agent over its run.")
    web_search: WebSearchSettings = Field(default_factory=WebSearchSettings)
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    follow_up_prompts: tuple[str, ...] = DEFAULT_FOLLOW_UPS
    report_prompt: str = DEFAULT_REPORT_PROMPT
    max_pause_continuations: int = Field(default=8, ge=0)
    max_tokens_continuations: int = Field(default=2, ge=0)
    caching: CachingSettings = Field(default_factory=CachingSettings)


class AgentConfig(Strict):
    id: str = Field(pattern=AGENT_ID_PATTERN)
    title: str = ""
    brief: str = Field(min_length=1)
    model: str | None = None
    max_tokens: int | None = Field(default=None, gt=0, le=128_000)
    max_turns: int | None = Field(default=None, gt=0)
    max_searches: int | None = Field(default=None, gt=0)
    reads: list[str] | None = Field(
        default=None,
        description="Agent ids or layer names whose reports this agent reads; default: the previous layer.",
    )


class LayerConfig(Strict):
    name: str = Field(pattern=AGENT_ID_PATTERN)
    description: str = ""
    agents: list[AgentConfig] = Field(min_length=1)


class ProgramInfo(Strict):
    name: str = Field(min_length=1)
    question: str = Field(min_length=1)
    description: str = ""


class BudgetSettings(Strict):
    max_cost_usd: float | None = Field(default=None, gt=0)
    max_searches: int | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, gt=0)
    per_agent_max_cost_usd: float | None = Field(default=None, gt=0)
    per_agent_max_searches: int | None = Field(default=None, gt=0)
    reserve_for_later_layers: float = Field(
        default=0.15, ge=0, lt=1, description="Share of each cap held back so later layers can always run."
    )


class RetrySettings(Strict):
    max_attempts: int = Field(default=8, gt=0)
    max_total_seconds: float = Field(default=900.0, gt=0)
    base_delay_s: float = Field(default=1.0, ge=0)
    max_delay_s: float = Field(default=60.0, gt=0)


class CheckpointSettings(Strict):
    enabled: bool = True


class ContextSettings(Strict):
    compact_at_fraction: float = Field(
        default=0.85, gt=0.1, le=1, description="Compact the conversation beyond this share of the window."
    )
    keep_recent_turns: int = Field(default=2, ge=1)


class ExecutionSettings(Strict):
    max_concurrent_agents: int = Field(default=8, gt=0)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    checkpoints: CheckpointSettings = Field(default_factory=CheckpointSettings)
    context: ContextSettings = Field(default_factory=ContextSettings)


class ModelPrice(Strict):
    """Dollars per million tokens; cache prices default to the API's multipliers of ``input``."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_write_5m: float | None = Field(default=None, ge=0)
    cache_write_1h: float | None = Field(default=None, ge=0)
    cache_read: float | None = Field(default=None, ge=0)
    context_window: int | None = Field(default=None, gt=0)


class PricingSettings(Strict):
    models: dict[str, ModelPrice] = Field(default_factory=dict)
    web_search_per_1000: float = Field(default=10.0, ge=0)


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


class ResearchConfig(Strict):
    program: ProgramInfo
    defaults: AgentDefaults = Field(default_factory=AgentDefaults)
    layers: list[LayerConfig] = Field(min_length=1)
    execution_settings: ExecutionSettings = Field(default_factory=ExecutionSettings)
    pricing: PricingSettings = Field(default_factory=PricingSettings)
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)

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
                    )
                )
        return resolved

    def agent(self, agent_id: str) -> ResolvedAgent:
        for agent in self.agents():
            if agent.id == agent_id:
                return agent
        raise KeyError(agent_id)
