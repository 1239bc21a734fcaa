"""20 agents against a simulated 50 requests-per-minute limit: how many 429s, how much throughput.

The simulator enforces ``--requests-per-minute 50`` as a token bucket (capacity 50, refilled at
50/60 a second, starting full); token limits are set out of reach so only requests bind. 20 agents
with 5 (quick) or 10 (full) turns each make N = 100 or 200 requests, far more than the limit lets
through at once, so demand stays above the limit until the end.

* ``ratelimit_429_fraction``: 429 answers / all answers of the run (simulator ``by_status``).
* ``ratelimit_throughput_fraction``: the rate achieved after the initial allowance over the limit.
  The bucket starts full, so the first 50 requests may go at once and the other N - 50 can go no
  faster than 50 a minute: the fastest possible run lasts (N - 50) / 50 minutes (1 min quick,
  3 min full). The figure is that ideal duration over the measured one (first request received
  to last success answered, from the simulator's request log); 1.0 means the limit was used fully.
  Measuring by completion rather than by a fixed window keeps a bursty client (all 50 at once,
  then nothing) from scoring by the phase at which a window happens to end.
"""

from __future__ import annotations

from typing import Any

from benchmarks.harness import (
    SimulatorProcess,
    bench_main,
    flat_program,
    run_program_sync,
    scratch_dir,
    simulator_args,
    write_program,
)

AGENTS = 20
LIMIT_RPM = 50


def run(quick: bool) -> dict[str, Any]:
    turns = 5 if quick else 10
    extra = [
        "--requests-per-minute", str(LIMIT_RPM),
        "--input-tokens-per-minute", "1000000000000",
        "--output-tokens-per-minute", "1000000000000",
    ]  # fmt: skip
    args = simulator_args(unlimited=False, output_tokens_per_turn="100-200", extra=extra)
    with SimulatorProcess(*args) as sim, scratch_dir() as tmp:
        program = write_program(tmp / "rl", flat_program(AGENTS, max_turns=turns, max_tokens=1024))
        result = run_program_sync(program, tmp / "runs", sim.base_url)
        stats = sim.stats()
    by_status = {int(k): v for k, v in stats["by_status"].items()}
    total = sum(by_status.values())
    limited = by_status.get(429, 0)
    records = [r for r in stats["recent"] if r["path"].endswith("/v1/messages")]
    complete_log = len(records) == stats["requests"]
    ok = [r for r in records if r["status"] == 200]
    first = min(r.get("received_at") or r["at"] for r in records)
    duration = max(r["at"] for r in ok) - first
    beyond_allowance = len(ok) - LIMIT_RPM
    ideal = beyond_allowance / LIMIT_RPM * 60
    return {
        "ratelimit_429_fraction": limited / total if total else float("nan"),
        "ratelimit_throughput_fraction": ideal / duration if complete_log and duration > 0 else float("nan"),
        "ratelimit.limit_rpm": LIMIT_RPM,
        "ratelimit.agents": AGENTS,
        "ratelimit.requests": total,
        "ratelimit.successes": len(ok),
        "ratelimit.answered_429": limited,
        "ratelimit.by_status": by_status,
        "ratelimit.ideal_duration_s": ideal,
        "ratelimit.duration_s": duration,
        "ratelimit.achieved_rpm_beyond_allowance": beyond_allowance / duration * 60 if duration > 0 else None,
        "ratelimit.run_wall_s": result.wall_s,
        "ratelimit.retries": sum(int(a["retries"]) for a in result.summary["agents"]),
    }


if __name__ == "__main__":
    bench_main(run)
