"""A run owned by another process, watched and steered as if it were this process's own.

:class:`AttachedRun` has the shape of :class:`core.control.RunControl`, so the app (or any front
end) drives it exactly like a run it hosts: its ``bus`` carries the owner's events (the
snapshot's, then the journal's from the snapshot's offset), and pause, resume, kill and stop go
to the owner over the run's control channel. ``run()`` returns when the run ends, or when the
owner is gone without ending it (then the outcome says so and how to resume).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.control import AgentStatus, RunOutcome, RunStatus
from core.events import EventBus, from_json
from core.persistence.rundir import RunDir
from core.persistence.runlock import owner_pid
from core.remote.channel import ChannelError, OwnerUnreachable, call, connect, encode, read_message
from core.remote.owner import not_live, wait_until_serving
from core.remote.tail import JournalTail
from core.view import RunView

logger = logging.getLogger(__name__)

Refused = Callable[[str], None]
ANSWER_WITHIN_SECONDS = 5.0
"""A live owner sends its snapshot at once; one that does not within this is stopped or stuck."""


class AttachedRun:
    """The client end of a run's control channel (implements :class:`core.control.RunControl`)."""

    attached = True

    def __init__(
        self, run_dir: Path, *, bus: EventBus | None = None, on_refused: Refused | None = None
    ) -> None:
        self.run_dir_ref = RunDir(run_dir)
        self.run_dir = self.run_dir_ref.path
        self.run_id = self.run_dir_ref.run_id
        self.bus = bus or EventBus()
        self.view = RunView()
        self.on_refused = on_refused
        self.owner_pid = owner_pid(self.run_dir)
        self.owner_gone = False  # the owner went away without ending the run (it died)
        self._commands: asyncio.Queue[dict[str, Any]] | None = None

    @property
    def socket_path(self) -> Path:
        return self.run_dir_ref.control_socket_path

    # --- control: requests to the owner ------------------------------------------------------

    def agent_status(self, agent_id: str) -> AgentStatus:
        return self.view.status_of(agent_id)

    def pause(self, agent_id: str) -> bool:
        return self._request({"op": "pause", "agent": agent_id})

    def resume(self, agent_id: str) -> bool:
        return self._request({"op": "resume", "agent": agent_id})

    def kill(self, agent_id: str, *, now: bool = True) -> bool:
        return self._request({"op": "kill", "agent": agent_id, **({} if now else {"now": False})})

    def stop(self, *, now: bool = False) -> None:
        self._request({"op": "stop", **({"now": True} if now else {})})

    def in_flight_usd(self, agent_id: str | None = None) -> float | None:
        return None  # the owner's ledger: not in the journal

    def _request(self, request: dict[str, Any]) -> bool:
        """Queue a request for the owner; the owner's refusal, if any, reaches ``on_refused``."""
        agent = request.get("agent")
        if self._commands is None or (agent is not None and agent not in self.view.agents):
            return False
        self._commands.put_nowait(request)
        return True

    async def _send_commands(self, commands: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            request = await commands.get()
            try:
                reply = await call(self.socket_path, request)
            except ChannelError as error:
                reply = {"ok": False, "error": str(error)}
            finally:
                commands.task_done()
            if not reply.get("ok"):
                message = str(reply.get("error") or "refused")
                logger.warning("owner of %s refused %s: %s", self.run_id, request, message)
                if self.on_refused is not None:
                    self.on_refused(message)

    # --- the run, as the owner tells it ------------------------------------------------------

    def _publish(self, data: dict[str, Any]) -> None:
        try:
            event = from_json(data)
        except ValueError as error:
            logger.warning("journal of %s: skipped an event: %s", self.run_id, error)
            return
        self.view.apply(event)
        self.bus.publish(event)

    async def run(self) -> RunOutcome:
        """Follow the run until it ends or its owner goes; raises OwnerUnreachable if none serves it."""
        reader, writer = await connect(self.socket_path)
        tail: JournalTail | None = None
        commands: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        try:
            try:
                async with asyncio.timeout(ANSWER_WITHIN_SECONDS):
                    writer.write(encode({"op": "watch"}))
                    await writer.drain()
                    first = await read_message(reader)
            except TimeoutError:
                raise OwnerUnreachable(self._not_answering()) from None
            if first is None or not first.get("ok") or not isinstance(first.get("snapshot"), dict):
                raise OwnerUnreachable(f"the owner of {self.run_id} did not send a snapshot: {first}")
            snapshot = first["snapshot"]
            for data in snapshot.get("events", []):
                self._publish(data)
            tail = JournalTail(self.run_dir_ref.events_path, int(snapshot.get("offset", 0)))
            self._commands = commands
            async with asyncio.TaskGroup() as group:
                sender = group.create_task(self._send_commands(commands), name=f"attach:{self.run_id}:send")
                try:
                    await self._follow(reader, tail)
                finally:
                    await self._drain_commands(commands)
                    sender.cancel()
            for data in await tail.read():  # whatever the owner wrote before it went
                self._publish(data)
        except (ConnectionError, asyncio.IncompleteReadError) as error:
            raise OwnerUnreachable(f"the owner of {self.run_id} hung up before sending a snapshot") from error
        finally:
            self._commands = None
            writer.close()
            if tail is not None:
                tail.close()
        await self.bus.close()
        return self._outcome()

    def _not_answering(self) -> str:
        who = f"pid {self.owner_pid}" if self.owner_pid else "its owner"
        cont = f"`kill -CONT {self.owner_pid}` lets it go on; " if self.owner_pid else ""
        return (
            f"the process that owns run {self.run_id} ({who}) did not answer within "
            f"{ANSWER_WITHIN_SECONDS:g} s: it is stopped (Ctrl-Z, SIGSTOP, a debugger) or stuck. If it was "
            f"stopped, {cont}then attach again; if it is stuck, stop it (the run resumes from its last "
            f"checkpoint with `research-orchestrator resume {self.run_id}`)"
        )

    async def _follow(self, reader: asyncio.StreamReader, tail: JournalTail) -> None:
        """Read the journal up to each offset the owner announces, until the channel ends."""
        while True:
            try:
                message = await read_message(reader)
            except (ConnectionError, asyncio.IncompleteReadError):
                return  # the owner died: the journal says how far it got
            except ChannelError as error:
                logger.error("control channel of %s: %s", self.run_id, error)
                return
            if message is None or message.get("closed"):
                return
            upto = message.get("journal")
            if isinstance(upto, int):
                for data in await tail.read(upto):
                    self._publish(data)

    @staticmethod
    async def _drain_commands(commands: asyncio.Queue[dict[str, Any]]) -> None:
        """Give requests already queued (a stop just before the end) a moment to reach the owner."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await commands.join()

    def _outcome(self) -> RunOutcome:
        run = self.view.run
        cost = run.cost_usd if run.finished else self.view.spent_usd
        if run.finished:
            try:
                status = RunStatus(run.status)
            except ValueError:
                status = RunStatus.FAILED
            return RunOutcome(status=status, run_dir=self.run_dir, cost_usd=cost, message=run.message)
        self.owner_gone = True
        who = f"pid {self.owner_pid}" if self.owner_pid else "its owner"
        return RunOutcome(
            status=RunStatus.INTERRUPTED,
            run_dir=self.run_dir,
            cost_usd=cost,
            message=f"the process that owned the run ({who}) is gone; its completed turns are saved: "
            f"resume with `research-orchestrator resume {self.run_id}`",
        )


async def attach_run(runs_dir: Path, run_ref: str, *, bus: EventBus | None = None) -> AttachedRun:
    """The live run ``run_ref`` names, ready to ``run()`` (a detached owner still starting is waited for)."""
    run_dir = RunDir.open(runs_dir, run_ref)
    run_dir.check_sandbox()  # the journal it follows must be the run's own file
    if not await wait_until_serving(run_dir.path):
        raise not_live(run_dir)
    return AttachedRun(run_dir.path, bus=bus)
