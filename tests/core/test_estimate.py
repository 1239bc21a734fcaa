"""The pre-flight estimate: an honest low-to-high range from the program's shape."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from core.budget.pricing import PriceTable, UnknownModelPrice
from core.config.loader import load_config
from core.config.model import ResearchConfig
from core.estimate import EXPECTED, Estimate, _Conversation, estimate, format_estimate
from core.usage import TokenUsage

REPO = Path(__file__).resolve().parents[2]
PRICES = PriceTable.default()


def program(**defaults: Any) -> ResearchConfig:
    """Two layers: three researchers, then one synthesis that reads them."""
    return ResearchConfig.model_validate(
        {
            "program": {"name": "p", "question": "Will it work?"},
            "defaults": {"model": "claude-sonnet-5", "max_tokens": 2_000, "max_turns": 3, **defaults},
            "layers": [
                {"name": "research", "agents": [{"id": f"r{i}", "brief": "Look into it."} for i in range(3)]},
                {"name": "synthesis", "agents": [{"id": "s", "brief": "Combine."}]},
            ],
            "execution_settings": {"budget": {"max_cost_usd": 30.0, "max_searches": 200}},
        }
    )


def ordered(est: Estimate) -> None:
    spans = [est.usd, est.searches]
    spans += [x for layer in est.layers for x in (layer.usd, layer.searches)]
    spans += [x for agent in est.agents for x in (agent.usd, agent.searches)]
    for span in spans:
        assert 0 < span.low <= span.expected <= span.high


def test_the_default_program_has_an_ordered_range_everywhere() -> None:
    est = estimate(load_config(REPO / "research_config.yaml"), PRICES)
    ordered(est)
    assert est.usd.low < est.usd.expected / 2  # low is genuinely low
    assert [layer.agent_ids for layer in est.layers][1] == ("cross-tech", "cross-market")
    assert sum(layer.usd.expected for layer in est.layers) == pytest.approx(est.usd.expected)


@pytest.mark.parametrize("caching", [True, False])
def test_every_scenario_grows_with_max_turns(caching: bool) -> None:
    totals = [estimate(program(max_turns=t, caching={"enabled": caching}), PRICES).usd for t in range(1, 6)]
    # From two turns on, each added turn adds a research turn. (A one-turn plan's only turn both
    # searches and reports, so its report, read by the next layer, may be the longer one.)
    for fewer, more in itertools.pairwise(totals[1:]):
        assert fewer.low <= more.low
        assert fewer.expected <= more.expected
        assert fewer.high <= more.high
    assert totals[0].expected < totals[3].expected  # 1 turn vs brief + 2 follow-ups + report


def test_ordering_holds_across_shapes() -> None:
    for shape in (
        {"max_tokens": 500},
        {"max_tokens": 16_000, "max_searches": 3},
        {"web_search": {"max_uses": 1}},
        {"caching": {"ttl": "1h"}},
        {"model": "claude-haiku-5-5"},
    ):
        ordered(estimate(program(**shape), PRICES))


def test_caching_makes_the_expected_run_cheaper() -> None:
    on = estimate(program(max_turns=4), PRICES).usd.expected
    off = estimate(program(max_turns=4, caching={"enabled": False}), PRICES).usd.expected
    assert on < off


def test_reading_earlier_reports_costs_input_tokens() -> None:
    est = estimate(program(), PRICES)
    by_id = {a.agent_id: a for a in est.agents}
    assert by_id["s"].usd.expected > by_id["r0"].usd.expected  # same shape, plus three reports to read


def test_searches_respect_the_agents_cap() -> None:
    est = estimate(program(max_searches=4, max_turns=4), PRICES)
    assert all(a.searches.high == 4 for a in est.agents)
    assert est.searches.high == 16


def test_a_model_without_a_price_is_an_error() -> None:
    with pytest.raises(UnknownModelPrice):
        estimate(program(model="claude-imaginary-9"), PRICES)


def test_the_table_shows_layers_agents_total_and_caps() -> None:
    text = format_estimate(estimate(program(), PRICES))
    for needle in ("L1 research (3)", "L2 synthesis (1)", "r0", "total", "Budget caps: $30.00, 200 searches"):
        assert needle in text
    assert "WARNING" not in text


def test_the_table_warns_when_the_expected_cost_exceeds_the_cap() -> None:
    data = program().model_dump()
    data["execution_settings"]["budget"]["max_cost_usd"] = 0.01
    text = format_estimate(estimate(ResearchConfig.model_validate(data), PRICES))
    assert "WARNING: the expected cost" in text
    assert "exceeds the $0.01 cap" in text


def test_a_batch_layer_is_priced_at_half_its_tokens_and_the_saving_is_said() -> None:
    streamed = program()
    data = streamed.model_dump()
    data["layers"][0]["mode"] = "batch"
    batched = ResearchConfig.model_validate(data)
    plain, batch = estimate(streamed, PRICES), estimate(batched, PRICES)
    layer, before = batch.layers[0], plain.layers[0]
    assert layer.mode == "batch" and layer.streamed_usd == before.usd  # the same calls, streamed
    assert layer.searches == before.searches
    searches_usd = before.searches.expected * PRICES.web_search_per_1000 / 1000  # not discounted
    assert layer.usd.expected == pytest.approx((before.usd.expected - searches_usd) / 2 + searches_usd)
    assert batch.layers[1].usd == plain.layers[1].usd and batch.layers[1].batch_saving is None
    saving = layer.batch_saving
    assert saving is not None and saving.expected == pytest.approx(before.usd.expected - layer.usd.expected)
    text = format_estimate(batch)
    assert "L1 research (3, batch)" in text and f"saves ${saving.expected:,.2f}" in text


@pytest.mark.parametrize("ttl", ["5m", "1h"])
def test_a_report_call_is_priced_without_the_cache_as_it_is_sent(ttl: str) -> None:
    """The report reads and writes no cache (core.budget.ledger.REPORT_CACHE_WRITE): it is priced
    as plain input even where the research call before it wrote the whole prompt."""
    config = program(max_turns=2, caching={"enabled": True, "ttl": ttl})
    agent = config.agents()[0]
    conversation = _Conversation(config, PRICES, agent, EXPECTED)
    conversation.history += 5_000
    conversation.call(2, 800)
    assert conversation.cached > EXPECTED.cache_min_prefix  # a research call would read it
    prompt, before = conversation.history, conversation.usd
    conversation.call(0, 900, report=True)
    plain = TokenUsage(input_tokens=prompt, output_tokens=900)
    assert conversation.usd - before == pytest.approx(PRICES.cost(agent.model, plain))
