"""The price table: shipped rows (core.prices), usage → dollars per component, config overrides."""

from __future__ import annotations

import pytest

from core.budget.pricing import PriceTable, UnknownModelPrice
from core.config.model import ModelPrice, PricingSettings
from core.prices import SHIPPED_PRICES, Price, has_default_price
from core.usage import TokenUsage

CURRENT_MODELS = [
    "claude-opus-5-5",
    "claude-sonnet-5-5",
    "claude-haiku-5-5",
    "claude-fable-5-1",
    "claude-mythos-5-1",
    "claude-fable-5",
    "claude-mythos-5",
    "claude-opus-5",
    "claude-sonnet-5",
    "claude-opus-4-8",
    "claude-opus-4-7",
    "claude-opus-4-6",
    "claude-sonnet-4-6",
    "claude-opus-4-5",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "claude-haiku-4-5-20251001",
    "claude-sonnet-4-5-20250929",
    "claude-opus-4-5-20251101",
]


@pytest.fixture
def table() -> PriceTable:
    return PriceTable.default()


class TestShippedTable:
    @pytest.mark.parametrize("model", CURRENT_MODELS)
    def test_every_current_model_has_a_price(self, model: str) -> None:
        assert has_default_price(model)
        assert PriceTable.default().has_price(model)

    @pytest.mark.parametrize(
        ("model", "row"),
        [
            # input, output, 5m write, 1h write, cache read, context window (anthropic-api.md §5.3)
            ("claude-fable-5-1", (10, 50, 12.5, 20, 0.25, 1_000_000)),
            ("claude-opus-5-5", (4, 20, 5, 8, 0.20, 1_000_000)),
            ("claude-sonnet-5-5", (2, 10, 2.5, 4, 0.20, 1_000_000)),  # the higher of the conflicting reads
            ("claude-haiku-5-5", (0.10, 0.50, 0.125, 0.20, 0.01, 1_000_000)),
            ("claude-fable-5", (10, 50, 12.5, 20, 1.0, 1_000_000)),
            ("claude-opus-5", (5, 25, 6.25, 10, 0.5, 1_000_000)),
            ("claude-sonnet-5", (2, 10, 2.5, 4, 0.2, 1_000_000)),
            ("claude-opus-4-7", (5, 25, 6.25, 10, 0.5, 1_000_000)),
            ("claude-sonnet-4-6", (3, 15, 3.75, 6, 0.3, 1_000_000)),
            ("claude-opus-4-5", (5, 25, 6.25, 10, 0.5, 200_000)),  # cache prices from the multipliers
            ("claude-sonnet-4-5", (3, 15, 3.75, 6, 0.3, 200_000)),
            ("claude-haiku-4-5", (1, 5, 1.25, 2, 0.1, 200_000)),
        ],
    )
    def test_rows_match_the_reference(self, table: PriceTable, model: str, row: tuple[float, ...]) -> None:
        p = table.price(model)
        got = (p.input, p.output, p.cache_write_5m, p.cache_write_1h, p.cache_read, p.context_window)
        assert got == pytest.approx(row)

    def test_dated_aliases_price_like_their_model(self, table: PriceTable) -> None:
        assert table.price("claude-haiku-4-5-20251001") == table.price("claude-haiku-4-5")
        assert table.price("claude-sonnet-4-5-20250929") == table.price("claude-sonnet-4-5")
        assert table.price("claude-opus-4-5-20251101") == table.price("claude-opus-4-5")

    def test_context_window(self, table: PriceTable) -> None:
        assert table.context_window("claude-sonnet-5") == 1_000_000
        assert table.context_window("claude-haiku-4-5") == 200_000


