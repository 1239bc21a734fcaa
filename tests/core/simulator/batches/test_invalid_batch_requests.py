"""Invalid Message Batches calls get the API's status, error type and a message naming the field.

The batch's envelope is checked when it is created (400 ``invalid_request_error``: the whole batch is
refused and nothing is submitted); a batch id the simulator does not hold is a 404
``not_found_error``; acting on a batch in the wrong state (deleting one still processing, reading
results before the end, canceling one that ended) is a 400.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from core.simulator import Simulator, SimulatorSettings
from tests.core.simulator.batches.conftest import entry, held
from tests.core.simulator.conftest import StartSimulator
from tests.waits import eventually

MAX_REQUESTS = 5
BATCHES = "/v1/messages/batches"
HEADERS = {"x-api-key": "test", "anthropic-version": "2023-06-01", "content-type": "application/json"}
NO_KEY = {k: v for k, v in HEADERS.items() if k != "x-api-key"}
NO_VERSION = {k: v for k, v in HEADERS.items() if k != "anthropic-version"}
BAD, NOT_FOUND, UNAUTHORIZED = (
    (400, "invalid_request_error"),
    (404, "not_found_error"),
    (401, "authentication_error"),
)
UNKNOWN = "msgbatch_01NoSuchBatchAtAllXXXXXXX"
PATTERN = "custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'"


def batch(*requests: Any) -> dict[str, Any]:
    return {"requests": list(requests)}


def params_without(key: str) -> dict[str, Any]:
    return {k: v for k, v in entry("x")["params"].items() if k != key}


# (case, method, path: {running} / {ended} stand for such batches, payload, headers, (status, type), fragment)
CASES: list[tuple[str, str, str, Any, dict[str, str], tuple[int, str], str]] = [
    ("invalid JSON", "POST", BATCHES, "{not json", HEADERS, BAD, "There was an error parsing the body"),
    ("body not an object", "POST", BATCHES, [entry("a")], HEADERS, BAD, "Request body must be a JSON object"),
    ("no requests", "POST", BATCHES, {}, HEADERS, BAD, "requests: Field required"),
    ("requests not a list", "POST", BATCHES, {"requests": entry("a")}, HEADERS, BAD,
     "requests: Input should be a valid list"),
    ("empty requests", "POST", BATCHES, batch(), HEADERS, BAD, "requests: List should have at least 1 item"),
    ("too many requests", "POST", BATCHES, batch(*(entry(f"r{i}") for i in range(MAX_REQUESTS + 1))),
     HEADERS, BAD, f"requests: List should have at most {MAX_REQUESTS} items after validation, not 6"),
    ("Messages params at the top level", "POST", BATCHES, {**batch(entry("a")), "model": "claude-sonnet-5"},
     HEADERS, BAD, "model: Extra inputs are not permitted"),
    ("a request not an object", "POST", BATCHES, batch("a"), HEADERS, BAD,
     "requests.0: Input should be a valid dictionary"),
    ("no custom_id", "POST", BATCHES, batch({"params": entry("a")["params"]}), HEADERS, BAD,
     "requests.0.custom_id: Field required"),
    ("no params", "POST", BATCHES, batch(entry("a"), {"custom_id": "b"}), HEADERS, BAD,
     "requests.1.params: Field required"),
    ("params not an object", "POST", BATCHES, batch({"custom_id": "a", "params": "hi"}), HEADERS, BAD,
     "requests.0.params: Input should be a valid dictionary"),
    ("an unknown field in a request", "POST", BATCHES, batch({**entry("a"), "param": {}}), HEADERS, BAD,
     "requests.0.param: Extra inputs are not permitted"),
    ("custom_id not a string", "POST", BATCHES, batch({**entry("a"), "custom_id": 42}), HEADERS, BAD,
     "requests.0.custom_id: Input should be a valid string"),
    ("empty custom_id", "POST", BATCHES, batch(entry("")), HEADERS, BAD, "requests.0." + PATTERN),
    ("custom_id of 65 characters", "POST", BATCHES, batch(entry("a"), entry("x" * 65)), HEADERS, BAD,
     "requests.1." + PATTERN),
    ("custom_id with a space", "POST", BATCHES, batch(entry("agent 1")), HEADERS, BAD,
     "requests.0." + PATTERN),
    ("custom_id with a colon", "POST", BATCHES, batch(entry("agent:1")), HEADERS, BAD,
     "requests.0." + PATTERN),
    ("duplicate custom_id", "POST", BATCHES, batch(entry("a"), entry("b"), entry("a")), HEADERS, BAD,
     "requests.2.custom_id: Duplicate custom_id 'a' (also requests.0.custom_id)"),
    ("no API key", "POST", BATCHES, batch(entry("a")), NO_KEY, UNAUTHORIZED, "x-api-key"),
    ("no anthropic-version", "GET", BATCHES, None, NO_VERSION, BAD, "anthropic-version: header is required"),
    ("retrieve an unknown batch", "GET", f"{BATCHES}/{UNKNOWN}", None, HEADERS, NOT_FOUND, UNKNOWN),
    ("results of an unknown batch", "GET", f"{BATCHES}/{UNKNOWN}/results", None, HEADERS, NOT_FOUND, UNKNOWN),
    ("cancel an unknown batch", "POST", f"{BATCHES}/{UNKNOWN}/cancel", None, HEADERS, NOT_FOUND, UNKNOWN),
    ("delete an unknown batch", "DELETE", f"{BATCHES}/{UNKNOWN}", None, HEADERS, NOT_FOUND, UNKNOWN),
    ("delete a batch in progress", "DELETE", BATCHES + "/{running}", None, HEADERS, BAD, "cancel it first"),
    ("results before the batch ended", "GET", BATCHES + "/{running}/results", None, HEADERS, BAD,
     "is still in_progress: its results are available once it has ended"),
    ("cancel a batch that ended", "POST", BATCHES + "/{ended}/cancel", None, HEADERS, BAD,
     "has already ended and cannot be canceled"),
    ("list with limit 0", "GET", BATCHES + "?limit=0", None, HEADERS, BAD,
     "limit: Input should be greater than or equal to 1"),
    ("list with limit 1001", "GET", BATCHES + "?limit=1001", None, HEADERS, BAD,
     "limit: Input should be less than or equal to 1000"),
    ("list with a limit not a number", "GET", BATCHES + "?limit=ten", None, HEADERS, BAD,
     "limit: Input should be a valid integer"),
    ("list with both cursors", "GET", BATCHES + "?after_id={ended}&before_id={running}", None, HEADERS, BAD,
     "either after_id or before_id"),
    ("list after an unknown batch", "GET", f"{BATCHES}?after_id={UNKNOWN}", None, HEADERS, BAD,
     f"after_id: no Message Batch with id '{UNKNOWN}'"),
]  # fmt: skip


@pytest.fixture
async def sim(start_simulator: StartSimulator) -> Simulator:
    return await start_simulator(
        SimulatorSettings(
            pause_turn_probability=0.0, batch_processing_s=60.0, batch_max_requests=MAX_REQUESTS
        )
    )


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, sim: Simulator, method: str, path: str, payload: Any, headers: dict[str, str]
) -> tuple[int, dict[str, str], Any]:
    data = (
        None if payload is None else (payload if isinstance(payload, str) else json.dumps(payload)).encode()
    )
    async with http.request(method, sim.base_url + path, data=data, headers=headers) as response:
        return response.status, dict(response.headers), await response.json()


@pytest.fixture
async def ids(sim: Simulator, http: aiohttp.ClientSession) -> dict[str, str]:
    """A batch still running and one that ended (canceled before any request finished)."""
    _, _, running = await call(http, sim, "POST", BATCHES, batch(entry("a")), HEADERS)
    _, _, ended = await call(http, sim, "POST", BATCHES, batch(entry("a")), HEADERS)
    await call(http, sim, "POST", f"{BATCHES}/{ended['id']}/cancel", None, HEADERS)
    await eventually(lambda: held(sim, ended["id"]).ended, "the canceled batch to end")
    return {"running": running["id"], "ended": ended["id"]}


def test_the_table_covers_at_least_20_invalid_batch_requests() -> None:
    assert len(CASES) >= 20 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("case", "method", "path", "payload", "headers", "expected", "fragment"), CASES, ids=[c[0] for c in CASES]
)
async def test_an_invalid_batch_request_gets_the_apis_status_and_type(
    sim: Simulator,
    http: aiohttp.ClientSession,
    ids: dict[str, str],
    case: str,
    method: str,
    path: str,
    payload: Any,
    headers: dict[str, str],
    expected: tuple[int, str],
    fragment: str,
) -> None:
    submitted = dict(sim.state.batches.submitted)

    status, response_headers, answer = await call(http, sim, method, path.format(**ids), payload, headers)

    assert (status, answer["error"]["type"]) == expected, answer
    assert fragment in answer["error"]["message"]
    assert answer["type"] == "error" and answer["request_id"] == response_headers["request-id"]
    assert response_headers["x-should-retry"] == "false"
    assert dict(sim.state.batches.submitted) == submitted, "a refused call submits nothing"


async def test_the_valid_neighbours_are_accepted(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """The longest custom_id, every allowed character, exactly the maximum of requests: all accepted."""
    longest = "A-z_09" + "x" * 58
    neighbours = [
        batch(*(entry(f"r{i}") for i in range(MAX_REQUESTS))),
        batch(entry(longest), entry("a"), entry("A"), entry("-"), entry("_")),
        batch(entry("a", messages=[]), entry("b", model="claude-imaginary-9")),  # bad params: errored later
    ]
    for body in neighbours:
        status, _, answer = await call(http, sim, "POST", BATCHES, body, HEADERS)
        assert status == 200 and answer["processing_status"] == "in_progress", answer
        assert answer["request_counts"]["processing"] == len(body["requests"])
    assert sim.state.batches.submitted[longest] == 1
