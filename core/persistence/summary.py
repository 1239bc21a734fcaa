"""``summary.json``: the run's always-current state, the contract scripts and CI read."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from core.control import RunStatus
from core.persistence.atomic import write_atomic_async

if TYPE_CHECKING:
    from core.engine.orchestrator import Orchestrator

THROTTLE_SECONDS = 0.5


def build_summary(orchestrator: Orchestrator, status: RunStatus) -> dict[str, Any]:
    snapshot = orchestrator.ledger.snapshot()
    usage = snapshot.usage
    agents = []
    for agent in orchestrator.agents:
        state = orchestrator.states.get(agent.id)
        report = orchestrator.reports.get(agent.id)
        agents.append(
            {
                "id": agent.id,
                "title": agent.title,
                "layer": agent.layer,
                "model": agent.model,
                "status": orchestrator.statuses[agent.id].value,
                "turns": state.api_turns if state else 0,
                "searches": state.searches if state else 0,
                "cost_usd": round(state.cost_usd, 6) if state else 0.0,
                "retries": state.retries if state else 0,
                "report": str(report.relative_to(orchestrator.run_dir)) if report else None,
                "error": orchestrator.errors.get(agent.id),
            }
        )
    final_report = orchestrator.run_dir_ref.final_report_path
    return {
        "run_id": orchestrator.run_id,
        "program": orchestrator.config.program.name,
        "status": status.value,
        "simulated": orchestrator.simulated,
        "started_at": orchestrator.started_at,
        "updated_at": time.time(),
        "current_layer": orchestrator.current_layer,
        "layers": len(orchestrator.config.layers),
        "cost_usd": round(snapshot.spent_usd, 6),
        "searches": usage.web_search_requests,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "budget": {
            "cap_usd": snapshot.cap_usd,
            "search_cap": snapshot.search_cap,
            "token_cap": snapshot.token_cap,
        },
        "parent": orchestrator.parent,
        "report": "report.md" if final_report.exists() else None,
        "agents": agents,
    }


class SummaryWriter:
    """Writes the summary atomically, at most every half second while running, always at the end."""

    def __init__(self, orchestrator: Orchestrator) -> None:
        self._orchestrator = orchestrator
        self._last = 0.0

    async def write(self, status: RunStatus, *, throttle: bool = False) -> None:
        now = time.monotonic()
        if throttle and now - self._last < THROTTLE_SECONDS:
            return
        self._last = now
        data = build_summary(self._orchestrator, status)
        await write_atomic_async(
            self._orchestrator.run_dir_ref.summary_path, json.dumps(data, indent=2).encode("utf-8")
        )
