"""Message threads: what the shipped program sends per call, and how soon answers start, with and without.

``research_config.yaml`` as shipped (its seed and pause probability), run with
``defaults.message_threads`` off, then on, each against a fresh simulator process; then both again
with prompt caching off. The simulator logs every request's body size and
its simulated time to first byte, which here is a base latency plus a validation time per thousand
prompt tokens the request itself carries (``--validation-ms-per-1k-tokens``: the API validates and
tokenizes what it is sent, so a thread continue, which carries only its new turn, starts sooner).

- ``thread_request_bytes_ratio``: mean request body bytes of a completed call, with ÷ without.
- ``thread_ttft_ratio``: mean simulated first-byte wait of each conversation's last calls (its
  final ``LAST_CALLS`` completed requests: the report turn and the turn before, where the
  conversation is longest), with ÷ without.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import fmean
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

LATENCY_MS = 300.0
"""The base wait before a first byte (the model's own start), the same with threads and without."""
VALIDATION_MS_PER_1K = 2.0
"""Validation and tokenization per thousand prompt tokens sent: 200 ms for a 100k-token request."""
LAST_CALLS = 2


def _figures(records: list[dict[str, Any]]) -> dict[str, float]:
    done = [r for r in records if r["path"] == "/v1/messages" and r["status"] == 200 and r["stop_reason"]]
    by_conversation: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in done:
        by_conversation[record["conversation"]].append(record)
    last = [r for calls in by_conversation.values() for r in calls[-LAST_CALLS:]]
    return {
        "calls": len(done),
        "continues": sum(1 for r in done if r.get("thread") == "continue"),
        "mean_request_bytes": fmean(r["bytes"] for r in done),
        "mean_first_byte_s": fmean(r["first_byte_s"] for r in done),
        "last_calls_first_byte_s": fmean(r["first_byte_s"] for r in last),
        "last_calls_validated_tokens": fmean(r["validated_tokens"] for r in last),
    }


def run(quick: bool) -> dict[str, Any]:
    """The shipped program (caching on, as shipped), then the same with caching off: with caching on,
    a call continues only where it still reads the prompt cache (``core/engine/threads.py``), so the
    second pair shows what a thread alone changes. Quick and full are the same runs (one seed)."""
    shipped = default_program()
    seed = int(shipped.get("simulator", {}).get("seed", 7))
    pause = float(shipped.get("simulator", {}).get("pause_turn_probability", 0.15))
    out: dict[str, Any] = {"threads.seed": seed}
    with scratch_dir() as tmp:
        args = simulator_args(
            seed=seed,
            pause_turn_probability=pause,
            searches_per_turn="1-3",
            latency_ms=LATENCY_MS,
            extra=("--validation-ms-per-1k-tokens", str(VALIDATION_MS_PER_1K)),
        )
        for caching in (True, False):
            prefix = "threads" if caching else "threads.uncached"
            for threads in (False, True):
                with SimulatorProcess(*args) as sim:
                    data = default_program()
                    data["defaults"] = {
                        **data["defaults"],
                        "message_threads": threads,
                        "caching": {**data["defaults"].get("caching", {}), "enabled": caching},
                    }
                    program = write_program(tmp / f"threads-{threads}-{caching}", data)
                    result = run_program_sync(program, tmp / "runs", sim.base_url)
                    label = "on" if threads else "off"
                    out[f"{prefix}.{label}.status"] = result.status
                    out[f"{prefix}.{label}.cost_usd"] = result.summary["cost_usd"]
                    for key, value in _figures(sim.stats()["recent"]).items():
                        out[f"{prefix}.{label}.{key}"] = value
            bytes_ratio = out[f"{prefix}.on.mean_request_bytes"] / out[f"{prefix}.off.mean_request_bytes"]
            ttft_ratio = (
                out[f"{prefix}.on.last_calls_first_byte_s"] / out[f"{prefix}.off.last_calls_first_byte_s"]
            )
            out["thread_request_bytes_ratio" if caching else "threads.uncached.request_bytes_ratio"] = (
                bytes_ratio
            )
            out["thread_ttft_ratio" if caching else "threads.uncached.ttft_ratio"] = ttft_ratio
    return out


if __name__ == "__main__":
    bench_main(run)
