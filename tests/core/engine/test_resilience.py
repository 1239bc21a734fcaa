"""Faults, rate limits and bad credentials on the simulator: retried, respected, or failed fast."""

from __future__ import annotations

import itertools
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from core.api.retry import ErrorInfo
from core.cli import main
from core.control import RunStatus
from core.engine.request import wire_messages
from core.persistence.rundir import RunDir
from core.reports.verify import verify_run
from core.runner import start_run
from core.simulator import Simulator, SimulatorSettings
from tests.core import programs

FAULT_MATRIX = {
    "rate_limit": 0.2,
    "overloaded": 0.1,
    "server_error": 0.05,
    "stream_error": 0.05,
    "disconnect": 0.05,
}
FAST_RETRY = {"retry": {"max_attempts": 12, "base_delay_s": 0.01, "max_delay_s": 0.05}}


async def test_the_default_program_survives_the_fault_matrix(tmp_path: Path) -> None:
    config = programs.default_program_fast(tmp_path)
    import yaml

    data = yaml.safe_load(config.read_text())
    data["execution_settings"].update(FAST_RETRY)
    config = programs.write(tmp_path, data)
    settings = SimulatorSettings(seed=11, faults=FAULT_MATRIX, retry_after_s=0.05)
    async with Simulator(settings) as sim:
        orchestrator = await start_run(config, tmp_path / "runs", simulate=True, base_url=sim.base_url)
        outcome = await orchestrator.run()
        injected = Counter(sim.stats.by_fault)

    assert outcome.status is RunStatus.COMPLETED
    run_dir = outcome.run_dir
    summary = json.loads((run_dir / "summary.json").read_text())
    for agent in summary["agents"]:
        assert agent["status"] == "completed" and (run_dir / agent["report"]).exists()
    journal = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    retries = [e for e in journal if e["kind"] == "retry_scheduled"]
    assert sum(injected.values()) >= 10, injected
    assert len(retries) == sum(injected.values()), (Counter(e["error_kind"] for e in retries), injected)
    assert sum(a["retries"] for a in summary["agents"]) == len(retries)
    abandoned = [e for e in journal if e["kind"] == "attempt_abandoned"]
    assert len(abandoned) == len(retries)
    assert any(e["chars"] > 0 for e in abandoned), (
        "a stream that broke off after text says how much was dropped"
    )
    for agent_id, handle in orchestrator.handles.items():
        state = handle.state
        assert state is not None
        roles = [m["role"] for m in wire_messages(state.messages)]
        assert all(a != b for a, b in itertools.pairwise(roles)), f"{agent_id}: a turn doubled"
        assert handle.row.turn == sum(
            1 for e in journal if e["kind"] == "turn_completed" and e["agent_id"] == agent_id
        )


async def test_nobody_sends_before_a_429_retry_after_has_elapsed(tmp_path: Path) -> None:
    """From the moment the client reads a 429 (retry-after 0.6 s), no attempt of any agent goes
    out before 0.6 s have passed. Timed at the client: a peer's request let through just before the
    429 was read still reaches the server after the server answered it."""
    data = programs.program(
        [
            programs.agent("first", brief="Go. [sim:fault=rate_limit]"),
            *(programs.agent(f"peer{i}") for i in range(3)),
        ],
        max_turns=2,
        simulator={"latency_ms": 50},
        execution=FAST_RETRY,
    )
    config = programs.write(tmp_path, data)
    learned: list[float] = []  # when the client read each 429
    sent: list[float] = []  # when each attempt was let through to the API
    async with Simulator(SimulatorSettings(seed=1, latency_ms=50, retry_after_s=0.6)) as sim:
        orchestrator = await start_run(config, tmp_path / "runs", simulate=True, base_url=sim.base_url)
        gate = orchestrator.gate
        record_failure, acquire = gate.record_failure, gate._acquire

        def failed(info: ErrorInfo, wait_s: float) -> None:
            if info.status_code == 429:
                learned.append(time.monotonic())
            record_failure(info, wait_s)

        async def granted(cost: Any) -> Any:
            grant = await acquire(cost)
            sent.append(time.monotonic())
            return grant

        gate.record_failure = failed  # type: ignore[method-assign]
        gate._acquire = granted  # type: ignore[method-assign]
        outcome = await orchestrator.run()
        records = list(sim.stats.recent)
    assert outcome.status is RunStatus.COMPLETED
    assert [r for r in records if r.status == 429] and learned
    for read in learned:
        after = [at for at in sent if at > read]
        assert after and min(after) >= read + 0.6, "an attempt went out inside the retry-after window"


async def test_a_400_on_the_first_call_ends_the_run_naming_the_field(tmp_path: Path) -> None:
    """A request the API refuses at once is the config's shape: every agent would meet it (issue 14)."""
    data = programs.program(
        [programs.agent("broken", brief="Bad. [sim:fault=invalid_request]"), programs.agent("fine")],
        max_turns=1,
        execution={"max_concurrent_agents": 1},
    )
    config = programs.write(tmp_path, data)
    orchestrator = await start_run(config, tmp_path / "runs", simulate=True)
    outcome = await orchestrator.run()
    assert outcome.status is RunStatus.FAILED and outcome.exit_code == 4
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    statuses = {a["id"]: (a["status"], a["error"], a["retries"]) for a in summary["agents"]}
    assert statuses["fine"][0] == "pending"
    assert statuses["broken"][0] == "failed" and statuses["broken"][2] == 0
    assert "400" in statuses["broken"][1] and "messages.0.content.0" in statuses["broken"][1]
    journal = (outcome.run_dir / "events.jsonl").read_text()
    assert '"status_code": 400' in journal and "req_" in journal


