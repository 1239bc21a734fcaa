"""Dollars per model, and the dollars of a call's ``usage``: the shipped rate card
(:mod:`core.prices`) with the config's ``pricing.models`` rows over it.

Money is computed in floats, one product per usage component, summed per call; values are never
rounded here (only for display). A float's relative error (~1e-16) stays far below a cent over
any realistic number of calls, so sums of per-call costs agree with an exact recomputation to the
cent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields, replace

from core.config.model import ModelPrice, PricingSettings
from core.errors import ResearchOrchestratorError
from core.prices import (
    BATCH_PRICE_FACTOR,
    BATCH_SUFFIX,
    DEFAULT_CONTEXT_WINDOW,
    PER_MILLION,
    SHIPPED_PRICES,
    WEB_SEARCH_PER_1000,
    Price,
    unbatched,
)
from core.usage import TokenUsage


class UnknownModelPrice(ResearchOrchestratorError, LookupError):
    """A model with no shipped price and none in the config: its spend could not be capped."""

    def __init__(self, model: str) -> None:
        self.model = model
        super().__init__(
            f"no price known for model '{model}': add it under pricing.models.{model} in the config "
            "(input and output in dollars per million tokens; cache prices default to "
            "1.25x / 2x / 0.1x of input)"
        )


def price_from_config(entry: ModelPrice, shipped: Price | None = None) -> Price:
    """A config row as a :class:`Price`: missing cache prices follow the API's multipliers of
    ``input``; a missing context window keeps the shipped model's, else the conservative default.

    A config row replaces the shipped row entirely, long-prompt tier included (config rows have
    no tiers).
    """
    derived = Price.standard(
        entry.input,
        entry.output,
        context_window=entry.context_window
        or (shipped.context_window if shipped is not None else DEFAULT_CONTEXT_WINDOW),
    )
    return replace(
        derived,
        cache_write_5m=derived.cache_write_5m if entry.cache_write_5m is None else entry.cache_write_5m,
        cache_write_1h=derived.cache_write_1h if entry.cache_write_1h is None else entry.cache_write_1h,
        cache_read=derived.cache_read if entry.cache_read is None else entry.cache_read,
    )


class PriceTable:
    """Prices by model id, usage → dollars. Costs are per API call: a tiered model's tier depends
    on that call's input, so totals are sums of per-call costs, never the cost of summed usage."""

    def __init__(self, prices: dict[str, Price], *, web_search_per_1000: float = WEB_SEARCH_PER_1000) -> None:
        self._prices = dict(prices)
        self._batch: dict[str, Price] = {}  # batch keys' prices, made once
        self.web_search_per_1000 = web_search_per_1000

    @classmethod
    def default(cls) -> PriceTable:
        return cls(SHIPPED_PRICES)

    @classmethod
    def from_config(cls, pricing: PricingSettings) -> PriceTable:
        prices = dict(SHIPPED_PRICES)
        for model, entry in pricing.models.items():
            prices[model] = price_from_config(entry, SHIPPED_PRICES.get(model))
        return cls(prices, web_search_per_1000=pricing.web_search_per_1000)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(sorted(self._prices))

    def has_price(self, model: str) -> bool:
        return unbatched(model) in self._prices

    def price(self, model: str) -> Price:
        """``model``'s rates; a batch key's (:func:`core.prices.batch_priced`) are its model's at
        the batch discount."""
        price = self._prices.get(model) or self._batch.get(model)
        if price is None and model.endswith(BATCH_SUFFIX) and unbatched(model) in self._prices:
            price = self._batch[model] = self._prices[unbatched(model)].scaled(BATCH_PRICE_FACTOR)
        if price is None:
            raise UnknownModelPrice(unbatched(model))
        return price

    def context_window(self, model: str) -> int:
        return self.price(model).context_window

    def search_cost(self, searches: int) -> float:
        return searches * self.web_search_per_1000 / 1000

    def input_cost(self, model: str, usage: TokenUsage) -> float:
        """Dollars of the input side of one call: uncached input, cache writes and cache reads."""
        return self.price(model).for_prompt(usage.total_input_tokens).input_dollars(usage)

    def cost(self, model: str, usage: TokenUsage) -> float:
        """Dollars of one call's usage: every token component plus its web searches."""
        rates = self.price(model).for_prompt(usage.total_input_tokens)
        return (
            rates.input_dollars(usage)
            + usage.output_tokens * rates.output / PER_MILLION
            + self.search_cost(usage.web_search_requests)
        )

    def rates(self, model: str, usage: TokenUsage) -> dict[str, float]:
        """The rates ``usage`` of one call of ``model`` is billed at (its tier chosen), as plain
        numbers: what a write-ahead entry records, so the call can be charged after a crash even
        when the config no longer prices the model (:func:`cost_at`)."""
        price = self.price(model).for_prompt(usage.total_input_tokens)
        return {**{name: float(getattr(price, name)) for name in RATE_FIELDS}, **self._search_rate()}

    def dearest_rates(self) -> dict[str, float]:
        """Every rate at the dearest any known model (any tier) charges it: a bound for a call whose
        model has no price any more and whose record kept none."""
        tiers = [p for price in self._prices.values() for p in (price, price.long_prompt) if p is not None]
        dearest = {
            name: max((v for p in tiers if math.isfinite(v := float(getattr(p, name)))), default=0.0)
            for name in RATE_FIELDS
        }
        return {**dearest, **self._search_rate()}

    def _search_rate(self) -> dict[str, float]:
        return {"web_search_per_1000": float(self.web_search_per_1000)}


RATE_FIELDS = tuple(f.name for f in fields(Price) if f.name not in ("context_window", "long_prompt"))
"""The per-token rates of a :class:`Price` (dollars per million tokens)."""


def cost_at(rates: Mapping[str, object], usage: TokenUsage) -> float | None:
    """Dollars of ``usage`` at recorded ``rates`` (:meth:`PriceTable.rates`); None when the record
    lacks a rate or holds one that is not a finite, non-negative number."""
    values: dict[str, float] = {}
    for name in (*RATE_FIELDS, "web_search_per_1000"):
        value = rates.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < float("inf"):
            return None
        values[name] = float(value)
    return (
        usage.input_tokens * values["input"]
        + usage.cache_write_5m_tokens * values["cache_write_5m"]
        + usage.cache_write_1h_tokens * values["cache_write_1h"]
        + usage.cache_read_input_tokens * values["cache_read"]
        + usage.output_tokens * values["output"]
    ) / PER_MILLION + usage.web_search_requests * values["web_search_per_1000"] / 1000
