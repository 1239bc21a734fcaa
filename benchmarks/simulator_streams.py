"""Benchmark (not a test): how many concurrent SDK streams one simulator process serves without error.

Starts ``python -m core.simulator`` in its own process, opens N streams at once through one
``AsyncAnthropic`` (connection limits raised), and reports completions, errors, wall time and the
server's peak of simultaneously open streams. Pacing (tokens per second) keeps every stream open for
about a second or two so that they really overlap.

    python benchmarks/simulator_streams.py --streams 1000

Measured on the 2-core development container (2026-11-24), 400 tokens/s pacing, web search on:
500 streams: 500 completed, 0 errors, 9-15 s wall, 500 open at once, 2.5 s server CPU;
1000 streams: 1000 completed, 0 errors, 21.5 s wall, 1000 open at once, 5.0 s server CPU.
Unpaced (--tokens-per-second 0), 500 streams cost the server 1.1 s of CPU: the client's SDK parsing,
not the simulator, sets the wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anthropic
import httpx2

ROOT = Path(__file__).resolve().parents[1]


def _start_server(tokens_per_second: float, seed: int) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [
        sys.executable,
        "-m",
        "core.simulator",
        "--port",
        "0",
        "--seed",
        str(seed),
        "--tokens-per-second",
        str(tokens_per_second),
        "--pause-turn-probability",
        "0",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"http://[\d.]+:\d+", line)
    if not match:
        process.kill()
        raise RuntimeError(f"simulator did not start: {line!r}")
    return process, match.group(0)


async def _run_streams(base_url: str, n: int) -> dict[str, Any]:
    http_client = anthropic.DefaultAsyncHttpxClient(
        limits=httpx2.Limits(max_connections=n + 100, max_keepalive_connections=n + 100),
        timeout=httpx2.Timeout(120.0, connect=30.0),
    )
    client = anthropic.AsyncAnthropic(
        base_url=base_url, api_key="bench", max_retries=0, http_client=http_client
    )
    tools: list[Any] = [{"type": "web_search_20250305", "name": "web_search"}]

    async def one(i: int) -> str:
        try:
            async with client.messages.stream(
                model="claude-sonnet-5",
                max_tokens=2048,
                tools=tools,
                messages=[
                    {"role": "user", "content": f"Research topic {i}: battery storage in region {i % 37}"}
                ],
            ) as stream:
                message = await stream.get_final_message()
            return "ok" if message.stop_reason == "end_turn" else f"stop:{message.stop_reason}"
        except Exception as error:  # a benchmark counts failures instead of stopping at the first
            return type(error).__name__

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.perf_counter() - started
    stats = (await http_client.get(f"{base_url}/_simulator/stats")).json()
    await client.close()
    counts = Counter(outcomes)
    return {
        "streams": n,
        "completed": counts.get("ok", 0),
        "errors": n - counts.get("ok", 0),
        "outcomes": dict(counts),
        "wall_s": round(wall, 2),
        "streams_per_s": round(n / wall, 1),
        "server_max_active_streams": stats["max_active_streams"],
    }


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux), to show whether the server was the bottleneck."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_concurrent_streams(
    n: int = 500, tokens_per_second: float = 400.0, seed: int = 0
) -> dict[str, Any]:
    """Serve ``n`` simultaneous streams from one simulator process; the figures of the run."""
    process, base_url = _start_server(tokens_per_second, seed)
    try:
        cpu_before = _cpu_seconds(process.pid)
        result = asyncio.run(_run_streams(base_url, n))
        cpu_after = _cpu_seconds(process.pid)
        if cpu_before is not None and cpu_after is not None:
            result["server_cpu_s"] = round(cpu_after - cpu_before, 2)
        return result
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--streams", type=int, default=500, help="concurrent streams (default: %(default)s)")
    parser.add_argument(
        "--tokens-per-second",
        type=float,
        default=400.0,
        help="simulator pacing per stream (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="simulator seed (default: %(default)s)")
    args = parser.parse_args()
    result = measure_concurrent_streams(args.streams, args.tokens_per_second, args.seed)
    print(json.dumps(result, indent=2))
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
