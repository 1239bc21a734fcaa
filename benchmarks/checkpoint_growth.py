"""Benchmark: does writing a checkpoint cost the same at turn 200 as at turn 1?

Ten agents share one run (as a layer does), starting at staggered times, and each grows a
research conversation for 200 turns, 2-6 KB per turn (a search call, its results with encrypted
content, cited text). Every save is timed; the figure is the median save time at turn 200 over
the median at turn 1 (the issue's bar: within 1.5). A warm-up save first keeps directory
creation out of turn 1.

Run: ``python -m benchmarks.checkpoint_growth [DIR]`` (DIR: where to write; default a temp dir;
pick a directory on the disk your runs live on for a meaningful fsync).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from core.persistence.checkpoints import CheckpointStore

Message = dict[str, Any]
_VOCABULARY = ("sodium", "cathode", "capacity", "grid", "storage", "cost", "cycle", "life", "2026", "tender",
               "supply", "anode", "hard-carbon", "layered", "oxide", "price", "per", "kWh")  # fmt: skip


def _words(rng: random.Random, size: int) -> str:
    out: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(_VOCABULARY)
        out.append(word)
        length += len(word) + 1
    return " ".join(out)


def _turn(rng: random.Random, agent: str, turn: int) -> list[Message]:
    """One API turn of a searching agent, 2-6 KB of JSON."""
    budget = rng.randint(2000, 6000)
    results = [
        {"type": "web_search_result", "url": f"https://{agent}-{turn}-{i}.example/article",
         "title": _words(rng, 40), "page_age": "2026-03-01",
         "encrypted_content": "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/", k=budget // 6))}
        for i in range(3)
    ]  # fmt: skip
    return [
        {"role": "user", "content": f"Continue your research (turn {turn})."},
        {
            "role": "assistant",
            "content": [
                {"type": "server_tool_use", "id": f"srvtoolu_{agent}_{turn}", "name": "web_search",
                 "input": {"query": _words(rng, 50)}},
                {"type": "web_search_tool_result", "tool_use_id": f"srvtoolu_{agent}_{turn}",
                 "content": results},
                {"type": "text", "text": _words(rng, budget // 3),
                 "citations": [{"type": "web_search_result_location", "url": results[0]["url"],
                                "title": results[0]["title"], "cited_text": _words(rng, 120)}]},
            ],
        },
    ]  # fmt: skip


async def _run(
    directory: Path, agents: int, turns: int, seed: int
) -> tuple[list[list[float]], list[list[int]]]:
    store = CheckpointStore(directory)
    rng = random.Random(seed)
    conversations = {f"agent-{i}": [{"role": "user", "content": _words(rng, 600)}] for i in range(agents)}
    times = [[0.0] * turns for _ in range(agents)]
    sizes = [[0] * turns for _ in range(agents)]
    ledger: dict[str, Any] = {"spent_usd": 0.0, "reserved_usd": 0.0, "searches": 0}

    async def save(agent_id: str, turn: int, messages: list[Message]) -> tuple[float, int]:
        ledger["spent_usd"] += 0.01
        start = time.perf_counter()
        info = await store.save(
            agent_id=agent_id, layer=1, turn=turn, messages=messages,
            agent_state={"turns": turn, "searches": turn, "status": "running"}, ledger_state=dict(ledger),
            cost_usd=ledger["spent_usd"], tokens=turn * 5000, agent_status="running",
        )  # fmt: skip
        return time.perf_counter() - start, info.size_bytes

    await save("warmup", 1, [{"role": "user", "content": "warm-up"}])
    # Staggered starts spread the turn-1 samples (and the turn-200 ones) over the whole run, so a
    # moment of disk contention cannot land on all samples of one side of the ratio.
    starts = [index * turns // agents for index in range(agents)]
    for round_ in range(starts[-1] + turns):
        for index, (agent_id, messages) in enumerate(conversations.items()):
            turn = round_ - starts[index] + 1
            if 1 <= turn <= turns:
                messages.extend(_turn(rng, agent_id, turn))
                times[index][turn - 1], sizes[index][turn - 1] = await save(agent_id, turn, messages)
    return times, sizes


def measure_checkpoint_growth(
    directory: Path | None = None, *, agents: int = 30, turns: int = 200, seed: int = 7
) -> dict[str, float]:
    """Median save time at the last turn over the first; ~1.0 means the cost does not grow."""
    with tempfile.TemporaryDirectory(dir=directory, prefix="ckpt-bench-") as tmp:
        times, sizes = asyncio.run(_run(Path(tmp), agents, turns, seed))
    first = statistics.median(t[0] for t in times)
    last = statistics.median(t[-1] for t in times)
    window = min(10, turns)
    early = statistics.median(x for t in times for x in t[:window])
    late = statistics.median(x for t in times for x in t[-window:])
    return {
        "checkpoint_write_growth": last / first,
        "checkpoint_write_growth_windowed": late / early,  # first 10 turns vs last 10 of every agent
        "save_ms_turn_1": first * 1000,
        f"save_ms_turn_{turns}": last * 1000,
        "bytes_turn_1": statistics.median(s[0] for s in sizes),
        f"bytes_turn_{turns}": statistics.median(s[-1] for s in sizes),
        "agents": agents,
        "turns": turns,
    }


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    for key, value in measure_checkpoint_growth(target).items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
