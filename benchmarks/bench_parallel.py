"""Parallelism: 100 agents against 1, the orchestrator against the bare SDK, 5 agents in a row or at once.

Every turn takes a fixed simulated time, paced like the API: 0.5 s before the first byte, then 120
output tokens streamed at 100 tokens a second (the same for every agent, so a layer is not only as
fast as its unluckiest agent; a few seconds a turn, where real web-search turns take 10-60 s); no
``pause_turn``; one search per turn. An ideal orchestrator runs 100 agents in the wall time of one.
Checkpoints stay on (that is the product); there are no budget caps.

Why paced: with the whole answer sent at once after 200 ms (this benchmark's first version), 100
agents x 10 turns is 1,000 SDK stream parses competing for one core in lockstep, a measure of CPU
throughput (the bare SDK scored 6.2 on it), not of whether agents wait on each other. The CPU cost
per streamed token is measured on its own by ``bench_cpu``.

* ``parallel_efficiency_100``: wall(100 agents x T turns) / wall(1 agent x T turns).
* ``overhead_vs_sdk_wall``: wall(100 x T through the orchestrator) / wall(the same conversations
  through ``AsyncAnthropic.messages.stream`` under ``asyncio.gather``, see
  :func:`benchmarks.harness.sdk_conversations`).
* ``speedup_5_agents``: wall(5 agents with ``max_concurrent_agents: 1``) / wall(5 at once).

Full mode (T = 10) repeats each measurement and keeps the fastest (the machines are shared); quick
mode (T = 5) measures each once.
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

LATENCY_MS = 500
TOKENS_PER_SECOND = 100
OUTPUT_TOKENS_PER_TURN = "120-120"
TURNS = 10
QUICK_TURNS = 2
SPEEDUP_TURNS = 4
QUICK_SPEEDUP_TURNS = 2


def run(quick: bool) -> dict[str, Any]:
    repeats = 1 if quick else 2
    agents = 100
    turns = QUICK_TURNS if quick else TURNS
    pacing = simulator_args(
        latency_ms=LATENCY_MS,
        tokens_per_second=TOKENS_PER_SECOND,
        output_tokens_per_turn=OUTPUT_TOKENS_PER_TURN,
    )
    speedup_turns = QUICK_SPEEDUP_TURNS if quick else SPEEDUP_TURNS
    with SimulatorProcess(*pacing) as sim, scratch_dir() as tmp:
        runs = tmp / "runs"
        one = write_program(tmp / "one", flat_program(1, max_turns=turns))
        many = write_program(tmp / "many", flat_program(agents, max_turns=turns))
        serial_program = flat_program(5, max_turns=speedup_turns, max_concurrent_agents=1)
        five_serial = write_program(tmp / "five-serial", serial_program)
        five_parallel = write_program(tmp / "five-parallel", flat_program(5, max_turns=speedup_turns))

        run_program_sync(one, runs, sim.base_url)  # warm-up: imports, first connection, first fsync
        wall_one = min(run_program_sync(one, runs, sim.base_url).wall_s for _ in range(repeats + 1))

        orchestrated = []
        sdk = []
        sim_cpu_orch = sim_cpu_sdk = 0.0
        for _ in range(repeats):
            before = sim.cpu_seconds() or 0.0
            sdk.append(asyncio.run(sdk_conversations(many, sim.base_url)))
            middle = sim.cpu_seconds() or 0.0
            orchestrated.append(run_program_sync(many, runs, sim.base_url))
            sim_cpu_sdk += middle - before
            sim_cpu_orch += (sim.cpu_seconds() or 0.0) - middle
        best = min(orchestrated, key=lambda r: r.wall_s)
        best_sdk = min(sdk, key=lambda r: r.wall_s)

        serial = min((run_program_sync(five_serial, runs, sim.base_url) for _ in range(repeats)),
                     key=lambda r: r.wall_s)  # fmt: skip
        parallel = min((run_program_sync(five_parallel, runs, sim.base_url) for _ in range(repeats)),
                       key=lambda r: r.wall_s)  # fmt: skip

    return {
        "parallel_efficiency_100": best.wall_s / wall_one,
        "overhead_vs_sdk_wall": best.wall_s / best_sdk.wall_s,
        "speedup_5_agents": serial.wall_s / parallel.wall_s,
        "parallel.latency_ms": LATENCY_MS,
        "parallel.tokens_per_second": TOKENS_PER_SECOND,
        "parallel.turns_per_agent": turns,
        "parallel.wall_s_1_agent": wall_one,
        "parallel.wall_s_100_agents": best.wall_s,
        "parallel.cpu_s_100_agents": best.cpu_s,
        "parallel.api_calls_100_agents": best.api_turns,
        "parallel.output_tokens_100_agents": best.summary["output_tokens"],
        "sdk.wall_s_100_agents": best_sdk.wall_s,
        "sdk.cpu_s_100_agents": best_sdk.cpu_s,
        "sdk.api_calls_100_agents": best_sdk.calls,
        "sdk.output_tokens_100_agents": best_sdk.output_tokens,
        "simulator.cpu_s_per_orchestrated_run": sim_cpu_orch / repeats,
        "simulator.cpu_s_per_sdk_run": sim_cpu_sdk / repeats,
        "speedup.wall_s_5_serial": serial.wall_s,
        "speedup.wall_s_5_parallel": parallel.wall_s,
    }


if __name__ == "__main__":
    bench_main(run)
