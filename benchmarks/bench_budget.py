"""Cap utilisation: how much of a binding dollar cap 50 agents in one layer spend (issue 9).

One layer of 50 agents (4 turns each, every agent running at once) is run uncapped against a
simulator process, then again with ``max_cost_usd`` at a quarter of the uncapped cost. The figure
is spent / cap of the capped run: reservations that wait for calls in flight, rather than fail,
let the run use the cap it was given. The capped run must also stay within the cap, and every
agent that started must have a report that is not partial (checked; a breach fails the group).
Quick: the shipped seed. Full: three seeds, the lowest utilisation is the figure.
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

AGENTS = 50


def one_seed(seed: int, tmp: Any) -> dict[str, Any]:
    with SimulatorProcess(*simulator_args(seed=seed, searches_per_turn="1-3")) as sim:
        data = flat_program(AGENTS, max_turns=4, max_uses=5)
        uncapped = run_program_sync(write_program(tmp / f"full-{seed}", data), tmp / "runs", sim.base_url)
        cap = round(float(uncapped.summary["cost_usd"]) / 4, 4)
        data["execution_settings"]["budget"] = {"max_cost_usd": cap}
        capped = run_program_sync(
            write_program(tmp / f"capped-{seed}", data), tmp / "runs", sim.base_url, check=False
        )
    spent = float(capped.summary["cost_usd"])
    if capped.status != "budget_exhausted" or spent > cap:
        raise RuntimeError(f"capped run ended {capped.status} having spent ${spent} of ${cap}")
    started = [a for a in capped.summary["agents"] if a["turns"] > 0]
    reports = {a["id"]: (capped.run_dir / a["report"]).read_text(encoding="utf-8") for a in started}
    partial = [agent for agent, text in reports.items() if "Partial report" in text]
    if partial:
        raise RuntimeError(f"started agents without a full report: {partial}")
    return {
        "utilisation": spent / cap,
        "cap_usd": cap,
        "spent_usd": spent,
        "uncapped_usd": float(uncapped.summary["cost_usd"]),
        "started_agents": len(started),
        "capped_wall_s": capped.wall_s,
    }


def run(quick: bool) -> dict[str, Any]:
    seeds = [7] if quick else [7, 8, 9]
    with scratch_dir() as tmp:
        runs = {seed: one_seed(seed, tmp) for seed in seeds}
    worst = min(runs.values(), key=lambda r: r["utilisation"])
    figures: dict[str, Any] = {"cap_utilisation_50_agents": worst["utilisation"]}
    for seed, result in runs.items():
        for name, value in result.items():
            figures[f"cap_utilisation_50_agents.seed_{seed}.{name}"] = value
    return figures


if __name__ == "__main__":
    bench_main(run)
