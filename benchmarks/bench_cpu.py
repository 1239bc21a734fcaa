"""CPU per streamed token: what the orchestrator costs for each output token it relays.

A headless run (20 agents x 10 turns; quick: 10 x 5) against a simulator that streams as fast as
it can (no latency, ``tokens_per_second`` 0) in another process, so ``time.process_time()`` of
this process is the orchestrator's CPU (SDK, events, journal, checkpoints, summary) alone. The
figure is that CPU over the output tokens of the run (``summary.json``). The same conversations
through the bare SDK give the floor any SDK-based orchestrator pays (``sdk.cpu_us_per_token``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from benchmarks.harness import (
    SimulatorProcess,
    bench_main,
    flat_program,
    run_program_sync,
    scratch_dir,
    sdk_conversations,
    simulator_args,
    write_program,
)


def run(quick: bool) -> dict[str, Any]:
    agents, turns = (10, 5) if quick else (20, 10)
    with SimulatorProcess(*simulator_args()) as sim, scratch_dir() as tmp:
        runs = tmp / "runs"
        warm = write_program(tmp / "warm", flat_program(1, max_turns=2))
        program = write_program(tmp / "cpu", flat_program(agents, max_turns=turns))
        run_program_sync(warm, runs, sim.base_url)  # imports and first-use costs out of the figure
        result = run_program_sync(program, runs, sim.base_url)
        sdk = asyncio.run(sdk_conversations(program, sim.base_url))
    tokens = int(result.summary["output_tokens"])
    return {
        "cpu_us_per_streamed_token": result.cpu_s / tokens * 1e6,
        "cpu.agents": agents,
        "cpu.turns_per_agent": turns,
        "cpu.output_tokens": tokens,
        "cpu.cpu_s": result.cpu_s,
        "cpu.wall_s": result.wall_s,
        "cpu.ms_per_api_call": result.cpu_s / max(1, result.api_turns) * 1e3,
        "sdk.cpu_us_per_token": sdk.cpu_s / max(1, sdk.output_tokens) * 1e6,
        "sdk.ms_per_api_call": sdk.cpu_s / max(1, sdk.calls) * 1e3,
    }


if __name__ == "__main__":
    bench_main(run)
