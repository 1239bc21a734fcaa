"""Conformance of ``POST /v1/messages`` with web search, through the official SDK only."""

from __future__ import annotations

from typing import Any

from anthropic import AsyncAnthropic
from anthropic.types import (
    CitationsWebSearchResultLocation,
    Message,
    ServerToolUseBlock,
    TextBlock,
    WebSearchResultBlock,
    WebSearchToolResultBlock,
    WebSearchToolResultError,
)

from core.simulator import Simulator, SimulatorSettings
from tests.core.simulator.conftest import WEB_SEARCH, StartSimulator, request, sdk


async def stream_final(client: AsyncAnthropic, **params: Any) -> tuple[Message, list[Any]]:
    async with client.messages.stream(**params) as stream:
        events = [event async for event in stream]
        return await stream.get_final_message(), events


def result_hits(message: Message) -> list[WebSearchResultBlock]:
    """Every search hit of every result block of ``message``."""
    blocks = [b for b in message.content if isinstance(b, WebSearchToolResultBlock)]
    return [hit for b in blocks if isinstance(b.content, list) for hit in b.content]


async def test_each_block_kind_parses_into_its_sdk_type(client: AsyncAnthropic) -> None:
    message, _ = await stream_final(client, **request())

    kinds = [type(b) for b in message.content]
    assert ServerToolUseBlock in kinds and WebSearchToolResultBlock in kinds
    search = next(b for b in message.content if isinstance(b, ServerToolUseBlock))
    assert search.id.startswith("srvtoolu_") and search.name == "web_search"
    assert isinstance(search.input, dict) and "sodium-ion" in str(search.input["query"])
    result = next(b for b in message.content if isinstance(b, WebSearchToolResultBlock))
    assert result.tool_use_id == search.id
    assert isinstance(result.content, list) and result.content
    for hit in result.content:
        assert isinstance(hit, WebSearchResultBlock)
        assert hit.url.startswith("https://") and ".example/" in hit.url
        assert "(simulated)" in hit.title and hit.encrypted_content
    cited = [b for b in message.content if isinstance(b, TextBlock) and b.citations]
    assert cited
    urls = {hit.url for hit in result_hits(message)}
    for block in cited:
        for citation in block.citations or []:
            assert isinstance(citation, CitationsWebSearchResultLocation)
            assert citation.url in urls and len(citation.cited_text) <= 150 and citation.encrypted_index
    assert message.stop_reason == "end_turn"


async def test_streamed_and_non_streamed_answers_are_equal_for_one_seed(client: AsyncAnthropic) -> None:
    params = request("Compare heat pumps and gas boilers in cold climates")
    streamed, _ = await stream_final(client, **params)
    created = await client.messages.create(**params)

    assert streamed.model_dump() == created.model_dump()


async def test_another_seed_gives_another_answer(start_simulator: StartSimulator) -> None:
    first = await sdk(await start_simulator(SimulatorSettings(seed=1))).messages.create(**request())
    second = await sdk(await start_simulator(SimulatorSettings(seed=2))).messages.create(**request())

    assert first.model_dump() != second.model_dump()


async def test_web_search_requests_count_searches_that_returned_results(
    start_simulator: StartSimulator,
) -> None:
    sim = await start_simulator(SimulatorSettings(searches_per_turn=(3, 3), pause_turn_probability=0))
    message, _ = await stream_final(sdk(sim), **request(tools=[{**WEB_SEARCH, "max_uses": 2}]))

    results = [b for b in message.content if isinstance(b, WebSearchToolResultBlock)]
    errors = [b for b in results if isinstance(b.content, WebSearchToolResultError)]
    assert len(results) == 3 and len(errors) == 1
    assert errors[0].content.error_code == "max_uses_exceeded"  # type: ignore[union-attr]
    assert message.usage.server_tool_use is not None
    assert message.usage.server_tool_use.web_search_requests == 2


async def test_usage_in_message_delta_is_cumulative_and_grows_with_results(client: AsyncAnthropic) -> None:
    message, events = await stream_final(client, **request())

    start = next(e for e in events if e.type == "message_start").message.usage
    delta = [e for e in events if e.type == "message_delta"][-1].usage
    assert start.output_tokens <= delta.output_tokens == message.usage.output_tokens
    assert delta.input_tokens is not None and delta.input_tokens > start.input_tokens
    assert message.usage.input_tokens == delta.input_tokens


async def test_output_is_capped_by_max_tokens(client: AsyncAnthropic) -> None:
    message = await client.messages.create(**request(max_tokens=30))

    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 30


async def test_without_the_tool_the_answer_is_plain_text(client: AsyncAnthropic) -> None:
    params = request()
    del params["tools"]
    message, _ = await stream_final(client, **params)

    assert message.content and all(isinstance(b, TextBlock) and not b.citations for b in message.content)
    assert message.usage.server_tool_use is None and message.stop_reason == "end_turn"


