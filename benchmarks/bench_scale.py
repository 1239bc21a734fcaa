"""Scale: 1,000 agents in one process against one agent, and the memory each agent costs.

* ``parallel_efficiency_1000``: wall(1,000 agents x 3 turns, one layer, all at once) / wall(1 agent
  x 3 turns), through the product's composition root (checkpoints, journal, summary on), against a
  simulator paced like :mod:`benchmarks.bench_parallel`'s (a fixed wait before the first byte, then
  a fixed number of output tokens at a fixed rate, the same for every agent; one search a turn).
  An ideal orchestrator runs 1,000 agents in the wall time of one; what is quadratic in agents (a
  scan of every agent per event, a file of every agent per checkpoint) shows here first.
* ``rss_mb_per_agent``: the process's peak resident memory during the 1,000-agent run over its
  resident memory before it (after the one-agent runs: imports and first-use costs are out), per
  agent. The agents' conversations live in memory by design.

Beside them, the bare SDK on the same 1,000 conversations (``scale.sdk_efficiency``: its wall over
the one agent's): on two shared cores, what no orchestrator on this machine can beat; and the CPU
per call with 1,000 agents against one agent's (``scale.ms_cpu_per_api_call*``), which a busy
machine moves far less than the wall times: what grows with the number of agents shows there.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.bench_parallel import LATENCY_MS, OUTPUT_TOKENS_PER_TURN, TOKENS_PER_SECOND
from benchmarks.harness import (
    SimulatorProcess,
    bench_main,
    flat_program,
    rss_mb,
    run_program_sync,
    scratch_dir,
    sdk_conversations,
    simulator_args,
    write_program,
)

AGENTS = 1000
TURNS = 3


@contextmanager
def peak_rss(interval_s: float = 0.05) -> Iterator[list[float]]:
    """The highest RSS (MiB) this process reached within the block, sampled by a thread; the list
    holds it once the block has ended."""
    peak = [rss_mb()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(interval_s):
            peak[0] = max(peak[0], rss_mb())

    sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()
        peak[0] = max(peak[0], rss_mb())


def run(quick: bool) -> dict[str, Any]:
    """The same workload in both modes (the goal is about 1,000 agents); full mode measures the
    one-agent baseline one more time (the lowest kept)."""
    pacing = simulator_args(
        latency_ms=LATENCY_MS,
        tokens_per_second=TOKENS_PER_SECOND,
        output_tokens_per_turn=OUTPUT_TOKENS_PER_TURN,
    )
    with SimulatorProcess(*pacing) as sim, scratch_dir() as tmp:
        runs = tmp / "runs"
        one = write_program(tmp / "one", flat_program(1, max_turns=TURNS))
        many = write_program(tmp / "many", flat_program(AGENTS, max_turns=TURNS))
        run_program_sync(one, runs, sim.base_url)  # warm-up: imports, first connection, first fsync
        ones = [run_program_sync(one, runs, sim.base_url) for _ in range(2 if quick else 3)]
        wall_one = min(r.wall_s for r in ones)
        cpu_one = min(r.cpu_s / max(1, r.api_turns) for r in ones)
        before = rss_mb()
        with peak_rss() as peak:
            result = run_program_sync(many, runs, sim.base_url)
        after = rss_mb()
        sdk = asyncio.run(sdk_conversations(many, sim.base_url))
    return {
        "parallel_efficiency_1000": result.wall_s / wall_one,
        "rss_mb_per_agent": (peak[0] - before) / AGENTS,
        "scale.agents": AGENTS,
        "scale.turns_per_agent": TURNS,
        "scale.wall_s_1_agent": wall_one,
        "scale.wall_s_1000_agents": result.wall_s,
        "scale.cpu_s_1000_agents": result.cpu_s,
        "scale.api_calls_1000_agents": result.api_turns,
        "scale.ms_cpu_per_api_call": result.cpu_s / max(1, result.api_turns) * 1e3,
        "scale.ms_cpu_per_api_call_1_agent": cpu_one * 1e3,
        "scale.rss_mb_before": before,
        "scale.rss_mb_peak": peak[0],
        "scale.rss_mb_after": after,
        "scale.sdk_wall_s_1000_agents": sdk.wall_s,
        "scale.sdk_cpu_s_1000_agents": sdk.cpu_s,
        "scale.sdk_efficiency": sdk.wall_s / wall_one,
    }


if __name__ == "__main__":
    bench_main(run)
