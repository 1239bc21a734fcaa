"""The Message Batches a run submitted, written ahead: a crash never submits a request twice.

A batch runs on the API's side for minutes to hours, and its results are billed whether or not
this process lives to read them. So before a batch is created, its requests' ``custom_id`` s (with
their agents and turns) are appended here and fsynced; once the API has answered, the batch's id
is appended and fsynced too. A resumed run reads the log back: a request whose ``custom_id`` is
in a batch is not sent again; its agent waits for that batch and takes its result
(:mod:`core.engine.batch_round`), and the recovery charges no worst case for it
(:mod:`core.engine.recovery`).

One JSON object a line (``inflight/batches.jsonl``): ``{"op": "submitting", "token", "layer",
"requests": [[custom_id, agent_id, turn], ...], "at"}``, then ``{"op": "submitted", "token",
"batch_id"}``. A line torn by a crash is skipped when read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.persistence.atomic import append, as_disk_error, open_in_run, read_regular

log = logging.getLogger(__name__)

LOG_NAME = "batches.jsonl"
LOG_LIMIT = 256 * 1024 * 1024
KIND = "batch records"


@dataclass(frozen=True, slots=True)
class BatchRequestRecord:
    custom_id: str
    agent_id: str
    turn: int


@dataclass(slots=True)
class BatchRecords:
    """What the log holds: each submitted batch's requests, and submissions whose id never came."""

    batch_of: dict[str, str] = field(default_factory=dict)  # custom_id -> batch id
    requests: dict[str, BatchRequestRecord] = field(default_factory=dict)  # every custom_id written
    unconfirmed: set[str] = field(default_factory=set)  # written ahead; the batch's id never recorded

    def may_have_sent(self, agent_id: str, turn: object) -> bool:
        """Whether a request of ``agent_id`` for ``turn`` was written ahead (in a batch, or in one
        whose creation a crash may have cut short)."""
        return any(r.agent_id == agent_id and r.turn == turn for r in self.requests.values())

    def in_batch(self, agent_id: str, turn: object) -> bool:
        """Whether a request of ``agent_id`` for ``turn`` went into a batch (a resume collects it)."""
        return any(
            r.agent_id == agent_id and r.turn == turn and r.custom_id in self.batch_of
            for r in self.requests.values()
        )


class BatchLog:
    """Appends and fsyncs each record before the step it announces (blocking work in a thread)."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / LOG_NAME

    async def submitting(
        self, token: str, layer: int, requests: Sequence[BatchRequestRecord], at: float
    ) -> None:
        rows = [[r.custom_id, r.agent_id, r.turn] for r in requests]
        await self._write({"op": "submitting", "token": token, "layer": layer, "requests": rows, "at": at})

    async def submitted(self, token: str, batch_id: str) -> None:
        await self._write({"op": "submitted", "token": token, "batch_id": batch_id})

    async def _write(self, record: dict[str, Any]) -> None:
        await asyncio.to_thread(self._append, json.dumps(record, separators=(",", ":")).encode() + b"\n")

    def _append(self, data: bytes) -> None:
        fd = open_in_run(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, kind=KIND)
        try:
            append(fd, data, self.path)
            os.fsync(fd)
        except OSError as exc:
            raise as_disk_error(exc, self.path) from exc
        finally:
            os.close(fd)

    def read(self) -> BatchRecords:
        """Every record (blocking: call it in a thread); none when there is no log."""
        records = BatchRecords()
        try:
            data = read_regular(self.path, limit=LOG_LIMIT, kind=KIND)
        except FileNotFoundError:
            return records
        pending: dict[str, list[str]] = {}
        for number, line in enumerate(data.splitlines(), start=1):
            try:
                record = json.loads(line)
                if record["op"] == "submitting":
                    ids = []
                    for custom_id, agent_id, turn in record["requests"]:
                        records.requests[custom_id] = BatchRequestRecord(
                            str(custom_id), str(agent_id), int(turn)
                        )
                        ids.append(str(custom_id))
                    pending[str(record["token"])] = ids
                elif record["op"] == "submitted":
                    for custom_id in pending.pop(str(record["token"]), []):
                        records.batch_of[custom_id] = str(record["batch_id"])
            except (ValueError, KeyError, TypeError) as error:
                log.warning("%s line %d unreadable (%s): skipped", self.path, number, error)
        records.unconfirmed = {custom_id for ids in pending.values() for custom_id in ids}
        return records
