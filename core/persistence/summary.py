"""``summary.json``: the run's always-current state, the contract scripts and CI read.

It is written from the run's :class:`~core.view.RunView` (the same fold of events the front ends
use) plus the few run-level facts the events do not carry, so it agrees with the app and the
headless table at every moment; the run's cost is the sum of its agents'.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.api.usage import TokenUsage
from core.control import RunStatus
from core.persistence.atomic import write_atomic_async
from core.persistence.rundir import RunDir
from core.view import RunView

THROTTLE_SECONDS = 0.5


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


def build_summary(view: RunView, facts: RunFacts, status: RunStatus, run_dir: RunDir) -> dict[str, Any]:
    usage = facts.usage
    agents = [
        {
            "id": row.agent_id,
            "title": row.title,
            "layer": row.layer,
            "model": facts.models.get(row.agent_id, ""),
            "status": row.status.value,
            "turns": row.turn,
            "searches": row.searches,
            "cost_usd": round(row.cost_usd, 6),
            "retries": row.retries,
            "report": _relative(row.report_path, run_dir),
            "error": row.error,
        }
        for row in view.agents.values()
    ]
    return {
        "run_id": run_dir.run_id,
        "program": facts.program,
        "status": status.value,
        "simulated": facts.simulated,
        "started_at": facts.started_at,
        "updated_at": time.time(),
        "current_layer": facts.current_layer,
        "layers": facts.layers,
        # The sum of the agents as written (each to the micro-dollar), so the two always agree.
        "cost_usd": round(sum(round(row.cost_usd, 6) for row in view.agents.values()), 6),
        "searches": view.searches,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "budget": facts.caps,
        "parent": facts.parent,
        "report": "report.md" if run_dir.final_report_path.exists() else None,
        "agents": agents,
    }


def _relative(path: str | None, run_dir: RunDir) -> str | None:
    if path is None:
        return None
    try:
        return str(run_dir.path.joinpath(path).relative_to(run_dir.path))
    except ValueError:
        return path


class SummaryWriter:
    """Writes the summary atomically: at most every half second while running, always when asked."""

    def __init__(self, run_dir: RunDir, view: RunView, facts: Callable[[], RunFacts]) -> None:
        self._run_dir = run_dir
        self._view = view
        self._facts = facts
        self._last = 0.0

    async def write(self, status: RunStatus, *, throttle: bool = False) -> None:
        now = time.monotonic()
        if throttle and now - self._last < THROTTLE_SECONDS:
            return
        self._last = now
        data = build_summary(self._view, self._facts(), status, self._run_dir)
        await write_atomic_async(self._run_dir.summary_path, json.dumps(data, indent=2).encode("utf-8"))