async def test_an_unknown_model_fails_the_run_fast_naming_it(tmp_path: Path) -> None:
    data = programs.program(
        [programs.agent("a"), programs.agent("b"), programs.agent("c")],
        defaults={"model": "claude-imaginary-9"},
        execution={"max_concurrent_agents": 2, **FAST_RETRY},
    )
    data["pricing"] = {"models": {"claude-imaginary-9": {"input": 1.0, "output": 5.0}}}
    config = programs.write(tmp_path, data)
    async with Simulator(SimulatorSettings(seed=1)) as sim:
        orchestrator = await start_run(config, tmp_path / "runs", simulate=True, base_url=sim.base_url)
        outcome = await orchestrator.run()
        records = list(sim.stats.recent)

    assert outcome.status is RunStatus.FAILED and outcome.exit_code == 4
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    errors = [a["error"] for a in summary["agents"] if a["status"] == "failed"]
    assert errors and all("'claude-imaginary-9'" in e and "404" in e for e in errors)
    assert {r.status for r in records} == {404} and len(records) <= 2, "one attempt per agent in flight"
    assert len({r.body_sha256 for r in records}) == len(records), "no retries"


def test_401_fails_fast_naming_the_variable_and_no_file_holds_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import threading

    secret = "sk-ant-api03-THIS-IS-A-SECRET-KEY-0123456789"
    settings = SimulatorSettings(seed=1, api_keys=["sk-ant-the-only-accepted-key"])
    ready, done = threading.Event(), threading.Event()
    holder: dict[str, object] = {}

    def serve() -> None:
        async def run() -> None:
            async with Simulator(settings) as sim:
                holder["url"], holder["stats"] = sim.base_url, sim.stats
                ready.set()
                await asyncio.to_thread(done.wait)

        asyncio.run(run())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", str(holder["url"]))
    config = programs.write(
        tmp_path, programs.program([programs.agent("a"), programs.agent("b")], max_turns=2)
    )
    runs = tmp_path / "runs"
    try:
        code = main(["run", str(config), "--headless", "--runs-dir", str(runs)])
    finally:
        done.set()
        thread.join(10)
    err = capsys.readouterr().err
    assert code == 4
    assert "ANTHROPIC_API_KEY" in err
    assert holder["stats"].by_status[401] <= 2, "one attempt per agent in flight, no retries"  # type: ignore[attr-defined]
    for path in runs.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), f"the key leaked into {path}"
            assert oct(path.stat().st_mode & 0o777) == "0o600", path
    for path in [runs, *[p for p in runs.rglob("*") if p.is_dir()]]:
        assert oct(path.stat().st_mode & 0o777) == "0o700", path
    assert os.environ["ANTHROPIC_API_KEY"] == secret


async def test_a_400_on_a_later_call_fails_that_agent_only_and_the_run_goes_on(tmp_path: Path) -> None:
    """Past its first call an agent's request is its own conversation's, not the config's shape: the
    API refusing it (a 400 the simulator cannot be told to give mid-run, so a proxy in front of it
    does) fails that agent with the API's message, and the others finish their work."""
    from aiohttp import ClientSession, web

    data = programs.program(
        [programs.agent("victim"), programs.agent("bystander")],
        [programs.agent("synthesis", reads=["victim", "bystander"])],
        max_turns=3,
    )
    config = programs.write(tmp_path, data)
    victim_calls = 0

    async with Simulator(SimulatorSettings(seed=3)) as sim, ClientSession() as session:

        async def proxy(request: web.Request) -> web.StreamResponse:
            nonlocal victim_calls
            body = await request.read()
            if request.path.endswith("/messages") and b"victim" in body.split(b'"system"')[0]:
                victim_calls += 1
                if victim_calls == 2:
                    error = {"type": "invalid_request_error", "message": "messages.3: a test refusal"}
                    return web.json_response(
                        {"type": "error", "error": error}, status=400, headers={"request-id": "req_test400"}
                    )
            hop = ("host", "content-length")
            headers = {k: v for k, v in request.headers.items() if k.lower() not in hop}
            async with session.request(request.method, sim.base_url + request.path_qs, data=body,
                                       headers=headers) as upstream:  # fmt: skip
                response = web.StreamResponse(status=upstream.status)
                for key, value in upstream.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "content-encoding"):
                        response.headers[key] = value
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", proxy)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            orchestrator = await start_run(
                config, tmp_path / "runs", simulate=True, base_url=f"http://127.0.0.1:{port}"
            )
            outcome = await orchestrator.run()
        finally:
            await runner.cleanup()

    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    agents = {a["id"]: a for a in summary["agents"]}
    assert victim_calls >= 2
    assert agents["victim"]["status"] == "failed" and agents["victim"]["turns"] == 1
    assert "a test refusal" in agents["victim"]["error"]  # the API's own words
    assert agents["bystander"]["status"] == "completed"
    assert agents["synthesis"]["status"] == "completed"  # it read what the victim had found
    assert (outcome.run_dir / "report.md").is_file()
    assert summary["status"] == "failed" and outcome.exit_code == 4  # one agent failed: said so
    assert verify_run(RunDir(outcome.run_dir)).problems == []  # its turn in flight is not counted
