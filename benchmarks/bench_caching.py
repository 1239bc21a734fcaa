"""Prompt caching: the default program's input-side dollars with caching on and off.

``research_config.yaml`` as shipped (8 agents in 3 layers, its own simulator seed and pause
probability), with the simulator's pacing off, run twice: ``defaults.caching.enabled`` true, then
false. Input-side dollars are summed per call from the journal's ``turn_completed`` usage with
:meth:`core.budget.pricing.PriceTable.input_cost` (uncached input, cache writes and cache reads at each
model's rates). The figure is 1 - with / without, summed over one seed (quick) or three (full).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    SimulatorProcess,
    bench_main,
    default_program,
    run_program_sync,
    scratch_dir,
    simulator_args,
    write_program,
)


def input_dollars(run_dir: Path) -> tuple[float, dict[str, float]]:
    """Input-side dollars of every completed call of a run, and the figures behind them.

    ``last_call_write_usd`` is what each agent's final call paid to *write* the cache beyond the
    uncached price (0.25x of input at 5-minute TTL): a write no later call can read.
    """
    from core.budget.pricing import PriceTable
    from core.config.loader import load_config
    from core.persistence.rundir import RunDir
    from core.usage import TokenUsage

    prices = PriceTable.from_config(load_config(RunDir(run_dir).config_copy_path).pricing)
    dollars = 0.0
    total = TokenUsage()
    last: dict[str, tuple[str, TokenUsage]] = {}
    for line in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event.get("kind") != "turn_completed":
            continue
        usage = TokenUsage.from_dict(event["usage"])
        dollars += prices.input_cost(str(event["model"]), usage)
        total = total + usage
        last[str(event["agent_id"])] = (str(event["model"]), usage)
    unread = 0.0
    for model, usage in last.values():
        price = prices.price(model).for_prompt(usage.total_input_tokens)
        unread += (usage.cache_write_5m_tokens * (price.cache_write_5m - price.input)
                   + usage.cache_write_1h_tokens * (price.cache_write_1h - price.input)) / 1e6  # fmt: skip
    return dollars, {
        "input_tokens": total.input_tokens,
        "cache_write_tokens": total.cache_creation_input_tokens,
        "cache_read_tokens": total.cache_read_input_tokens,
        "output_tokens": total.output_tokens,
        "last_call_write_premium_usd": unread,
    }


def run(quick: bool) -> dict[str, Any]:
    """Quick: the shipped seed. Full: three seeds (pauses and searches differ per seed), summed."""
    shipped = default_program()
    seed = int(shipped.get("simulator", {}).get("seed", 7))
    pause = float(shipped.get("simulator", {}).get("pause_turn_probability", 0.15))
    seeds = [seed] if quick else [seed, seed + 1, seed + 2]
    sums: dict[str, float] = {}
    with scratch_dir() as tmp:
        for run_seed in seeds:
            args = simulator_args(seed=run_seed, pause_turn_probability=pause, searches_per_turn="1-3")
            with SimulatorProcess(*args) as sim:
                for enabled in (True, False):
                    data = default_program()
                    data["defaults"] = {**data["defaults"], "caching": {
                        **data["defaults"].get("caching", {}), "enabled": enabled}}  # fmt: skip
                    program = write_program(tmp / f"caching-{run_seed}-{enabled}", data)
                    result = run_program_sync(program, tmp / "runs", sim.base_url)
                    dollars, tokens = input_dollars(result.run_dir)
                    label = "on" if enabled else "off"
                    for key, value in {"input_usd": dollars, "total_usd": result.summary["cost_usd"],
                                       "api_calls": result.api_turns, **tokens}.items():  # fmt: skip
                        sums[f"caching.{label}.{key}"] = sums.get(f"caching.{label}.{key}", 0) + float(value)
    on, off = sums["caching.on.input_usd"], sums["caching.off.input_usd"]
    premium = sums["caching.on.last_call_write_premium_usd"]
    return {
        "caching_input_cost_reduction": 1 - on / off,
        "caching.seeds": seeds,
        "caching.reduction_without_final_call_writes": 1 - (on - premium) / off,
        **sums,
    }


if __name__ == "__main__":
    bench_main(run)
