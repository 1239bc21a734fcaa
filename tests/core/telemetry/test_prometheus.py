"""The Prometheus endpoint (``--metrics-port``), scraped during and after a run on the simulator and
parsed with prometheus-client's parser: its dollar and token series end equal to summary.json."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client", reason="the otel extra is not installed (CI installs it: .ci/run)")

from prometheus_client.parser import text_string_to_metric_families

from core.cli import main
from core.events import Event, RunFinished, TurnCompleted
from core.runner import start_run
from core.telemetry.prometheus import close_endpoints
from core.telemetry.settings import MetricsPortUnavailable, TelemetrySettings
from tests.core import programs
from tests.waits import until_published

Samples = dict[str, list[tuple[dict[str, str], float]]]


@pytest.fixture(autouse=True)
def endpoints_closed() -> Iterator[None]:
    yield
    close_endpoints()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for found, v in samples.get(name, []) if all(found.get(k) == w for k, w in labels.items()))


async def test_the_scrape_endpoint_counts_the_run_and_ends_equal_to_its_summary(tmp_path: Path) -> None:
    data = programs.program(
        [programs.agent("a", "Research the a angle. [sim:fault=disconnect:1]"), programs.agent("b")],
        [programs.agent("c")],
        max_turns=3,
        simulator={"latency_ms": 300},
        execution={"retry": {"base_delay_s": 0.001, "max_delay_s": 0.005}},
    )
    port = free_port()
    settings = TelemetrySettings(metrics_port=port)
    orchestrator = await start_run(
        programs.write(tmp_path, data), tmp_path / "runs", simulate=True, telemetry=settings
    )
    turns: list[Event] = []
    finished: list[Event] = []
    orchestrator.bus.listen(lambda e: turns.append(e) if isinstance(e, TurnCompleted) else None)
    orchestrator.bus.listen(lambda e: finished.append(e) if isinstance(e, RunFinished) else None)
    run = asyncio.create_task(orchestrator.run())
    await until_published(lambda: len(turns) >= 2, orchestrator.bus, what="two turns completed")
    during = await asyncio.to_thread(scrape, port)
    assert not finished, "the run ended before the scrape: it was not scraped during the run"
    outcome = await run
    after = await asyncio.to_thread(scrape, port)  # served after the run: its final values
    summary = json.loads((outcome.run_dir / "summary.json").read_text())

    cost = "research_orchestrator_cost_billed_usd_total", "research_orchestrator_cost_unconfirmed_usd_total"
    tokens = "research_orchestrator_tokens_total"
    assert 0 < total(during, tokens, kind="output") < summary["output_tokens"]
    assert 0 < sum(total(during, name) for name in cost) < summary["cost_usd"]
    assert total(during, "research_orchestrator_agents", status="running") >= 1

    assert sum(total(after, name) for name in cost) == pytest.approx(summary["cost_usd"], abs=1e-5)
    assert total(after, cost[1]) > 0  # agent a's cut stream: a bound, not billed
    for name, key in zip(cost, ("billed_usd", "unconfirmed_usd"), strict=True):
        assert total(after, name) == pytest.approx(summary[key], abs=1e-5)
    assert total(after, "research_orchestrator_run_cost_usd") == pytest.approx(summary["cost_usd"], abs=1e-5)
    for money in ("billed", "unconfirmed"):
        run_money = total(after, "research_orchestrator_run_money_usd", money=money)
        assert run_money == pytest.approx(summary[f"{money}_usd"], abs=1e-5)
    for kind, key in (
        ("input", "input_tokens"),
        ("output", "output_tokens"),
        ("cache_read", "cache_read_input_tokens"),
        ("cache_creation", "cache_creation_input_tokens"),
    ):
        assert total(after, tokens, kind=kind) == summary[key], kind
    assert total(after, "research_orchestrator_searches_total") == summary["searches"]
    for money in ("billed", "unconfirmed"):
        searches = total(after, "research_orchestrator_searches_total", money=money)
        assert searches == summary[f"{money}_searches"]
    assert total(after, "research_orchestrator_retries_total") == sum(r["retries"] for r in summary["agents"])
    assert total(after, "research_orchestrator_calls_total", outcome="completed") == sum(
        r["turns"] for r in summary["agents"]
    )
    assert total(after, "research_orchestrator_agents", status="completed") == len(summary["agents"])
    assert total(after, "research_orchestrator_agents", status="running") == 0
    assert total(after, "research_orchestrator_stream_throughput_tokens_per_second_count") > 0


async def test_a_port_in_use_is_a_clear_error_before_anything_is_sent(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = programs.write(tmp_path, programs.program([programs.agent("a")]))
        with pytest.raises(MetricsPortUnavailable, match=f"port {port}.*--metrics-port"):
            await start_run(
                config, tmp_path / "runs", simulate=True, telemetry=TelemetrySettings(metrics_port=port)
            )


def test_a_headless_run_names_its_port_in_run_log_and_serves_its_last_values(tmp_path: Path) -> None:
    """``--metrics-port 0``: a free port, said in run.log; the endpoint outlives the run in its process."""
    config = programs.write(tmp_path, programs.program([programs.agent("a")], max_turns=2))
    runs = tmp_path / "runs"
    assert (
        main(["run", str(config), "--headless", "--simulate", "--metrics-port", "0", "--runs-dir", str(runs)])
        == 0
    )
    [run_dir] = list(runs.iterdir())
    [line] = [line for line in (run_dir / "run.log").read_text().splitlines() if "metrics served at" in line]
    port = int(line.rsplit(":", 1)[1].split("/")[0])
    samples = scrape(port)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert total(samples, "research_orchestrator_tokens_total", kind="output") == summary["output_tokens"]
    assert total(samples, "research_orchestrator_agents", status="completed") == 1
