"""The rate card the product ships: dollars per million tokens of each model, and its context window.

The table is checked against ``docs/reference/anthropic-api.md`` §5.3 (late 2026). Where the sources
disagree, the row says which value was chosen and why; the rule is to take the higher price,
because a budget tool that under-counts lets a cap be crossed. ``pricing.models`` in the config
overrides or extends it (:class:`core.budget.pricing.PriceTable`).

Reference data at the bottom of ``core``: the config loader checks every model it is given has a
price here, and the budget prices calls with it, so neither imports the other for it.

Batch prices: a request of a batch layer is priced under its model's batch key
(:func:`batch_priced`), every token rate at ``BATCH_PRICE_FACTOR`` of the model's (the caching
multipliers stack on it); web search keeps its price (§7 of the API reference).

Not modelled (documented, not billed by this tool): data-residency surcharges
(``inference_geo:"us"``, 1.1x), Opus 5 fast mode.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.usage import TokenUsage

PER_MILLION = 1_000_000
WEB_SEARCH_PER_1000 = 10.0
"""Web search is billed at $10 per 1,000 searches on every model (§1.4)."""
SEARCH_INPUT_TOKENS = 10_000
"""Input tokens one web search may add to its call (its ~10 results, encrypted page content)."""
CACHE_WRITE_5M_MULTIPLIER = 1.25
CACHE_WRITE_1H_MULTIPLIER = 2.0
CACHE_READ_MULTIPLIER = 0.1
BATCH_PRICE_FACTOR = 0.5
"""The Message Batches API bills every token at half the standard price (cache rates included)."""
BATCH_SUFFIX = "@batch"
"""What marks a model id priced as a batch request (the ledger's key, never sent to the API)."""
DEFAULT_CONTEXT_WINDOW = 200_000
"""Window assumed for a config-priced model that names none: the smaller of the current windows,
so that context compaction starts early rather than late."""
LONG_PROMPT_THRESHOLD = 100_000
"""Haiku 5.5 bills a request at its long-prompt rates when its total input exceeds this."""


@dataclass(frozen=True, slots=True)
class Price:
    """Dollars per million tokens of each usage component, and the model's context window.

    ``long_prompt`` holds the rates that apply to a whole request whose total input exceeds
    ``LONG_PROMPT_THRESHOLD`` (only Haiku 5.5 has such a tier today).
    """

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float
    context_window: int
    long_prompt: Price | None = None

    @classmethod
    def standard(
        cls,
        input: float,
        output: float,
        *,
        context_window: int,
        cache_read: float | None = None,
        long_prompt: Price | None = None,
    ) -> Price:
        """A price whose cache writes follow the API's multipliers (1.25x 5-minute, 2x 1-hour)."""
        return cls(
            input=input,
            output=output,
            cache_write_5m=input * CACHE_WRITE_5M_MULTIPLIER,
            cache_write_1h=input * CACHE_WRITE_1H_MULTIPLIER,
            cache_read=input * CACHE_READ_MULTIPLIER if cache_read is None else cache_read,
            context_window=context_window,
            long_prompt=long_prompt,
        )

    def scaled(self, factor: float) -> Price:
        """Every token rate times ``factor`` (both tiers), the context window the same."""
        return Price(
            input=self.input * factor,
            output=self.output * factor,
            cache_write_5m=self.cache_write_5m * factor,
            cache_write_1h=self.cache_write_1h * factor,
            cache_read=self.cache_read * factor,
            context_window=self.context_window,
            long_prompt=None if self.long_prompt is None else self.long_prompt.scaled(factor),
        )

    def for_prompt(self, total_input_tokens: int) -> Price:
        """The rates that apply to one request of this many input tokens (cached ones included)."""
        if self.long_prompt is not None and total_input_tokens > LONG_PROMPT_THRESHOLD:
            return self.long_prompt
        return self

    @property
    def max_input(self) -> float:
        """The dearest way an input token can be billed (a 1-hour cache write, usually)."""
        return max(self.input, self.cache_write_5m, self.cache_write_1h, self.cache_read)

    def input_dollars(self, usage: TokenUsage) -> float:
        """Input-side dollars at these rates (no tier selection: see :meth:`PriceTable.cost`)."""
        return (
            usage.input_tokens * self.input
            + usage.cache_write_5m_tokens * self.cache_write_5m
            + usage.cache_write_1h_tokens * self.cache_write_1h
            + usage.cache_read_input_tokens * self.cache_read
        ) / PER_MILLION


_M = 1_000_000
_K200 = 200_000

_HAIKU_5_5_LONG = Price(
    input=0.50, output=2.50, cache_write_5m=0.625, cache_write_1h=1.0, cache_read=0.05, context_window=_M
)

SHIPPED_PRICES: dict[str, Price] = {
    # Cache reads at 0.025x on Fable 5.1 and Mythos 5.1 (§5.2).
    "claude-fable-5-1": Price.standard(10.0, 50.0, cache_read=0.25, context_window=_M),
    "claude-mythos-5-1": Price.standard(10.0, 50.0, cache_read=0.25, context_window=_M),
    # Cache reads at 0.05x on Opus 5.5.
    "claude-opus-5-5": Price.standard(4.0, 20.0, cache_read=0.20, context_window=_M),
    # CONFLICT: cache read $0.10 (5%, Haiku 5.5 overview) vs $0.20 (10%, pricing-table copy and a
    # model sheet). Chosen: $0.20, the higher, so the ledger never under-counts.
    "claude-sonnet-5-5": Price.standard(2.0, 10.0, cache_read=0.20, context_window=_M),
    # Tiered: $0.10/$0.50 up to 100k input tokens per request, $0.50/$2.50 above (all components
    # of that request). Implemented per call from the call's total input (cached tokens included).
    "claude-haiku-5-5": Price(
        input=0.10,
        output=0.50,
        cache_write_5m=0.125,
        cache_write_1h=0.20,
        cache_read=0.01,
        context_window=_M,
        long_prompt=_HAIKU_5_5_LONG,
    ),
    "claude-fable-5": Price.standard(10.0, 50.0, context_window=_M),
    "claude-mythos-5": Price.standard(10.0, 50.0, context_window=_M),
    # Standard pricing; fast mode ($10/$50) is not used by this product.
    "claude-opus-5": Price.standard(5.0, 25.0, context_window=_M),
    # CONFLICT: $2/$10 was announced as intro pricing; older copies show $3/$15 from 2026-09-01,
    # which the later pricing page says was cancelled ("now the standard price"). Chosen: $2/$10,
    # the newest source; override under pricing.models if your invoice says otherwise.
    "claude-sonnet-5": Price.standard(2.0, 10.0, context_window=_M),
    # Context and max output of Opus 4.6-4.8 per a third-party sheet only.
    "claude-opus-4-8": Price.standard(5.0, 25.0, context_window=_M),
    "claude-opus-4-7": Price.standard(5.0, 25.0, context_window=_M),
    "claude-opus-4-6": Price.standard(5.0, 25.0, context_window=_M),
    "claude-sonnet-4-6": Price.standard(3.0, 15.0, context_window=_M),
    # No cache prices in the sources (not on the current pricing page): the standard multipliers.
    "claude-opus-4-5": Price.standard(5.0, 25.0, context_window=_K200),
    "claude-sonnet-4-5": Price.standard(3.0, 15.0, context_window=_K200),
    "claude-haiku-4-5": Price.standard(1.0, 5.0, context_window=_K200),
}
_DATED_ALIASES = {
    "claude-opus-4-5-20251101": "claude-opus-4-5",
    "claude-sonnet-4-5-20250929": "claude-sonnet-4-5",
    "claude-haiku-4-5-20251001": "claude-haiku-4-5",
}
SHIPPED_PRICES.update({alias: SHIPPED_PRICES[base] for alias, base in _DATED_ALIASES.items()})


def known_models() -> tuple[str, ...]:
    """The model ids the product ships prices for (dated snapshots included), sorted."""
    return tuple(sorted(SHIPPED_PRICES))


def batch_priced(model: str) -> str:
    """The key a Message Batch request of ``model`` is priced under (see ``PriceTable.price``)."""
    return model if model.endswith(BATCH_SUFFIX) else model + BATCH_SUFFIX


def unbatched(model: str) -> str:
    """The model id a price key names (a batch key's model)."""
    return model.removesuffix(BATCH_SUFFIX)


def has_default_price(model: str) -> bool:
    """Whether the shipped table prices ``model`` (the config loader asks before a run)."""
    return model in SHIPPED_PRICES
