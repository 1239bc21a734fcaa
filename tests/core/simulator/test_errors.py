"""HTTP errors shaped like the API's: 401, 400s with API-like messages, context window, headers."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from anthropic import AsyncAnthropic, AuthenticationError, BadRequestError, omit
from anthropic.types import Message

from core.simulator import Simulator, SimulatorSettings
from tests.core.simulator.conftest import MODEL, WEB_SEARCH, StartSimulator, request, sdk


async def test_no_credentials_gives_401_with_the_api_error_body(sim: Simulator) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{sim.base_url}/v1/messages", json=request()) as response,
    ):
        body = await response.json()
        request_id = response.headers["request-id"]

    assert response.status == 401
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
    assert body["request_id"] == request_id and request_id.startswith("req_")


async def test_the_sdk_without_its_authorization_header_gets_an_authentication_error(sim: Simulator) -> None:
    # An empty key cannot even be sent ("Bearer " is an illegal header value), so omit the header.
    client = AsyncAnthropic(
        base_url=sim.base_url,
        api_key="unused",
        max_retries=0,
        default_headers={"Authorization": omit},  # type: ignore[dict-item]
    )
    with pytest.raises(AuthenticationError) as caught:
        await client.messages.create(**request())
    assert caught.value.status_code == 401 and caught.value.request_id


async def test_x_api_key_is_accepted_too(sim: Simulator) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{sim.base_url}/v1/messages",
            json=request(),
            headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
        ) as response,
    ):
        assert response.status == 200


def _without(key: str) -> dict[str, Any]:
    params = request()
    del params[key]
    return params


MALFORMED: list[tuple[str, dict[str, Any], str]] = [
    ("no max_tokens", _without("max_tokens"), "max_tokens: Field required"),
    ("empty messages", request(messages=[]), "at least one message"),
    (
        "both domain filters",
        request(tools=[{**WEB_SEARCH, "allowed_domains": ["a.example"], "blocked_domains": ["b.example"]}]),
        "allowed_domains and blocked_domains",
    ),
    (
        "unknown tool type",
        request(tools=[{"type": "web_search_19990101", "name": "web_search"}]),
        "Input tag",
    ),
    ("wrong web search name", request(tools=[{**WEB_SEARCH, "name": "search"}]), "'web_search'"),
    (
        "domain with a scheme",
        request(tools=[{**WEB_SEARCH, "allowed_domains": ["https://a.example"]}]),
        "domain",
    ),
    ("wildcard in the domain", request(tools=[{**WEB_SEARCH, "blocked_domains": ["*.a.example"]}]), "domain"),
    ("assistant first", request(messages=[{"role": "assistant", "content": "hi"}]), "first message"),
    (
        "five cache breakpoints",
        request(
            system=[
                {"type": "text", "text": f"s{i}", "cache_control": {"type": "ephemeral"}} for i in range(4)
            ],
            cache_control={"type": "ephemeral"},
        ),
        "A maximum of 4 blocks with cache_control may be provided. Found 5.",
    ),
]


@pytest.mark.parametrize(("case", "params", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
async def test_malformed_requests_get_400_invalid_request_error(
    client: AsyncAnthropic, case: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(BadRequestError) as caught:
        # The SDK's generic POST, since ``messages.create`` itself refuses a call without max_tokens.
        await client.post("/v1/messages", body=params, cast_to=Message)

    error = caught.value
    assert error.type == "invalid_request_error" and message in error.message
    assert error.response.headers["x-should-retry"] == "false" and error.request_id


async def test_a_tampered_citation_index_in_history_is_rejected(client: AsyncAnthropic) -> None:
    first = await client.messages.create(**request())
    content = [b.model_dump(exclude_none=True) for b in first.content]
    cited = next(b for b in content if b["type"] == "text" and b.get("citations"))
    cited["citations"][0]["encrypted_index"] = "Zm9yZ2Vk"
    history = [
        {"role": "user", "content": "Research sodium-ion batteries for grid storage"},
        {"role": "assistant", "content": content},
        {"role": "user", "content": "More, please"},
    ]

    with pytest.raises(BadRequestError, match="encrypted_index"):
        await client.messages.create(**request(messages=history))


async def test_a_prompt_past_the_context_window_is_rejected(start_simulator: StartSimulator) -> None:
    client = sdk(await start_simulator(SimulatorSettings(context_window=2_000)))

    with pytest.raises(BadRequestError, match=r"prompt is too long: \d+ tokens > 2000 maximum"):
        await client.messages.create(**request("word " * 4_000))


async def test_the_default_window_depends_on_the_model(client: AsyncAnthropic) -> None:
    prompt = "word " * 250_000  # about 312K tokens: past 200K, within 1M
    with pytest.raises(BadRequestError, match="> 200000 maximum"):
        await client.messages.create(**request(prompt, model="claude-haiku-4-5", tools=[]))
    message = await client.messages.create(**request(prompt, model="claude-opus-4-6", tools=[]))
    assert message.usage.input_tokens > 300_000


async def test_input_plus_max_tokens_past_the_window_stops_gracefully(
    start_simulator: StartSimulator,
) -> None:
    client = sdk(await start_simulator(SimulatorSettings(context_window=2_000)))
    message = await client.messages.create(**request("word " * 1_550, tools=[], max_tokens=4_000))

    assert message.stop_reason == "model_context_window_exceeded"


async def test_every_response_has_request_id_and_rate_limit_headers(client: AsyncAnthropic) -> None:
    raw = await client.messages.with_raw_response.create(**request())
    headers = raw.headers

    assert headers["request-id"].startswith("req_")
    for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
        for suffix in ("limit", "remaining", "reset"):
            assert f"anthropic-ratelimit-{kind}-{suffix}" in headers
    assert headers["anthropic-ratelimit-requests-reset"].endswith("Z")


async def test_count_tokens_needs_no_max_tokens_and_validates(client: AsyncAnthropic) -> None:
    counted = await client.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "x" * 400}]
    )
    assert counted.input_tokens >= 100

    with pytest.raises(BadRequestError):
        await client.messages.count_tokens(model=MODEL, messages=[])


async def test_the_stats_endpoint_reports_requests(sim: Simulator, client: AsyncAnthropic) -> None:
    await client.messages.create(**request())
    with pytest.raises(BadRequestError):
        await client.messages.create(**request(messages=[]))
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sim.base_url}/_simulator/stats") as response,
    ):
        stats = await response.json()

    assert stats["requests"] == 2 and stats["by_status"] == {"200": 1, "400": 1}
    assert [r["status"] for r in stats["recent"]] == [200, 400]
    assert all(len(r["body_sha256"]) == 64 and r["request_id"].startswith("req_") for r in stats["recent"])


async def test_an_unknown_route_is_an_api_shaped_404(sim: Simulator) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{sim.base_url}/v1/nothing", json={}, headers={"authorization": "Bearer k"}
        ) as response,
    ):
        body = await response.json()
    assert response.status == 404 and body["error"]["type"] == "not_found_error"
    assert body["request_id"] == response.headers["request-id"]
