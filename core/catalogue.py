"""The run catalogue: the runs in a runs directory, newest first, and what each one is now.

``research-orchestrator runs`` and the app's runs screen both list from here, so they agree on
every run: its status as its ``summary.json`` says, except that a "running" run nobody owns any
more is interrupted (its process was killed, crashed or lost its disk, and could not say so), and
the process that owns it now, if any (the app attaches to such a run instead of resuming it).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from core.persistence.atomic import DiskError
from core.persistence.checkpoints import latest_spend
from core.persistence.rundir import RunDir, id_parts, run_dirs
from core.persistence.runlock import owner_alive
from core.remote.owner import LiveOwner, live_owner


@dataclass(frozen=True, slots=True)
class RunEntry:
    """One run as the catalogue lists it."""

    run_id: str
    status: str  # a summary status, "interrupted" for a running run with no owner, or "unknown"
    cost_usd: float
    created: float  # epoch seconds
    program: str
    parent: str | None  # the run this one was forked from
    path: Path
    parent_checkpoint: str | None = None  # and the checkpoint it was forked at
    owner: LiveOwner | None = None  # the process that owns it now, or is starting to
    unconfirmed_usd: float = 0.0  # of cost_usd, the bounds charged for attempts whose usage never arrived

    @property
    def billed_usd(self) -> float:
        """Of ``cost_usd``, the usage the API reported."""
        return self.cost_usd - self.unconfirmed_usd

    @property
    def live(self) -> bool:
        """A process owns it now: attach to it rather than resume it."""
        return self.owner is not None

    @property
    def owner_pid(self) -> int | None:
        return self.owner.pid if self.owner is not None else None

    @property
    def forked_from(self) -> str:
        """``RUN @ CHECKPOINT`` of a fork, else empty."""
        return f"{self.parent} @ {self.parent_checkpoint or '?'}" if self.parent else ""


def list_runs(runs_dir: Path) -> list[RunEntry]:
    """Every run under ``runs_dir``, newest first; a damaged summary shows as status ``unknown``."""
    entries = [_entry(RunDir(p)) for p in run_dirs(Path(runs_dir))]
    return sorted(entries, key=lambda r: (r.created, r.run_id), reverse=True)


def _entry(run: RunDir) -> RunEntry:
    summary = run.read_summary() or {}
    status = summary.get("status")
    parent, parent_checkpoint = _parent(summary)
    value = summary.get("cost_usd")
    cost = float(value) if isinstance(value, int | float) else 0.0
    value = summary.get("unconfirmed_usd")  # (absent from summaries written before the split)
    unconfirmed = float(value) if isinstance(value, int | float) else 0.0
    if status == "running" and not owner_alive(run.path):
        # Its process is gone (killed, crashed, the disk filled): the summary could not say so.
        status = "interrupted"
        with contextlib.suppress(DiskError):  # a link planted for checkpoints/: not read
            cost = max(cost, latest_spend(run.path) or 0.0)
    return RunEntry(
        run_id=run.run_id,
        status=status if isinstance(status, str) else "unknown",
        cost_usd=cost,
        created=_created(run, summary),
        program=_program(run, summary),
        parent=parent,
        path=run.path,
        parent_checkpoint=parent_checkpoint,
        owner=live_owner(run.path),
        unconfirmed_usd=unconfirmed,
    )


def _created(run: RunDir, summary: dict[str, Any]) -> float:
    value = summary.get("started_at", summary.get("created_at"))
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value).timestamp()
    parts = id_parts(run.run_id)
    if parts is not None:
        return parts[0]
    try:
        return run.path.stat().st_mtime
    except OSError:
        return 0.0


def _program(run: RunDir, summary: dict[str, Any]) -> str:
    value = summary.get("program")
    if isinstance(value, dict):
        value = value.get("name")
    if isinstance(value, str) and value:
        return value
    parts = id_parts(run.run_id)
    return parts[1] if parts is not None else ""


def _parent(summary: dict[str, Any]) -> tuple[str | None, str | None]:
    """The run and checkpoint a fork was made from (``parent_record``), or Nones."""
    value = summary.get("parent")
    if not isinstance(value, dict):
        return None, None
    run_id, checkpoint_id = value.get("run_id"), value.get("checkpoint_id")
    return (
        run_id if isinstance(run_id, str) and run_id else None,
        checkpoint_id if isinstance(checkpoint_id, str) and checkpoint_id else None,
    )