async def test_blocked_domains_are_never_returned_subdomains_included(client: AsyncAnthropic) -> None:
    blocked = ["university.example", "daily-ledger.example", "industry-review.example"]
    tool = {**WEB_SEARCH, "blocked_domains": blocked}
    message = await client.messages.create(**request(tools=[tool]))

    hits = result_hits(message)
    assert hits
    assert not any(any(d in h.url for d in blocked) for h in hits)


async def test_allowed_domains_with_a_path_restrict_results(client: AsyncAnthropic) -> None:
    tool = {**WEB_SEARCH, "allowed_domains": ["industry-review.example/analysis", "university.example"]}
    message = await client.messages.create(**request(tools=[tool]))

    hits = result_hits(message)
    assert hits
    for hit in hits:
        assert hit.url.startswith(
            ("https://www.industry-review.example/analysis/", "https://research.university.example/")
        )


async def test_a_report_request_gets_markdown_with_headings(client: AsyncAnthropic) -> None:
    message = await client.messages.create(**request("Write your final report on offshore wind costs"))

    text = "".join(b.text for b in message.content if isinstance(b, TextBlock))
    assert "\n# Report:" in text and "\n## " in text


async def test_refusal_directive_ends_in_refusal_with_details(client: AsyncAnthropic) -> None:
    message, _ = await stream_final(client, **request("Research lockpicking [sim:refusal]"))

    assert message.stop_reason == "refusal"
    assert message.stop_details is not None and message.stop_details.type == "refusal"
    assert any(isinstance(b, TextBlock) and b.text for b in message.content)


async def test_max_tokens_directive_cuts_the_turn(client: AsyncAnthropic) -> None:
    message = await client.messages.create(**request("Research tides [sim:max_tokens]"))

    assert message.stop_reason == "max_tokens"


async def test_all_web_search_versions_are_accepted(client: AsyncAnthropic) -> None:
    for version in ("web_search_20250305", "web_search_20260209", "web_search_20260318"):
        tool = {"type": version, "name": "web_search", "allowed_callers": ["direct"]}
        message = await client.messages.create(**request(tools=[tool]))
        assert message.usage.server_tool_use is not None


async def test_count_tokens_matches_the_uncached_input_of_a_plain_turn(client: AsyncAnthropic) -> None:
    params = request()
    del params["tools"]
    counted = await client.messages.count_tokens(model=params["model"], messages=params["messages"])
    message = await client.messages.create(**params)

    assert counted.input_tokens == message.usage.input_tokens > 0


async def test_history_of_earlier_turns_is_accepted_and_counted(client: AsyncAnthropic) -> None:
    first = await client.messages.create(**request())
    history = [
        {"role": "user", "content": "Research sodium-ion batteries for grid storage"},
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": "Now look at cost trends"},
    ]
    second = await client.messages.create(**request(messages=history))

    assert second.usage.input_tokens > first.usage.input_tokens


async def test_stats_log_each_request(sim: Simulator, client: AsyncAnthropic) -> None:
    await client.messages.create(**request())

    record = sim.stats.recent[-1]
    assert sim.stats.requests == 1 and record.status == 200 and record.messages == 1
    assert record.request_id.startswith("req_") and len(record.body_sha256) == 64


async def test_invariants_hold_across_seeds_and_settings(start_simulator: StartSimulator) -> None:
    for seed in range(12):
        settings = SimulatorSettings(seed=seed, pause_turn_probability=0.4, searches_per_turn=(0, 4))
        client = sdk(await start_simulator(settings))
        prompt = ["Research wind turbine recycling", "Write a report on hydrogen storage"][seed % 2]
        tools = [{**WEB_SEARCH, "max_uses": 1 + seed % 3}]
        params = request(prompt, max_tokens=[40, 300, 4096][seed % 3], tools=tools)
        streamed, _ = await stream_final(client, **params)
        created = await client.messages.create(**params)

        assert streamed.model_dump() == created.model_dump(), seed
        usage = created.usage
        assert usage.output_tokens <= params["max_tokens"]
        if created.stop_reason == "max_tokens":
            assert usage.output_tokens == params["max_tokens"]
        results = [b for b in created.content if isinstance(b, WebSearchToolResultBlock)]
        searches = [b for b in created.content if isinstance(b, ServerToolUseBlock)]
        assert usage.server_tool_use is not None
        assert usage.server_tool_use.web_search_requests == sum(isinstance(b.content, list) for b in results)
        assert usage.server_tool_use.web_search_requests <= tools[0]["max_uses"]
        if created.stop_reason == "pause_turn":
            assert created.content[-1] is searches[-1] and len(searches) == len(results) + 1
        else:
            assert len(searches) == len(results)
        urls = {hit.url for hit in result_hits(created)}
        for block in created.content:
            if isinstance(block, TextBlock):
                assert all(c.url in urls for c in block.citations or [])  # type: ignore[union-attr]
