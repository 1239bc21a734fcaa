"""Run every benchmark of the product and compare each figure with its goal (issue 7).

    python benchmarks/run.py [--quick] [--json FILE] [--only KEY_OR_GROUP ...]

Each group of benchmarks runs in a child process of its own (fresh memory, no state carried
between groups), each starting its own simulator process, so what is measured is the
orchestrator. ``--quick`` scales the workloads down to finish in a few minutes on 2 cores while
still producing every key; full mode takes about a quarter of an hour. ``--json`` writes every
figure (the goal keys at the top level, supporting figures under dotted keys) plus the machine,
the mode and the verdicts. See ``benchmarks/README.md`` for the method of each figure.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # a fresh clone: `core` and `benchmarks` importable without installing
    sys.path.insert(0, str(ROOT))


@dataclass(frozen=True, slots=True)
class Goal:
    key: str
    op: str  # "<=", ">=" or "record"
    target: float | None
    unit: str = ""

    def verdict(self, value: Any) -> str:
        if self.op == "record":
            return "recorded" if _is_number(value) else "missing"
        if not _is_number(value):
            return "missing"
        assert self.target is not None
        ok = value <= self.target if self.op == "<=" else value >= self.target
        return "pass" if ok else "MISS"

    @property
    def text(self) -> str:
        return "as low as possible" if self.op == "record" else f"{self.op} {self.target:g}{self.unit}"


GOALS = (
    Goal("parallel_efficiency_100", "<=", 1.10),
    Goal("parallel_efficiency_1000", "<=", 1.25),
    Goal("rss_mb_per_agent", "<=", 0.5, " MB"),
    Goal("overhead_vs_sdk_wall", "<=", 1.05),
    Goal("speedup_5_agents", ">=", 4.5),
    Goal("cpu_us_per_streamed_token", "record", None, " us"),
    Goal("cpu_per_token_vs_sdk", "<=", 1.10),
    Goal("telemetry_cpu_rise_vs_sdk", "<=", 0.05),
    Goal("tui_input_latency_p95_ms", "<=", 50, " ms"),
    Goal("event_loop_lag_p99_ms", "<=", 30, " ms"),
    Goal("tui_input_latency_p95_ms_100_agents", "<=", 100, " ms"),
    Goal("checkpoint_write_growth", "<=", 1.5),
    Goal("rss_growth_mb_10k_turns", "<=", 100, " MB"),
    Goal("ratelimit_429_fraction", "<=", 0.05),
    Goal("ratelimit_throughput_fraction", ">=", 0.9),
    Goal("caching_input_cost_reduction", ">=", 0.5),
    Goal("simulator_concurrent_streams", ">=", 500),
    Goal("cli_startup_seconds", "<=", 0.25, " s"),
    Goal("app_first_frame_seconds", "<=", 0.6, " s"),
    Goal("cap_utilisation_50_agents", ">=", 0.95),
    Goal("cap_utilisation_small", ">=", 0.9),
    Goal("attach_lag_p95_ms", "<=", 200, " ms"),
    Goal("stop_waste_usd", "<=", 0, " $"),
    Goal("thread_request_bytes_ratio", "record", None),
    Goal("thread_ttft_ratio", "record", None),
    Goal("batch_cost_ratio", "<=", 0.51),
    Goal("batch_layer_1000_agents", ">=", 1),
)


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    target: str  # "module:function" taking (quick: bool) -> dict
    keys: tuple[str, ...]
    timeout_quick_s: float
    timeout_full_s: float


GROUPS = (
    Group("parallel", "benchmarks.bench_parallel:run",
          ("parallel_efficiency_100", "overhead_vs_sdk_wall", "speedup_5_agents"), 400, 900),
    Group("scale", "benchmarks.bench_scale:run",
          ("parallel_efficiency_1000", "rss_mb_per_agent"), 1200, 1200),
    Group("cpu", "benchmarks.bench_cpu:run",
          ("cpu_us_per_streamed_token", "cpu_per_token_vs_sdk", "telemetry_cpu_rise_vs_sdk"), 240, 600),
    Group("tui", "benchmarks.bench_tui:run",
          ("tui_input_latency_p95_ms", "event_loop_lag_p99_ms", "tui_input_latency_p95_ms_100_agents"),
          360, 800),
    Group("checkpoints", "benchmarks.bench_components:checkpoints", ("checkpoint_write_growth",), 180, 400),
    Group("memory", "benchmarks.bench_memory:run", ("rss_growth_mb_10k_turns",), 300, 1200),
    Group("ratelimit", "benchmarks.bench_ratelimit:run",
          ("ratelimit_429_fraction", "ratelimit_throughput_fraction"), 200, 500),
    Group("caching", "benchmarks.bench_caching:run", ("caching_input_cost_reduction",), 120, 300),
    Group("streams", "benchmarks.bench_components:streams", ("simulator_concurrent_streams",), 180, 400),
    Group("startup", "benchmarks.bench_startup:run", ("cli_startup_seconds", "app_first_frame_seconds"),
          240, 480),
    Group("budget", "benchmarks.bench_budget:run", ("cap_utilisation_50_agents", "cap_utilisation_small"),
          240, 600),
    Group("attach", "benchmarks.bench_attach:run", ("attach_lag_p95_ms",), 180, 300),
    Group("stop", "benchmarks.bench_stop:run", ("stop_waste_usd",), 240, 600),
    Group("threads", "benchmarks.bench_threads:run",
          ("thread_request_bytes_ratio", "thread_ttft_ratio"), 240, 400),
    Group("batch", "benchmarks.bench_batch:run", ("batch_cost_ratio", "batch_layer_1000_agents"), 300, 900),
)  # fmt: skip


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def machine() -> dict[str, Any]:
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "memory": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _resolve(target: str) -> Callable[[bool], dict[str, Any]]:
    import importlib

    module_name, _, function = target.partition(":")
    function_: Callable[[bool], dict[str, Any]] = getattr(importlib.import_module(module_name), function)
    return function_


def run_group(group: Group, quick: bool) -> tuple[dict[str, Any], float, str | None]:
    """Run one group in a child process; its figures, wall seconds and an error (or None)."""
    timeout = group.timeout_quick_s if quick else group.timeout_full_s
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with tempfile.TemporaryDirectory(prefix="bench-out-") as tmp:
        out = Path(tmp) / "figures.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--child", group.target, "--json", str(out)]
        if quick:
            command.append("--quick")
        started = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=ROOT, env=env, timeout=timeout, capture_output=True, text=True)
        except subprocess.TimeoutExpired:
            return {}, time.perf_counter() - started, f"timed out after {timeout:.0f} s"
        wall = time.perf_counter() - started
        if done.returncode != 0 or not out.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-6:]
            return {}, wall, f"exit {done.returncode}: " + " | ".join(tail)
        figures: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return figures, wall, None


def _format(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def print_table(figures: dict[str, Any], walls: dict[str, float], errors: dict[str, str]) -> None:
    rows = [(g.key, _format(figures.get(g.key)), g.text, g.verdict(figures.get(g.key))) for g in GOALS
            if g.key in figures]  # fmt: skip
    widths = [max(len(r[i]) for r in [("key", "value", "goal", "result"), *rows]) for i in range(4)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print()
    print(line.format("key", "value", "goal", "result"))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row))
    print()
    for name, wall in walls.items():
        note = f"  ERROR: {errors[name]}" if name in errors else ""
        print(f"  group {name:<12} {wall:6.1f} s{note}")


def _child(target: str, quick: bool, out: Path) -> int:
    figures = _resolve(target)(quick)
    out.write_text(json.dumps(figures, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the product's benchmarks and compare with the goals.")
    parser.add_argument("--quick", action="store_true", help="scaled-down workloads (minutes)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every figure to FILE")
    parser.add_argument("--only", nargs="+", metavar="KEY", help="only these keys' groups")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child, args.quick, args.json)

    groups = list(GROUPS)
    if args.only:
        wanted = set(args.only)
        unknown = wanted - {g.name for g in GROUPS} - {k for g in GROUPS for k in g.keys}
        if unknown:
            parser.error(f"unknown key or group: {', '.join(sorted(unknown))}")
        groups = [g for g in GROUPS if g.name in wanted or wanted & set(g.keys)]

    mode = "quick" if args.quick else "full"
    info = machine()
    print(
        f"benchmarks ({mode}) on {info['cpus']} CPUs, {info['memory']}, Python {info['python']}, "
        f"{info['date']}"
    )
    figures: dict[str, Any] = {}
    walls: dict[str, float] = {}
    errors: dict[str, str] = {}
    for group in groups:
        print(f"  running {group.name} ...", flush=True)
        result, walls[group.name], error = run_group(group, args.quick)
        if error:
            errors[group.name] = error
            print(f"    {group.name} failed: {error}", flush=True)
        for key in group.keys:
            result.setdefault(key, None)
        figures.update(result)
        shown = ", ".join(f"{k}={_format(result.get(k))}" for k in group.keys)
        print(f"    {shown}  ({walls[group.name]:.0f} s)", flush=True)

    print_table(figures, walls, errors)
    verdicts = {g.key: g.verdict(figures.get(g.key)) for g in GOALS if g.key in figures}
    if args.json:
        document = {
            **{g.key: figures.get(g.key) for g in GOALS if any(g.key in gr.keys for gr in groups)},
            **{k: v for k, v in sorted(figures.items()) if k not in {g.key for g in GOALS}},
            "meta.mode": mode,
            "meta.machine": info,
            "meta.group_wall_s": walls,
            "meta.errors": errors,
            "meta.verdicts": verdicts,
            "meta.goals": {g.key: g.text for g in GOALS},
        }
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"\nfigures written to {args.json}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
