"""Resident memory growth over a 10,000-turn run (100 agents x 100 turns, no latency).

RSS is read from ``/proc/self/status`` (VmRSS) every 50 ms by a task on the run's own loop.
The baseline is taken after a small warm-up run in the same process, so imports and first-use
allocations are not counted; the figure is peak RSS during the run minus that baseline (what a
long run adds, the conversations it must keep included).

Quick mode runs 100 agents x 20 turns (2,000 turns) and extrapolates: the measured growth plus
the growth per turn of the run's second half times the 8,000 turns not run (``rss.extrapolated``
says so); the measured figure is kept beside it.
Turns are short (100-200 output tokens, no searches) so that 100 turns of conversation fit in the
context window without compaction and the simulator keeps up (a search adds ~2k tokens of results
to every later request of that agent).
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    SimulatorProcess,
    bench_main,
    flat_program,
    rss_mb,
    run_program,
    run_program_sync,
    scratch_dir,
    simulator_args,
    write_program,
)

TARGET_TURNS = 10_000


async def _sampled_run(program: Path, runs: Path, base_url: str) -> tuple[Any, list[tuple[int, float]], int]:
    """Run, sampling (turns completed, RSS) every 50 ms; also the journal queue's worst backlog."""
    from core.events import EventBus, TurnCompleted

    bus = EventBus()
    turns = 0

    def count(event: object) -> None:
        nonlocal turns
        if isinstance(event, TurnCompleted):
            turns += 1

    bus.listen(count)
    samples: list[tuple[int, float]] = []
    backlog = 0

    async def sample() -> None:
        nonlocal backlog
        while True:
            samples.append((turns, rss_mb()))
            for subscription in getattr(bus, "_subscriptions", ()):
                backlog = max(backlog, subscription.backlog)
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    try:
        result = await run_program(program, runs, base_url, bus=bus)
    finally:
        sampler.cancel()
    samples.append((turns, rss_mb()))
    return result, samples, backlog


def _rss_at(samples: list[tuple[int, float]], turns: int) -> float:
    """Peak RSS seen up to the moment ``turns`` turns had completed."""
    return max(mb for done, mb in samples if done <= turns)


def run(quick: bool) -> dict[str, Any]:
    agents, turns = (100, 20) if quick else (100, 100)
    args = simulator_args(output_tokens_per_turn="100-200", searches_per_turn="0-0")
    with SimulatorProcess(*args) as sim, scratch_dir() as tmp:
        runs = tmp / "runs"
        warm = write_program(tmp / "warm", flat_program(2, max_turns=3, max_tokens=1024))
        program = write_program(tmp / "mem", flat_program(agents, max_turns=turns, max_tokens=1024))
        run_program_sync(warm, runs, sim.base_url)
        gc.collect()
        baseline = rss_mb()
        result, samples, backlog = asyncio.run(_sampled_run(program, runs, sim.base_url))
        gc.collect()
        after = rss_mb()
    total = result.api_turns
    peak = max(mb for _, mb in samples)
    measured = peak - baseline
    # Growth per turn over the second half of the run (the ramp of 100 new connections and
    # conversations is over by then), used to extrapolate a short run to 10,000 turns.
    half = _rss_at(samples, total // 2)
    slope = max(0.0, (peak - half) / max(1, total - total // 2))
    extrapolated = measured + slope * max(0, TARGET_TURNS - total)
    return {
        "rss_growth_mb_10k_turns": extrapolated if total < TARGET_TURNS else measured,
        "rss.extrapolated": total < TARGET_TURNS,
        "rss.api_turns": total,
        "rss.agents": agents,
        "rss.turns_per_agent": turns,
        "rss.baseline_mb": baseline,
        "rss.peak_mb": peak,
        "rss.growth_mb_measured": measured,
        "rss.growth_mb_at_half_of_turns": half - baseline,
        "rss.mb_per_1000_turns_second_half": slope * 1000,
        "rss.after_run_gc_mb": after,
        "rss.journal_backlog_max_events": backlog,
        "rss.wall_s": result.wall_s,
        "rss.cpu_s": result.cpu_s,
    }


if __name__ == "__main__":
    bench_main(run)
