"""CPU per streamed token: what the orchestrator costs for each output token it relays.

A headless run (20 agents x 10 turns; quick: 10 x 5) against a simulator that streams as fast as
it can (no latency, ``tokens_per_second`` 0) in another process, so ``time.process_time()`` of
this process is the orchestrator's CPU (SDK, events, journal, checkpoints, summary) alone. The
figure is that CPU over the output tokens of the run (``summary.json``). The same conversations
through the bare SDK give the floor any SDK-based orchestrator pays (``sdk.cpu_us_per_token``);
``cpu_per_token_vs_sdk`` is the ratio of the two. The orchestrated runs and the SDK's alternate, four
of each, and the lowest CPU of each is kept (a shared machine only ever adds); the SDK sends the same
requests, so it streams the same tokens (``sdk.output_tokens``).

With the ``otel`` extra installed, the same program runs again with telemetry on (traces and metrics
over OTLP/HTTP to a sink in another process, and the Prometheus endpoint): ``telemetry_cpu_rise_vs_sdk``
is how much that raises the ratio (goal: at most 0.05). Runs alternate off/on, 4 off and 3 on, and the
lowest CPU of each kind is kept (a shared machine only ever adds).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    RunResult,
    SimulatorProcess,
    bench_main,
    flat_program,
    otlp_sink,
    run_program_sync,
    scratch_dir,
    sdk_conversations,
    simulator_args,
    write_program,
)


def _with_telemetry(program: Path, runs: Path, base_url: str, sink: str) -> RunResult:
    from core.telemetry.prometheus import close_endpoints
    from core.telemetry.settings import TelemetrySettings

    saved = {"OTEL_EXPORTER_OTLP_ENDPOINT": os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")}
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink
    try:
        settings = TelemetrySettings(otel=True, metrics_port=0)
        return run_program_sync(program, runs, base_url, telemetry=settings)
    finally:
        close_endpoints()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run(quick: bool) -> dict[str, Any]:
    agents, turns = (10, 5) if quick else (20, 10)
    telemetry = importlib.util.find_spec("opentelemetry.sdk") is not None
    on: list[RunResult] = []
    with SimulatorProcess(*simulator_args()) as sim, scratch_dir() as tmp, otlp_sink() as sink:
        runs = tmp / "runs"
        warm = write_program(tmp / "warm", flat_program(1, max_turns=2))
        program = write_program(tmp / "cpu", flat_program(agents, max_turns=turns))
        run_program_sync(warm, runs, sim.base_url)  # imports and first-use costs out of the figure
        if telemetry:
            _with_telemetry(warm, runs, sim.base_url, sink)
        asyncio.run(sdk_conversations(warm, sim.base_url))
        off = [run_program_sync(program, runs, sim.base_url)]
        sdks = [asyncio.run(sdk_conversations(program, sim.base_url))]
        for _ in range(3):
            if telemetry:
                on.append(_with_telemetry(program, runs, sim.base_url, sink))
            off.append(run_program_sync(program, runs, sim.base_url))
            sdks.append(asyncio.run(sdk_conversations(program, sim.base_url)))
    result = min(off, key=lambda r: r.cpu_s)
    sdk = min(sdks, key=lambda r: r.cpu_s)
    tokens = int(result.summary["output_tokens"])
    sdk_us = sdk.cpu_s / max(1, sdk.output_tokens) * 1e6
    figures: dict[str, Any] = {
        "cpu_us_per_streamed_token": result.cpu_s / tokens * 1e6,
        "cpu_per_token_vs_sdk": result.cpu_s / tokens * 1e6 / sdk_us,
        "cpu.agents": agents,
        "cpu.turns_per_agent": turns,
        "cpu.output_tokens": tokens,
        "cpu.cpu_s": result.cpu_s,
        "cpu.wall_s": result.wall_s,
        "cpu.ms_per_api_call": result.cpu_s / max(1, result.api_turns) * 1e3,
        "cpu.off_cpu_s": [r.cpu_s for r in off],
        "sdk.cpu_us_per_token": sdk_us,
        "sdk.output_tokens": sdk.output_tokens,
        "sdk.cpu_s": [r.cpu_s for r in sdks],
        "sdk.ms_per_api_call": sdk.cpu_s / max(1, sdk.calls) * 1e3,
    }
    if on:
        best = min(on, key=lambda r: r.cpu_s)
        on_us = best.cpu_s / int(best.summary["output_tokens"]) * 1e6
        figures["telemetry_cpu_rise_vs_sdk"] = on_us / sdk_us - figures["cpu_per_token_vs_sdk"]
        figures["telemetry.cpu_per_token_vs_sdk"] = on_us / sdk_us
        figures["telemetry.cpu_us_per_streamed_token"] = on_us
        figures["telemetry.on_cpu_s"] = [r.cpu_s for r in on]
    return figures


if __name__ == "__main__":
    bench_main(run)
