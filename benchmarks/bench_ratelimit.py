"""20 agents against a simulated requests-per-minute limit: how many 429s, how much throughput.

The simulator enforces ``--requests-per-minute L`` as a token bucket (capacity L, refilled at
L/60 per second, starting full); token limits are set out of reach so only requests bind. 20
agents with far more turns than the window allows keep demand above the limit throughout; the
run is stopped (``Orchestrator.stop()``, as a user would) after the window.

* ``ratelimit_429_fraction``: 429 answers / all answers of the run (simulator ``by_status``).
* ``ratelimit_throughput_fraction``: successful requests per minute in the steady state / L. The
  bucket starts full, so the first L requests go through at once; the steady state starts when
  the L-th success is answered and runs to the end of the window (``recent`` request log).

Full mode: L = 50, a steady window of at least 75 s. Quick mode: L = 300 (5 a second), a 20 s
steady window: the same shape of contention, scaled in time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    SimulatorProcess,
    bench_main,
    flat_program,
    scratch_dir,
    simulator_args,
    write_program,
)

AGENTS = 20


async def _run_for(program: Path, runs: Path, base_url: str, seconds: float) -> tuple[float, float, str]:
    """Start the run, stop it after ``seconds``; its (start, end) wall-clock times and final status."""
    import time

    from core.runner import start_run

    orchestrator = await start_run(program, runs, simulate=True, base_url=base_url)
    started = time.time()
    task = asyncio.create_task(orchestrator.run())
    done, _ = await asyncio.wait({task}, timeout=seconds)
    ended = time.time()
    if not done:
        orchestrator.stop()
    outcome = await task
    return started, ended, outcome.status.value


def run(quick: bool) -> dict[str, Any]:
    limit, steady_s = (300, 20.0) if quick else (50, 75.0)
    burst_s = limit / AGENTS * 0.2  # the initial bucket drains in well under this at latency 0
    window = steady_s + burst_s + 2.0
    extra = [
        "--requests-per-minute", str(limit),
        "--input-tokens-per-minute", "1000000000000",
        "--output-tokens-per-minute", "1000000000000",
    ]  # fmt: skip
    args = simulator_args(unlimited=False, output_tokens_per_turn="100-200", extra=extra)
    with SimulatorProcess(*args) as sim, scratch_dir() as tmp:
        program = write_program(tmp / "rl", flat_program(AGENTS, max_turns=200, max_tokens=1024))
        started, ended, status = asyncio.run(_run_for(program, tmp / "runs", sim.base_url, window))
        stats = sim.stats()
    by_status = {int(k): v for k, v in stats["by_status"].items()}
    total = sum(by_status.values())
    limited = by_status.get(429, 0)
    records = [r for r in stats["recent"] if r["path"].endswith("/v1/messages")]
    ok_times = sorted(r["at"] for r in records if r["status"] == 200 and r["fault"] is None)
    if len(records) >= stats["requests"] and len(ok_times) > limit:
        steady_from = ok_times[limit - 1]
        steady = [t for t in ok_times[limit:] if t <= ended]
        span = ended - steady_from
        rate_per_min = len(steady) / span * 60 if span > 0 else float("nan")
    else:  # the log did not hold the whole run, or the burst never ended
        steady_from, span, rate_per_min, steady = float("nan"), float("nan"), float("nan"), []
    return {
        "ratelimit_429_fraction": limited / total if total else float("nan"),
        "ratelimit_throughput_fraction": rate_per_min / limit,
        "ratelimit.limit_rpm": limit,
        "ratelimit.agents": AGENTS,
        "ratelimit.requests": total,
        "ratelimit.answered_429": limited,
        "ratelimit.by_status": by_status,
        "ratelimit.steady_window_s": span,
        "ratelimit.steady_successes": len(steady),
        "ratelimit.steady_rpm": rate_per_min,
        "ratelimit.run_window_s": ended - started,
        "ratelimit.run_status": status,
    }


if __name__ == "__main__":
    bench_main(run)
