"""Batch layers: what a layer costs in batch mode against the same layer streamed, and how a layer
of 1,000 agents in one batch fares in one process.

- ``batch_cost_ratio``: the token dollars (cost less searches) of the shipped program's layer 1 in
  ``mode: batch`` ÷ the same layer streamed, each against a fresh simulator process with the same
  seed. The batch server loop is given the synchronous one's limit, so both runs get the same
  answers and the ratio is the price alone (the API's batch loop runs longer, which changes the
  conversation, not the price).
- ``batch_layer_1000_agents``: 1,000 agents (200 in ``--quick``) of one batch layer, one call each,
  complete in one process; ``batch.cpu_ms_per_request`` is the orchestrator's CPU (this process:
  the simulator runs in its own) per API request, against ``batch.stream_cpu_ms_per_request`` for
  the same layer streamed. The figure is 1 when the run completes and batch CPU per request is at
  most the stream mode's, else 0.
"""

from __future__ import annotations

from typing import Any

from benchmarks.harness import (
    SimulatorProcess,
    bench_main,
    default_program,
    flat_program,
    run_program_sync,
    scratch_dir,
    simulator_args,
    write_program,
)

SERVER_LOOP_LIMIT = 3
BATCH_PROCESSING_S = 2.0


def _token_usd(summary: dict[str, Any], layer: int = 1) -> float:
    """The layer's dollars less its searches' (priced the same in both modes)."""
    agents = [a for a in summary["agents"] if a["layer"] == layer]
    return sum(a["cost_usd"] for a in agents) - sum(a["searches"] for a in agents) * 10.0 / 1000


def _args(seed: int, pause: float, searches: str = "1-3") -> list[str]:
    return simulator_args(
        seed=seed,
        pause_turn_probability=pause,
        searches_per_turn=searches,
        extra=(
            "--server-loop-limit", str(SERVER_LOOP_LIMIT),
            "--batch-server-loop-limit", str(SERVER_LOOP_LIMIT),
            "--batch-processing-s", str(BATCH_PROCESSING_S),
        ),
    )  # fmt: skip


def run(quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    shipped = default_program()
    seed = int(shipped.get("simulator", {}).get("seed", 7))
    pause = float(shipped.get("simulator", {}).get("pause_turn_probability", 0.15))
    with scratch_dir() as tmp:
        usd: dict[str, float] = {}
        for mode in ("stream", "batch"):
            data = default_program()
            data["layers"] = data["layers"][:1]
            data["layers"][0]["mode"] = mode
            with SimulatorProcess(*_args(seed, pause)) as sim:
                result = run_program_sync(
                    write_program(tmp / f"cost-{mode}", data), tmp / "runs", sim.base_url
                )
            usd[mode] = _token_usd(result.summary)
            out[f"batch.cost.{mode}.token_usd"] = usd[mode]
            out[f"batch.cost.{mode}.cost_usd"] = result.summary["cost_usd"]
            out[f"batch.cost.{mode}.searches"] = result.summary["searches"]
            out[f"batch.cost.{mode}.turns"] = result.api_turns
        out["batch_cost_ratio"] = usd["batch"] / usd["stream"]

        agents = 200 if quick else 1000
        cpu: dict[str, float] = {}
        for mode in ("stream", "batch"):
            data = flat_program(agents, max_turns=1, checkpoints=True)
            data["layers"][0]["mode"] = mode
            with SimulatorProcess(*_args(seed, 0.0, "1-1")) as sim:
                result = run_program_sync(
                    write_program(tmp / f"wide-{mode}", data), tmp / "runs", sim.base_url
                )
            cpu[mode] = result.cpu_s / max(1, result.api_turns) * 1e3
            out[f"batch.wide.{mode}.status"] = result.status
            out[f"batch.wide.{mode}.wall_s"] = result.wall_s
            out[f"batch.wide.{mode}.cpu_s"] = result.cpu_s
            out[f"batch.wide.{mode}.requests"] = result.api_turns
        out["batch.agents"] = agents
        out["batch.cpu_ms_per_request"] = cpu["batch"]
        out["batch.stream_cpu_ms_per_request"] = cpu["stream"]
        completed = (
            out["batch.wide.batch.status"] == "completed" and out["batch.wide.batch.requests"] >= agents
        )
        out["batch_layer_1000_agents"] = 1 if completed and cpu["batch"] <= cpu["stream"] else 0
    return out


if __name__ == "__main__":
    bench_main(run)
