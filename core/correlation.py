"""Correlation ids of what the current task is doing (run, agent, request), for log records.

Context variables, so each agent's task carries its own: the engine sets the run and agent when it
starts an agent's task, the API layer the request id when a response names it, and
:mod:`core.logs` stamps them on every record; telemetry adds the run's trace ids while it is on.
Imports nothing of core (every layer may set them).
"""

from __future__ import annotations

from contextvars import ContextVar

run_id: ContextVar[str | None] = ContextVar("run_id", default=None)
agent_id: ContextVar[str | None] = ContextVar("agent_id", default=None)
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
#: The trace and span ids of the run's span while telemetry is on (process-wide: one run traces at once).
trace_ids: dict[str, str] = {}


def fields() -> dict[str, str]:
    """The ids known here and now, by name (``run``, ``agent``, ``request``, ``trace``, ``span``)."""
    found = {"run": run_id.get(), "agent": agent_id.get(), "request": request_id.get()}
    ids = {name: value for name, value in found.items() if value}
    ids.update(trace_ids)
    return ids
