"""``summary.json``: the run's always-current state, the contract scripts and CI read.

It is written from the run's :class:`~core.view.RunView` (the same fold of events the front ends
use) plus the few run-level facts the events do not carry, so it agrees with the app and the
headless table at every moment; the run's cost is the sum of its agents'. The view is above the
stores, so it is taken by its shape (:class:`RunFigures`), not imported.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from core.control import AgentStatus, RunStatus
from core.persistence.atomic import DiskError, write_atomic_async
from core.persistence.rundir import RunDir
from core.usage import TokenUsage

THROTTLE_SECONDS = 0.5
log = logging.getLogger(__name__)


class AgentFigures(Protocol):
    """One agent as ``summary.json`` lists it (a row of the run view)."""

    @property
    def agent_id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def layer(self) -> int: ...
    @property
    def status(self) -> AgentStatus: ...
    @property
    def turn(self) -> int: ...
    @property
    def searches(self) -> int: ...
    @property
    def cost_usd(self) -> float: ...
    @property
    def unconfirmed_usd(self) -> float: ...
    @property
    def unconfirmed_attempts(self) -> int: ...
    @property
    def unconfirmed_searches(self) -> int: ...
    @property
    def retries(self) -> int: ...
    @property
    def report_path(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...


class RunFigures(Protocol):
    """The run's agents and searches as the summary needs them (the run view)."""

    @property
    def agents(self) -> Mapping[str, AgentFigures]: ...
    @property
    def searches(self) -> int: ...


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What the summary needs beyond the view: the config's shape, the ledger's totals and caps."""

    program: str
    simulated: bool
    started_at: float
    layers: int
    current_layer: int
    usage: TokenUsage
    caps: dict[str, float | int | None]
    parent: dict[str, str] | None
    models: dict[str, str]
    reason: str | None = None  # why the run ended as it did (which cap bound, what failed), once it has
    active_s: float = 0.0  # seconds the run has been running, over all its attempts


def money(row: AgentFigures) -> dict[str, Any]:
    """An agent's dollars and searches as ``summary.json`` writes them: ``cost_usd`` (what the caps
    count) is ``billed_usd`` (the usage the API reported) + ``unconfirmed_usd`` (the bound charged
    for ``unconfirmed_attempts`` attempts whose usage never arrived), each to the micro-dollar;
    ``searches`` likewise."""
    return _split(
        round(row.cost_usd, 6), round(row.unconfirmed_usd, 6), row.unconfirmed_attempts,
        row.searches, row.unconfirmed_searches,
    )  # fmt: skip


def total_money(agents: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's figures of :func:`money`: the sums of its agents' as written, so they agree."""
    return _split(
        round(sum(a["cost_usd"] for a in agents), 6),
        round(sum(a["unconfirmed_usd"] for a in agents), 6),
        sum(a["unconfirmed_attempts"] for a in agents),
        sum(a["searches"] for a in agents),
        sum(a["unconfirmed_searches"] for a in agents),
    )


def _split(
    cost: float, unconfirmed: float, attempts: int, searches: int, unconfirmed_searches: int
) -> dict[str, Any]:
    """Billed is what is left of the cost once the unconfirmed part is taken out, so that
    ``cost_usd`` = ``billed_usd`` + ``unconfirmed_usd`` holds as written."""
    return {
        "searches": searches,
        "cost_usd": cost,
        "billed_usd": round(cost - unconfirmed, 6),
        "unconfirmed_usd": unconfirmed,
        "unconfirmed_attempts": attempts,
        "billed_searches": searches - unconfirmed_searches,
        "unconfirmed_searches": unconfirmed_searches,
    }


def build_summary(view: RunFigures, facts: RunFacts, status: RunStatus, run_dir: RunDir) -> dict[str, Any]:
    usage = facts.usage
    agents = [
        {
            "id": row.agent_id,
            "title": row.title,
            "layer": row.layer,
            "model": facts.models.get(row.agent_id, ""),
            "status": row.status.value,
            "turns": row.turn,
            **money(row),
            "retries": row.retries,
            "report": _relative(row.report_path, run_dir),
            "error": row.error,
        }
        for row in view.agents.values()
    ]
    totals = total_money(agents)
    return {
        "run_id": run_dir.run_id,
        "program": facts.program,
        "status": status.value,
        "reason": facts.reason,
        "simulated": facts.simulated,
        "started_at": facts.started_at,
        "active_s": round(facts.active_s, 3),
        "updated_at": time.time(),
        "current_layer": facts.current_layer,
        "layers": facts.layers,
        # The sums of the agents as written (each to the micro-dollar), so the two always agree.
        "cost_usd": totals["cost_usd"],
        "searches": totals["searches"],
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        **{k: v for k, v in totals.items() if k not in ("cost_usd", "searches")},
        "budget": facts.caps,
        "parent": facts.parent,
        "report": "report.md" if run_dir.final_report_path.exists() else None,
        "agents": agents,
    }


