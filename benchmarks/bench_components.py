"""Component benchmarks written by other engineers, called here so one command reports them all.

* ``checkpoint_write_growth``: :func:`benchmarks.checkpoint_growth.measure_checkpoint_growth`
  (10 agents x 200 turns of growing conversation; median save time at turn 200 / at turn 1).
  Quick mode keeps the 200 turns (the figure is about turn 200) with 5 agents.
* ``simulator_concurrent_streams``: :func:`benchmarks.simulator_streams.measure_concurrent_streams`
  opens N streams at once against one simulator process (500 quick, 1000 full). The figure is the
  number of concurrent streams served with no error: N when all succeeded; if some failed, full
  mode retries with 500 and reports that if clean, else 0 (the outcomes are kept beside it).
"""

from __future__ import annotations

from typing import Any

from benchmarks.harness import bench_main


def checkpoints(quick: bool) -> dict[str, Any]:
    from benchmarks.checkpoint_growth import measure_checkpoint_growth

    figures = measure_checkpoint_growth(agents=10 if quick else 30, turns=200)
    return {"checkpoint_write_growth": figures["checkpoint_write_growth"],
            **{f"checkpoint.{k}": v for k, v in figures.items()
               if k != "checkpoint_write_growth"}}  # fmt: skip


def streams(quick: bool) -> dict[str, Any]:
    from benchmarks.simulator_streams import measure_concurrent_streams

    sizes = [500] if quick else [1000, 500]
    attempts: list[dict[str, Any]] = []
    served = 0
    for n in sizes:
        result = measure_concurrent_streams(n)
        attempts.append(result)
        if result["errors"] == 0:
            served = n
            break
    best = attempts[-1]
    return {
        "simulator_concurrent_streams": served,
        "streams.tried": [a["streams"] for a in attempts],
        "streams.errors": [a["errors"] for a in attempts],
        "streams.wall_s": best.get("wall_s"),
        "streams.server_max_active_streams": best.get("server_max_active_streams"),
        "streams.server_cpu_s": best.get("server_cpu_s"),
        "streams.outcomes": best.get("outcomes"),
    }


def run(quick: bool) -> dict[str, Any]:
    return {**checkpoints(quick), **streams(quick)}


if __name__ == "__main__":
    bench_main(run)
