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
if str(ROOT) not in sys.path:  # `python benchmarks/run.py` from a fresh clone, package not installed
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


_SINK = """
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(f"http://127.0.0.1:{server.server_port}", flush=True)
server.serve_forever()
"""


@contextmanager
def otlp_sink() -> Iterator[str]:
    """An OTLP/HTTP endpoint in another process that accepts and drops what it is sent, so the
    exporters do all their work (encode, send) and none of the receiving is counted here."""
    process = subprocess.Popen([sys.executable, "-c", _SINK], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


UNLIMITED_RATE = (
    "--requests-per-minute", "1000000000",
    "--input-tokens-per-minute", "1000000000000",
    "--output-tokens-per-minute", "1000000000000",
)  # fmt: skip
"""Enforced but unreachable limits, so ``anthropic-ratelimit-*`` headers never run low. (Before
93aaf7b, limits that were *off* reported a nominal 2M input tokens/min and drained it; the gate
rightly backed off and 100 agents x 10 turns measured the back-off, not the orchestrator.)"""


def simulator_args(
    *,
    latency_ms: float = 0,
    tokens_per_second: float = 0,
    pause_turn_probability: float = 0.0,
    searches_per_turn: str = "1-1",
    output_tokens_per_turn: str | None = None,
    seed: int = 7,
    unlimited: bool = True,
    extra: Sequence[str] = (),
) -> list[str]:
    """Flags for :class:`SimulatorProcess`, with the benchmarks' defaults (no pauses, one search,
    rate limits out of reach unless ``unlimited`` is false)."""
    args = [
        "--seed", str(seed),
        "--latency-ms", str(latency_ms),
        "--tokens-per-second", str(tokens_per_second),
        "--pause-turn-probability", str(pause_turn_probability),
        "--searches-per-turn", searches_per_turn,
    ]  # fmt: skip
    if output_tokens_per_turn:
        args += ["--output-tokens-per-turn", output_tokens_per_turn]
    if unlimited:
        args += UNLIMITED_RATE
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
    config_path: Path,
    runs_dir: Path,
    base_url: str,
    *,
    bus: Any = None,
    check: bool = True,
    telemetry: Any = None,
) -> RunResult:
    """One headless run through :func:`core.runner.start_run` against an external simulator."""
    from core.runner import start_run

    with Meter() as meter:
        orchestrator = await start_run(
            config_path, runs_dir, simulate=True, bus=bus, base_url=base_url, telemetry=telemetry
        )
        outcome = await orchestrator.run()
    summary = json.loads((outcome.run_dir / "summary.json").read_text(encoding="utf-8"))
    if check and outcome.status.value != "completed":
        raise RuntimeError(f"benchmark run ended {outcome.status.value}: {outcome.message}")
    return RunResult(outcome.status.value, meter.wall_s, meter.cpu_s, summary, outcome.run_dir)


def run_program_sync(config_path: Path, runs_dir: Path, base_url: str, **kwargs: Any) -> RunResult:
    return asyncio.run(run_program(config_path, runs_dir, base_url, **kwargs))


# --- the limit: the SDK alone ------------------------------------------------------------------


@dataclass(slots=True)
class SdkResult:
    wall_s: float
    cpu_s: float
    calls: int
    output_tokens: int
    input_tokens: int  # uncached + cache writes + cache reads


def _mark_last_user_blocks(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cache breakpoints on the last two user messages, as the product places them."""
    marked = list(messages)
    users = [i for i, m in enumerate(marked) if m["role"] == "user"][-2:]
    for i in users:
        blocks = [dict(b) for b in marked[i]["content"]]
        blocks[-1]["cache_control"] = {"type": "ephemeral"}
        marked[i] = {"role": "user", "content": blocks}
    return marked


async def sdk_conversations(config_path: Path, base_url: str) -> SdkResult:
    """The program's agents as bare SDK conversations under ``asyncio.gather``: the limit.

    Same prompts (from the program's turn plan), model, ``max_tokens``, system prompt, search
    tool, the report turn's ``tool_choice: none`` and cache breakpoints as the product sends (the
    simulator draws each answer from its request, so the same requests stream the same tokens),
    one growing conversation per agent, no
    budget, retries, events, journal or checkpoints. Concurrency is ``max_concurrent_agents``.
    """
    from anthropic import AsyncAnthropic

    from core.config.loader import load_config
    from core.engine.turn_plan import build_plan

    config = load_config(config_path)
    defaults = config.defaults
    system = [{"type": "text", "text": defaults.system_prompt, "cache_control": {"type": "ephemeral"}}]
    tool: dict[str, Any] = {"type": defaults.web_search.version, "name": "web_search"}
    if defaults.web_search.max_uses:
        tool["max_uses"] = defaults.web_search.max_uses
    limit = asyncio.Semaphore(config.execution_settings.max_concurrent_agents)
    totals = {"calls": 0, "output": 0, "input": 0}

    async def agent_run(agent: Any) -> None:
        async with limit:
            messages: list[dict[str, Any]] = []
            plan = build_plan(agent, config.program, defaults, {})
            for number, prompt in enumerate(plan, 1):
                messages.append({"role": "user", "content": [{"type": "text", "text": prompt}]})
                # The product's report turn (the plan's last, unless it is the only one) may not
                # search: it keeps the tool the conversation's searches need, under tool_choice none.
                report = len(plan) > 1 and number == len(plan)
                choice: dict[str, Any] = {"tool_choice": {"type": "none"}} if report else {}
                async with client.messages.stream(
                    model=agent.model,
                    max_tokens=agent.max_tokens,
                    system=system,  # type: ignore[arg-type]
                    tools=[tool],  # type: ignore[list-item]
                    messages=_mark_last_user_blocks(messages),  # type: ignore[arg-type]
                    **choice,
                ) as stream:
                    message = await stream.get_final_message()
                content = [b.to_dict(mode="json") for b in message.content]
                messages.append({"role": "assistant", "content": content})
                usage = message.usage
                totals["calls"] += 1
                totals["output"] += usage.output_tokens
                totals["input"] += (
                    usage.input_tokens
                    + (usage.cache_creation_input_tokens or 0)
                    + (usage.cache_read_input_tokens or 0)
                )

    with Meter() as meter:  # the client's making counted too, as the product's run counts its own
        # No retries (none is needed on the simulator), and time to connect when a thousand agents
        # connect at once on a busy machine (the SDK's 5 s connect timeout is then too short).
        client = AsyncAnthropic(base_url=base_url, api_key="sk-ant-bench", max_retries=0, timeout=600.0)
        await asyncio.gather(*(agent_run(a) for a in config.agents()))
        await client.close()
    return SdkResult(meter.wall_s, meter.cpu_s, totals["calls"], totals["output"], totals["input"])


# --- every bench module's command line ---------------------------------------------------------


def bench_main(run: Any) -> None:
    """``python -m benchmarks.bench_x [--quick] [--json FILE]``: run one module, print its figures."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="the scaled-down workload")
    parser.add_argument("--json", type=Path, help="write the figures to FILE")
    args = parser.parse_args()
    figures = run(args.quick)
    text = json.dumps(figures, indent=2, default=str)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)
