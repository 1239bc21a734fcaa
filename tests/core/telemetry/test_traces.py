"""A run is one trace (run → layer → agent → turn → attempt) that adds up to its summary.json.

The OTLP/HTTP exporter posts to a receiver inside the test, which decodes the protobuf with
opentelemetry-proto; the program runs on the simulator, whose faults force retries.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed (CI installs it: .ci/run)")

from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from core.control import RunStatus
from core.events import Event, TurnCompleted
from core.logs import command_logging, run_log
from core.runner import resume_run, start_run
from core.telemetry.settings import TelemetrySettings
from tests.core import programs
from tests.core.telemetry.receiver import Received, attributes, otlp_receiver

P = "research_orchestrator"
OTEL = TelemetrySettings(otel=True)
FAST_RETRY = {"retry": {"max_attempts": 6, "base_delay_s": 0.001, "max_delay_s": 0.005}}


def faulty_program(tmp_path: Path) -> Path:
    """Two layers; every agent's follow-up fails once with a 500 (a retry), and agent a's first
    stream is cut (a failed attempt charged as a bound)."""
    data = programs.program(
        [programs.agent("a", "Research the a angle. [sim:fault=disconnect:1]"), programs.agent("b")],
        [programs.agent("c")],
        max_turns=3,
        defaults={"follow_up_prompts": ["Dig deeper. [sim:fault=server_error:1]"]},
        execution=FAST_RETRY,
    )
    return programs.write(tmp_path, data)


class Tree:
    """The received spans, by id, with their decoded attributes."""

    def __init__(self, received: Received) -> None:
        self.spans = list(received.spans)
        self.by_id = {span.span_id: span for span in self.spans}
        self.attrs = {span.span_id: attributes(span) for span in self.spans}

    def named(self, prefix: str) -> list[Span]:
        return [span for span in self.spans if span.name.startswith(prefix)]

    def parent(self, span: Span) -> Span:
        return self.by_id[span.parent_span_id]

    def of(self, span: Span) -> dict[str, Any]:
        return self.attrs[span.span_id]


def summary_of(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "summary.json").read_text())
    return data


async def test_a_run_is_one_trace_whose_spans_add_up_to_its_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = logging.getLogger("core.test_traces")
    with otlp_receiver() as (endpoint, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        orchestrator = await start_run(
            faulty_program(tmp_path), tmp_path / "runs", simulate=True, telemetry=OTEL
        )
        orchestrator.bus.listen(lambda e: log.warning("turn done") if isinstance(e, TurnCompleted) else None)
        with command_logging(), run_log(orchestrator.run_dir):
            outcome = (
                await orchestrator.run()
            )  # its end flushes every span (the batch processor's force_flush)
        assert outcome.status is RunStatus.COMPLETED
        tree = Tree(received)
        assert received.metric_posts >= 1  # the metrics went out over OTLP too
    summary = summary_of(outcome.run_dir)

    assert len({span.trace_id for span in tree.spans}) == 1
    [run] = tree.named("run ")
    assert run.parent_span_id == b"" and tree.of(run)[f"{P}.run.id"] == summary["run_id"]
    saved = json.loads((outcome.run_dir / "trace.json").read_text())
    assert (saved["trace_id"], saved["span_id"]) == (run.trace_id.hex(), run.span_id.hex())
    # Log records carry the trace and span ids while telemetry is on.
    logged = [line for line in (outcome.run_dir / "run.log").read_text().splitlines() if "turn done" in line]
    assert logged and all(f"trace={saved['trace_id']} span={saved['span_id']}]" in line for line in logged)

    layers = {tree.of(span)[f"{P}.layer"]: span for span in tree.named("layer ")}
    assert sorted(layers) == [1, 2]
    assert all(span.parent_span_id == run.span_id for span in layers.values())

    agents = {tree.of(span)[f"{P}.agent.id"]: span for span in tree.named("invoke_agent ")}
    assert sorted(agents) == sorted(a["id"] for a in summary["agents"])
    for row in summary["agents"]:
        agent = agents[row["id"]]
        assert agent.parent_span_id == layers[row["layer"]].span_id
        assert tree.of(agent)["gen_ai.operation.name"] == "invoke_agent"

    turns = tree.named("turn ")
    for turn in turns:
        assert tree.parent(turn) is agents[tree.of(turn)[f"{P}.agent.id"]]
    completed = Counter(tree.of(t)[f"{P}.agent.id"] for t in turns if tree.of(t)[f"{P}.turn.completed"])
    assert completed == {row["id"]: row["turns"] for row in summary["agents"]}

    attempts = tree.named("chat ")
    assert all(tree.parent(a).name.startswith(("turn ", "compaction")) for a in attempts)
    for attempt in attempts:
        attrs = tree.of(attempt)
        assert attrs["gen_ai.provider.name"] == "anthropic" and attrs["gen_ai.request.model"]
        assert attrs["gen_ai.request.max_tokens"] == 2048

    # Dollars and tokens: the attempts add up to the summary, per agent and in all.
    def total(spans: list[Span], key: str) -> float:
        return sum(tree.of(span).get(key, 0) for span in spans)  # a count left out is zero

    cost = total(attempts, f"{P}.billed_usd") + total(attempts, f"{P}.unconfirmed_usd")
    assert cost == pytest.approx(summary["cost_usd"], abs=1e-5)
    for key in ("billed_usd", "unconfirmed_usd"):
        assert total(attempts, f"{P}.{key}") == pytest.approx(summary[key], abs=1e-5)
    assert total(attempts, f"{P}.unconfirmed_usd") > 0  # agent a's cut stream is a bound
    for row in summary["agents"]:
        mine = [a for a in attempts if tree.of(tree.parent(a))[f"{P}.agent.id"] == row["id"]]
        for key in ("billed_usd", "unconfirmed_usd", "cost_usd"):
            keys = ("billed_usd", "unconfirmed_usd") if key == "cost_usd" else (key,)
            assert sum(total(mine, f"{P}.{k}") for k in keys) == pytest.approx(row[key], abs=1e-5)
    assert total(attempts, "gen_ai.usage.output_tokens") == summary["output_tokens"]
    assert total(attempts, "gen_ai.usage.cache_read.input_tokens") == summary["cache_read_input_tokens"]
    assert total(attempts, "gen_ai.usage.input_tokens") == (
        summary["input_tokens"] + summary["cache_read_input_tokens"] + summary["cache_creation_input_tokens"]
    )
    assert total(attempts, f"{P}.searches") == summary["searches"]
    assert total(turns, f"{P}.billed_usd") + total(turns, f"{P}.unconfirmed_usd") == pytest.approx(cost)

    # Retries: an event on their turn's span, and each failed attempt's span says it failed.
    retries = [(turn, e) for turn in turns for e in turn.events if e.name == "retry"]
    assert len(retries) == sum(row["retries"] for row in summary["agents"]) >= 3
    kinds = {attributes_of(e)[f"{P}.retry.kind"] for _, e in retries}
    assert len(kinds) >= 1 and all(kinds)
    failed = [a for a in attempts if a.status.code == Status.STATUS_CODE_ERROR]
    assert len(failed) >= len(retries)
    assert all(tree.of(a).get("error.type") or tree.of(a).get(f"{P}.attempt.outcome") for a in failed)


def attributes_of(event: Span.Event) -> dict[str, Any]:
    from tests.core.telemetry.receiver import value

    return {kv.key: value(kv.value) for kv in event.attributes}


async def test_each_batch_of_a_batch_layer_is_a_span_under_its_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = programs.program(
        [programs.agent("a"), programs.agent("b")],
        [programs.agent("c")],
        simulator={"batch_processing_s": 0.2},
    )
    data["layers"][0]["mode"] = "batch"
    with otlp_receiver() as (endpoint, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        orchestrator = await start_run(
            programs.write(tmp_path, data), tmp_path / "runs", simulate=True, telemetry=OTEL
        )
        outcome = await orchestrator.run()
        assert outcome.status is RunStatus.COMPLETED
        tree = Tree(received)
    journal = [json.loads(line) for line in (outcome.run_dir / "events.jsonl").read_text().splitlines()]
    submitted = {e["batch_id"]: e["requests"] for e in journal if e["kind"] == "batch_submitted"}
    batches = {tree.of(span)[f"{P}.batch.id"]: span for span in tree.named("batch ")}
    assert submitted and batches.keys() == submitted.keys()
    [layer_one] = [span for span in tree.named("layer ") if tree.of(span)[f"{P}.layer"] == 1]
    for batch_id, span in batches.items():
        assert span.parent_span_id == layer_one.span_id
        assert tree.of(span)[f"{P}.batch.requests"] == submitted[batch_id]
        assert tree.of(span)[f"{P}.batch.succeeded"] == submitted[batch_id]


async def test_a_resumed_run_continues_the_same_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = programs.program([programs.agent("a"), programs.agent("b")], max_turns=3)
    config = programs.write(tmp_path, data)
    with otlp_receiver() as (endpoint, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        orchestrator = await start_run(config, tmp_path / "runs", simulate=True, telemetry=OTEL)

        def stop_after_first(event: Event) -> None:
            if isinstance(event, TurnCompleted):
                orchestrator.stop()

        orchestrator.bus.listen(stop_after_first)
        first = await orchestrator.run()
        assert first.status is RunStatus.INTERRUPTED
        resumed = await resume_run(tmp_path / "runs", first.run_dir.name, telemetry=OTEL)
        second = await resumed.run()
        assert second.status is RunStatus.COMPLETED
        tree = Tree(received)

    original, again = sorted(tree.named("run "), key=lambda span: span.start_time_unix_nano)
    assert original.parent_span_id == b""
    assert again.trace_id == original.trace_id and again.parent_span_id == original.span_id
    assert [link.span_id for link in again.links] == [original.span_id]
    assert tree.of(again)[f"{P}.resumed"] is True
    assert len({span.trace_id for span in tree.spans}) == 1
    summary = summary_of(second.run_dir)
    turns = [t for t in tree.named("turn ") if tree.of(t)[f"{P}.turn.completed"]]
    assert len(turns) == sum(row["turns"] for row in summary["agents"])


def test_a_detached_run_exports_its_trace_from_its_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run --detach --otel``: the background owner gets the flag (and the OTEL_* environment)."""
    from tests.core.test_detach import alive, detach
    from tests.waits import wait_until

    data = programs.program([programs.agent("a")], max_turns=2, simulator={"latency_ms": 500})
    config = programs.write(tmp_path, data)
    with otlp_receiver() as (endpoint, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
        run, pid, _ = detach(config, tmp_path / "runs", "--otel", "--metrics-port", "0")
        owner_args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]  # it ends in a NUL
        assert owner_args[-3:] == [b"--otel", b"--metrics-port", b"0"]
        wait_until(lambda: not alive(pid), "the detached run to finish", 90, poll=0.1)
        tree = Tree(received)
    [span] = tree.named("run ")
    assert tree.of(span)[f"{P}.run.id"] == run.run_id
    assert json.loads((run.path / "trace.json").read_text())["trace_id"] == span.trace_id.hex()
    assert summary_of(run.path)["status"] == "completed"