def encode_summary(data: Mapping[str, Any]) -> bytes:
    """``summary.json``'s bytes: indented for people, each agent's row on a line of its own (last). The
    rows go through the C encoder (``indent`` makes Python fall back to its pure-Python one, which
    at 1,000 agents cost more CPU than the API calls; the summary is written every half second)."""
    if "agents" not in data:
        return json.dumps(data, indent=2).encode("utf-8")
    head = json.dumps({k: v for k, v in data.items() if k != "agents"}, indent=2)
    rows = ",\n    ".join(json.dumps(row) for row in data["agents"])
    agents = f'"agents": [\n    {rows}\n  ]' if rows else '"agents": []'
    text = f"{{\n  {agents}\n}}" if head == "{}" else f"{head[:-2]},\n  {agents}\n}}"
    return text.encode("utf-8")


def _relative(path: str | None, run_dir: RunDir) -> str | None:
    if path is None:
        return None
    return _relative_to(path, str(run_dir.path))


@functools.lru_cache(maxsize=4096)
def _relative_to(path: str, base: str) -> str:
    """``path`` inside ``base``, relative (cached: every agent's row, every write)."""
    try:
        return str(Path(base).joinpath(path).relative_to(base))
    except ValueError:
        return path


class SummaryWriter:
    """Writes the summary atomically: when asked, and within :data:`THROTTLE_SECONDS` of any change
    to an agent's row (:meth:`changed`: one write for a burst of changes), so it stays current while
    nothing else writes (an agent paused, waiting for budget or killed). Writes never overlap, and
    none lands after :meth:`close`'s final one."""

    def __init__(self, run_dir: RunDir, view: RunFigures, facts: Callable[[], RunFacts]) -> None:
        self._run_dir = run_dir
        self._view = view
        self._facts = facts
        self._last = 0.0
        self._status = RunStatus.RUNNING
        self._lock = asyncio.Lock()
        self._dirty = False
        self._timer: asyncio.TimerHandle | None = None
        self._flush: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def idle(self) -> bool:
        """No write is due or under way: ``summary.json`` says what the view says."""
        if self._closed:
            return not self._lock.locked()
        return not self._dirty and self._timer is None and self._flush is None and not self._lock.locked()

    async def write(self, status: RunStatus) -> None:
        """Write now. A change of the run (every agent's every checkpoint) calls :meth:`changed`
        instead, so that a busy run's many changes share one write per throttle period."""
        async with self._lock:
            self._last = time.monotonic()
            self._status, self._dirty = status, False
            data = build_summary(self._view, self._facts(), status, self._run_dir)
            await write_atomic_async(self._run_dir.summary_path, encode_summary(data))

    def changed(self) -> None:
        """The view changed: write it soon (called inline by the run's view listener, cheap)."""
        self._dirty = True
        if self._closed or self._timer is not None or self._flush is not None:
            return
        delay = max(0.0, self._last + THROTTLE_SECONDS - time.monotonic())
        self._timer = asyncio.get_running_loop().call_later(delay, self._start_flush)

    def _start_flush(self) -> None:
        self._timer = None
        if not self._closed and self._dirty:
            self._flush = asyncio.get_running_loop().create_task(self._flush_once(), name="summary")

    async def _flush_once(self) -> None:
        try:
            if self._dirty and not self._closed:
                await self.write(self._status)
        except DiskError as error:  # the run's next checkpoint or its end meets the disk too
            log.error("could not write summary.json: %s", error)
        finally:
            self._flush = None
        if self._dirty:
            self.changed()

    async def close(self, status: RunStatus) -> None:
        """The final write: nothing scheduled is written after it."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flush is not None:
            await asyncio.wait({self._flush})  # a write under way lands first, never after
        await self.write(status)