class TestCost:
    USAGE = TokenUsage(
        input_tokens=1_000,
        output_tokens=2_000,
        cache_write_5m_tokens=3_000,
        cache_write_1h_tokens=4_000,
        cache_read_input_tokens=5_000,
        web_search_requests=3,
    )

    def test_each_component_at_its_rate(self, table: PriceTable) -> None:
        # claude-sonnet-5: $2 in, $10 out, $2.50 5m write, $4 1h write, $0.20 read, $10 / 1000 searches
        expected = (1_000 * 2 + 2_000 * 10 + 3_000 * 2.5 + 4_000 * 4 + 5_000 * 0.2) / 1e6 + 3 * 0.01
        assert table.cost("claude-sonnet-5", self.USAGE) == pytest.approx(expected, abs=1e-12)
        assert expected == pytest.approx(0.0765)

    @pytest.mark.parametrize(
        ("usage", "dollars"),
        [
            (TokenUsage(input_tokens=1_000_000), 2.0),
            (TokenUsage(output_tokens=1_000_000), 10.0),
            (TokenUsage(cache_write_5m_tokens=1_000_000), 2.5),
            (TokenUsage(cache_write_1h_tokens=1_000_000), 4.0),
            (TokenUsage(cache_read_input_tokens=1_000_000), 0.2),
            (TokenUsage(web_search_requests=1_000), 10.0),
        ],
    )
    def test_one_component_alone(self, table: PriceTable, usage: TokenUsage, dollars: float) -> None:
        assert table.cost("claude-sonnet-5", usage) == pytest.approx(dollars)

    def test_input_cost_leaves_out_output_and_searches(self, table: PriceTable) -> None:
        expected = (1_000 * 2 + 3_000 * 2.5 + 4_000 * 4 + 5_000 * 0.2) / 1e6
        assert table.input_cost("claude-sonnet-5", self.USAGE) == pytest.approx(expected, abs=1e-12)

    def test_search_cost(self, table: PriceTable) -> None:
        assert table.search_cost(250) == pytest.approx(2.5)
        assert table.web_search_per_1000 == 10.0

    def test_empty_usage_costs_nothing(self, table: PriceTable) -> None:
        assert table.cost("claude-opus-5", TokenUsage()) == 0.0


class TestHaikuLongPromptTier:
    def test_up_to_100k_input_is_billed_at_the_base_rates(self, table: PriceTable) -> None:
        usage = TokenUsage(input_tokens=100_000, output_tokens=1_000)
        assert table.cost("claude-haiku-5-5", usage) == pytest.approx((100_000 * 0.10 + 1_000 * 0.50) / 1e6)

    def test_above_100k_the_whole_request_is_billed_at_the_long_rates(self, table: PriceTable) -> None:
        usage = TokenUsage(input_tokens=100_001, output_tokens=1_000)
        assert table.cost("claude-haiku-5-5", usage) == pytest.approx((100_001 * 0.50 + 1_000 * 2.50) / 1e6)

    def test_cached_tokens_count_toward_the_threshold(self, table: PriceTable) -> None:
        usage = TokenUsage(input_tokens=10, cache_read_input_tokens=90_000, cache_write_5m_tokens=20_000)
        expected = (10 * 0.50 + 90_000 * 0.05 + 20_000 * 0.625) / 1e6
        assert table.input_cost("claude-haiku-5-5", usage) == pytest.approx(expected)


class TestUnknownModel:
    def test_is_an_error_that_says_where_to_add_a_price(self, table: PriceTable) -> None:
        with pytest.raises(UnknownModelPrice, match=r"pricing\.models") as caught:
            table.cost("claude-imaginary-9", TokenUsage(input_tokens=1))
        assert caught.value.model == "claude-imaginary-9"
        assert not table.has_price("claude-imaginary-9")
        assert not has_default_price("claude-imaginary-9")


class TestConfigOverride:
    def test_a_new_model_gets_derived_cache_prices_and_a_conservative_window(self) -> None:
        table = PriceTable.from_config(PricingSettings(models={"my-model": ModelPrice(input=4, output=8)}))
        assert table.price("my-model") == Price(
            input=4, output=8, cache_write_5m=5, cache_write_1h=8, cache_read=0.4, context_window=200_000
        )

    def test_an_override_replaces_a_shipped_row_but_keeps_its_window(self) -> None:
        entry = ModelPrice(input=3, output=15, cache_read=0.5)
        table = PriceTable.from_config(PricingSettings(models={"claude-sonnet-5": entry}))
        p = table.price("claude-sonnet-5")
        assert (p.input, p.output, p.cache_write_5m, p.cache_write_1h, p.cache_read) == pytest.approx(
            (3, 15, 3.75, 6, 0.5)
        )
        assert p.context_window == 1_000_000
        assert table.price("claude-opus-5") == SHIPPED_PRICES["claude-opus-5"]  # others untouched

    def test_explicit_window_and_search_price(self) -> None:
        pricing = PricingSettings(
            models={"m": ModelPrice(input=1, output=1, context_window=32_000)}, web_search_per_1000=25.0
        )
        table = PriceTable.from_config(pricing)
        assert table.context_window("m") == 32_000
        assert table.cost("m", TokenUsage(web_search_requests=4)) == pytest.approx(0.1)

    def test_an_override_of_a_tiered_model_has_no_tier(self) -> None:
        pricing = PricingSettings(models={"claude-haiku-5-5": ModelPrice(input=0.1, output=0.5)})
        table = PriceTable.from_config(pricing)
        assert table.cost("claude-haiku-5-5", TokenUsage(input_tokens=200_000)) == pytest.approx(0.02)
