"""Cap utilisation: how much of a binding dollar cap a run spends (issues 9 and 21).

``cap_utilisation_50_agents``: one layer of 50 agents (4 turns each, every agent running at once)
is run uncapped against a simulator process, then again with ``max_cost_usd`` at a quarter of the
uncapped cost. The figure
is spent / cap of the capped run: reservations that wait for calls in flight, rather than fail,
let the run use the cap it was given. The capped run must also stay within the cap, and every
agent that started must have a report that is not partial (checked; a breach fails the group).
Quick: the shipped seed. Full: three seeds, the lowest utilisation is the figure.

``cap_utilisation_small``: the shipped program cut to two layers (two researchers, then the
synthesis reading both), with
``max_cost_usd`` at half the expected cost :func:`core.estimate.estimate` gives the program: the
shape where reserving every call and report at ``max_tokens`` and ``max_uses`` stopped agents at
half the cap (issue 21). Same checks: within the cap, every started agent with a full report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.harness import (
    RunResult,
    SimulatorProcess,
    bench_main,
    default_program,
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
    spent = checked_spend(capped, cap)
    started = [a for a in capped.summary["agents"] if a["turns"] > 0]
    return {
        "utilisation": spent / cap,
        "cap_usd": cap,
        "spent_usd": spent,
        "uncapped_usd": float(uncapped.summary["cost_usd"]),
        "started_agents": len(started),
        "capped_wall_s": capped.wall_s,
    }


def checked_spend(capped: RunResult, cap: float) -> float:
    """The capped run's spend, after checking it stopped on the cap, within it, and that every
    agent that started wrote a full report (a breach fails the group)."""
    spent = float(capped.summary["cost_usd"])
    if capped.status != "budget_exhausted" or spent > cap:
        raise RuntimeError(f"capped run ended {capped.status} having spent ${spent} of ${cap}")
    started = [a for a in capped.summary["agents"] if a["turns"] > 0]
    reports = {a["id"]: (capped.run_dir / a["report"]).read_text(encoding="utf-8") for a in started}
    partial = [agent for agent, text in reports.items() if "Partial report" in text]
    if partial:
        raise RuntimeError(f"started agents without a full report: {partial}")
    return spent


def small_program() -> dict[str, Any]:
    """The shipped program cut to a new user's first one: two researchers (8 turns each, its
    defaults) and the synthesis that reads them, checkpoints on, no cap yet."""
    data = default_program()
    research = data["layers"][0]
    research["agents"] = research["agents"][:2]
    synthesis = data["layers"][-1]
    synthesis["agents"][0]["reads"] = [research["name"]]
    synthesis["agents"][0].pop("max_turns", None)
    data["layers"] = [research, synthesis]
    data["execution_settings"] = {"max_concurrent_agents": 5, "checkpoints": {"enabled": True}}
    data.pop("simulator", None)
    return data


def half_expected_cap(config_path: Path) -> float:
    from core.budget.pricing import PriceTable
    from core.config.loader import load_config
    from core.estimate import estimate

    config = load_config(config_path)
    return round(estimate(config, PriceTable.from_config(config.pricing)).usd.expected / 2, 4)


def small_seed(seed: int, tmp: Any) -> dict[str, Any]:
    data = small_program()
    cap = half_expected_cap(write_program(tmp / f"small-{seed}", data))
    data["execution_settings"]["budget"] = {"max_cost_usd": cap}
    # Answers and searches the size the estimate expects (40% of max_tokens, half of max_uses),
    # so the cap binds as it does for users: the simulator's defaults cost a third of that.
    shape = simulator_args(seed=seed, searches_per_turn="2-3", output_tokens_per_turn="1200-2000")
    with SimulatorProcess(*shape) as sim:
        capped = run_program_sync(
            write_program(tmp / f"small-capped-{seed}", data), tmp / "runs", sim.base_url, check=False
        )
    spent = checked_spend(capped, cap)
    return {
        "utilisation": spent / cap,
        "cap_usd": cap,
        "spent_usd": spent,
        "started_agents": sum(1 for a in capped.summary["agents"] if a["turns"] > 0),
        "capped_wall_s": capped.wall_s,
    }


def run(quick: bool) -> dict[str, Any]:
    seeds = [7] if quick else [7, 8, 9]
    with scratch_dir() as tmp:
        runs = {seed: one_seed(seed, tmp) for seed in seeds}
        small = {seed: small_seed(seed, tmp) for seed in seeds}
    figures: dict[str, Any] = {}
    for figure, results in (("cap_utilisation_50_agents", runs), ("cap_utilisation_small", small)):
        figures[figure] = min(r["utilisation"] for r in results.values())
        for seed, result in results.items():
            for name, value in result.items():
                figures[f"{figure}.seed_{seed}.{name}"] = value
    return figures


if __name__ == "__main__":
    bench_main(run)
