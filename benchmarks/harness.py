"""Shared pieces of the benchmarks: a simulator in its own process, program files, and meters.

The simulator always runs in a separate process so that the CPU, memory and event-loop time
measured in the benchmark process are the orchestrator's (and the SDK's), not the server's.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/x.py` from a fresh clone, package not installed
    sys.path.insert(0, str(ROOT))

DEFAULT_CONFIG = ROOT / "research_config.yaml"


# --- the simulator, out of process --------------------------------------------------------------


class SimulatorProcess:
    """``python -m core.simulator`` on a free port (port 0, read back from its banner).

    ``args`` are the simulator's own command-line flags (``--latency-ms 200`` ...). Use as a
    context manager; :meth:`stats` reads ``GET /_simulator/stats``.
    """

    def __init__(self, *args: str, startup_timeout_s: float = 20.0) -> None:
        self.args = tuple(args)
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""

    def start(self) -> SimulatorProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        command = [sys.executable, "-m", "core.simulator", "--port", "0", *self.args]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = re.search(r"http://[\d.]+:\d+", line)
        if not match:
            self.stop()
            raise RuntimeError(f"the simulator did not start: {line!r}")
        self.base_url = match.group(0)
        deadline = time.monotonic() + self.startup_timeout_s
        while True:  # the banner comes after bind; still, wait until it really answers HTTP
            try:
                self.stats()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.05)
        return self

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base_url}/_simulator/stats", timeout=10) as response:
            data: dict[str, Any] = json.loads(response.read())
        return data

    def cpu_seconds(self) -> float | None:
        return process_cpu_seconds(self.process.pid) if self.process else None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def simulator_args(
    *,
    latency_ms: float = 0,
    tokens_per_second: float = 0,
    pause_turn_probability: float = 0.0,
    searches_per_turn: str = "1-1",
    output_tokens_per_turn: str | None = None,
    seed: int = 7,
    extra: Sequence[str] = (),
) -> list[str]:
    """Flags for :class:`SimulatorProcess`, with the benchmarks' defaults (no pauses, one search)."""
    args = [
        "--seed", str(seed),
        "--latency-ms", str(latency_ms),
        "--tokens-per-second", str(tokens_per_second),
        "--pause-turn-probability", str(pause_turn_probability),
        "--searches-per-turn", searches_per_turn,
    ]  # fmt: skip
    if output_tokens_per_turn:
        args += ["--output-tokens-per-turn", output_tokens_per_turn]
    return [*args, *extra]


# --- programs ----------------------------------------------------------------------------------


def flat_program(
    n_agents: int,
    *,
    max_turns: int,
    max_concurrent_agents: int | None = None,
    checkpoints: bool = True,
    max_tokens: int = 2048,
    max_uses: int = 1,
    name: str = "bench",
) -> dict[str, Any]:
    """One layer of ``n_agents`` agents, no budget caps; the simulator block is ignored (external)."""
    return {
        "program": {"name": name, "question": "How fast is sodium-ion grid storage growing?"},
        "defaults": {
            "max_turns": max_turns,
            "max_tokens": max_tokens,
            "web_search": {"max_uses": max_uses},
        },
        "layers": [
            {
                "name": "research",
                "agents": [
                    {"id": f"agent-{i:03d}", "brief": f"Research angle {i} of sodium-ion storage."}
                    for i in range(n_agents)
                ],
            }
        ],
        "execution_settings": {
            "max_concurrent_agents": max_concurrent_agents or n_agents,
            "checkpoints": {"enabled": checkpoints},
            "retry": {"max_attempts": 50, "max_total_seconds": 3600},
        },
    }


def default_program(**changes: Any) -> dict[str, Any]:
    """``research_config.yaml`` as data, for benchmarks that vary one setting of the shipped program."""
    data: dict[str, Any] = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    data.update(changes)
    return data


def write_program(directory: Path, data: dict[str, Any], name: str = "program.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@contextmanager
def scratch_dir(prefix: str = "bench-") -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


# --- meters ------------------------------------------------------------------------------------


def rss_mb() -> float:
    """This process's resident set size in MiB, from ``/proc/self/status`` (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of another process (Linux ``/proc/PID/stat``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class Meter:
    """Wall and CPU time (this process) and RSS over a ``with`` block."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    rss_before_mb: float = 0.0
    rss_after_mb: float = 0.0
    _t0: float = field(default=0.0, repr=False)
    _c0: float = field(default=0.0, repr=False)

    def __enter__(self) -> Meter:
        self.rss_before_mb = rss_mb()
        self._t0 = time.perf_counter()
        self._c0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self._t0
        self.cpu_s = time.process_time() - self._c0
        self.rss_after_mb = rss_mb()


# --- running the product -----------------------------------------------------------------------


@dataclass(slots=True)
class RunResult:
    status: str
    wall_s: float
    cpu_s: float
    summary: dict[str, Any]
    run_dir: Path

    @property
    def api_turns(self) -> int:
        return sum(int(a["turns"]) for a in self.summary["agents"])


async def run_program(
    config_path: Path, runs_dir: Path, base_url: str, *, bus: Any = None, check: bool = True
) -> RunResult:
    """One headless run through :func:`core.runner.start_run` against an external simulator."""
    from core.runner import start_run

    with Meter() as meter:
        orchestrator = await start_run(config_path, runs_dir, simulate=True, bus=bus, base_url=base_url)
        outcome = await orchestrator.run()
    summary = json.loads((outcome.run_dir / "summary.json").read_text(encoding="utf-8"))
    if check and outcome.status.value != "completed":
        raise RuntimeError(f"benchmark run ended {outcome.status.value}: {outcome.message}")
    return RunResult(outcome.status.value, meter.wall_s, meter.cpu_s, summary, outcome.run_dir)


def run_program_sync(config_path: Path, runs_dir: Path, base_url: str, **kwargs: Any) -> RunResult:
    return asyncio.run(run_program(config_path, runs_dir, base_url, **kwargs))
