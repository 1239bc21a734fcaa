"""The control channel: a run's owner answers JSON-lines requests on a Unix socket in the run directory.

A Unix socket rather than a port: only the owner's user can reach it (mode 0600 inside the 0700
run directory, and the peer's uid is checked on every connection), nothing is exposed to the
network, and the kernel closes it when the owner dies, so an attached app learns at once. No
neighbour can starve the owner through it (:mod:`core.localserver`): at most
:data:`MAX_CONNECTIONS` are served at once, and a connection that sends no request for
:data:`IDLE_SECONDS` is closed (a watcher, once it has asked to watch, is exempt).

Requests are one JSON object per line, at most :data:`MAX_REQUEST_BYTES`::

    {"op": "pause" | "resume" | "kill", "agent": ID}
    {"op": "kill", "agent": ID, "now": false}   (its call in flight finishes its turn first)
    {"op": "stop"}                              (cleanly: the calls in flight finish their turn)
    {"op": "stop", "now": true}                 (the calls in flight are cancelled)
    {"op": "snapshot"}    -> {"ok": true, "op": "snapshot", "snapshot": {...}}
    {"op": "watch"}       -> the snapshot reply, then {"journal": OFFSET} whenever events.jsonl grows

Every reply has ``ok``; a refused request gets ``{"ok": false, "error": "..."}`` and changes nothing
(a refused agent request also says the agent's ``status``, so a client can say what to do instead).
A request that repeats a key is refused (JSON lets the last one win, so ``{"op": "snapshot", "op":
"stop"}`` would read as one thing and do another).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from core.control import RunControl
from core.errors import ResearchOrchestratorError
from core.localserver import LocalServer, Peer, same_user
from core.persistence.jsontext import parse_json
from core.remote.address import ChannelError, OwnerUnreachable, answers, socket_address

__all__ = ["ChannelError", "ControlChannel", "OwnerUnreachable", "answers", "call", "connect"]

logger = logging.getLogger(__name__)

SOCKET_MODE = 0o600
MAX_REQUEST_BYTES = 4096
MAX_CONNECTIONS = 32
"""Connections served at once: a few attached apps and ``control`` commands, not hundreds."""
IDLE_SECONDS = 10.0
"""A connection that sends no complete request for this long is closed."""
_BACKLOG = 64
#: Replies carry a snapshot (every agent's figures and the tail of its stream): allow a few MiB.
MAX_REPLY_BYTES = 16 * 1024 * 1024
AGENT_OPS = frozenset({"pause", "resume", "kill"})
RUN_OPS = frozenset({"stop", "snapshot", "watch"})
NOW_OPS = frozenset({"stop", "kill"})  # take "now": cancel the calls in flight, or let them finish
Snapshot = Callable[[], dict[str, Any]]


class BadRequest(ResearchOrchestratorError, ValueError):
    """A request the owner refuses without acting on it; the message says why."""


@dataclass(frozen=True, slots=True)
class Request:
    op: str
    agent: str | None = None
    now: bool | None = None  # stop and kill: cancel the calls in flight (default: stop no, kill yes)


def parse_request(line: bytes, agents: Collection[str]) -> Request:
    """Validate one request line: JSON object, known op, only the keys that op takes, a real agent."""
    try:
        data = parse_json(line, unique_keys=True)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"not a JSON object: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest('a request is a JSON object such as {"op": "snapshot"}')
    op = data.get("op")
    if not isinstance(op, str) or op not in AGENT_OPS | RUN_OPS:
        raise BadRequest(f"unknown op {op!r}; expected one of {', '.join(sorted(AGENT_OPS | RUN_OPS))}")
    allowed = {"op", "agent"} if op in AGENT_OPS else {"op"}
    if op in NOW_OPS:
        allowed.add("now")
    extra = sorted(set(data) - allowed)
    if extra:
        raise BadRequest(f"{op}: unexpected keys {', '.join(map(repr, extra))}")
    now = data.get("now")
    if now is not None and not isinstance(now, bool):
        raise BadRequest(f'{op}: "now" must be true or false')
    if op not in AGENT_OPS:
        return Request(op, now=now)
    agent = data.get("agent")
    if not isinstance(agent, str) or not agent:
        raise BadRequest(f'{op}: "agent" must name an agent')
    if agent not in agents:
        raise BadRequest(f"{op}: no agent {agent!r} in this run; its agents: {_listed(agents)}")
    return Request(op, agent, now=now)


def _listed(agents: Collection[str], most: int = 20) -> str:
    names = sorted(agents)
    return ", ".join(names[:most]) + (f", … ({len(names) - most} more)" if len(names) > most else "")


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


class _Watcher:
    """One attached front end: only the newest journal offset matters, so a slow one never queues."""

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.sent = offset
        self.changed = asyncio.Event()

    def advance(self, offset: int) -> None:
        if offset > self.offset:
            self.offset = offset
            self.changed.set()


class ControlChannel:
    """Serves one run's control socket on the owner's event loop for the life of :meth:`serving`."""

    def __init__(self, path: Path, control: RunControl, agents: Collection[str], snapshot: Snapshot) -> None:
        self.path = Path(path)
        self.control = control
        self.agents = agents  # checked per request (a live view of the owner's agents is fine)
        self.snapshot = snapshot
        self.allowed_uid: int | None = os.getuid()
        self._watchers: dict[_Watcher, asyncio.Task[Any] | None] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()
        self._inode: int | None = None
        self.server: LocalServer | None = None

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    def journal_advanced(self, offset: int) -> None:
        """The journal now holds ``offset`` bytes: tell every watcher (cheap; called inline)."""
        for watcher in self._watchers:
            watcher.advance(offset)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[ControlChannel]:
        """Listen until the block ends, then close every connection and remove the socket.

        Connections are tasks of a task group owned here. An exception from the block is re-raised
        as it is (not wrapped in an ExceptionGroup) once the channel is shut.
        """
        failure: BaseException | None = None
        async with asyncio.TaskGroup() as connections:
            server = await self._listen(connections)
            try:
                yield self
            except BaseException as exc:  # re-raised unchanged below, after the shutdown
                failure = exc
            finally:
                await self._shut(server)
        if failure is not None:
            raise failure

    async def _listen(self, connections: asyncio.TaskGroup) -> LocalServer:
        # Only the lock holder gets here, so a socket file left by a dead owner is ours to replace.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with socket_address(self.path) as address:
                listener.bind(address)
            # The run directory is 0700, so nobody else could reach the socket before this chmod.
            os.chmod(self.path, SOCKET_MODE)
            listener.listen(_BACKLOG)
        except BaseException:
            listener.close()
            raise
        self._inode = os.stat(self.path).st_ino

        def serve(conn: socket.socket, _peer: Peer | None) -> None:
            task = connections.create_task(self._serve(conn), name="control-channel")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        server = LocalServer(
            listener,
            serve,
            admit=self._admit,
            max_connections=MAX_CONNECTIONS,
            name=f"control socket {self.path.parent.name}",
            refuse=_refuse,
        )
        server.start()
        self.server = server
        return server

    def _admit(self, peer: Peer | None) -> str | None:
        if self.allowed_uid is not None and peer is not None and peer.uid != self.allowed_uid:
            return f"unauthorised: uid {peer.uid} does not own this run"
        return same_user(peer) if self.allowed_uid is None else None

    async def _shut(self, server: LocalServer) -> None:
        self._closing.set()
        await server.close()
        for watcher in self._watchers:
            watcher.changed.set()  # each watcher sends its last offset and says goodbye
        watching = {task for task in self._watchers.values() if task is not None}
        if watching:
            await asyncio.wait(watching, timeout=0.5)
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(FileNotFoundError):
            # The run lock may be free by now: a socket there that is not ours is the next owner's.
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)

    async def _serve(self, conn: socket.socket) -> None:
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await asyncio.open_unix_connection(sock=conn, limit=MAX_REQUEST_BYTES)
            await self._converse(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the front end went away: nothing to answer
        except Exception:  # a bug here must not take the run down with it
            logger.exception("control channel: a connection failed")
        finally:
            if self.server is not None:
                self.server.done()
            if writer is None:
                conn.close()
            else:
                writer.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.wait_closed()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not self._closing.is_set():
            try:
                async with asyncio.timeout(IDLE_SECONDS):
                    line = await reader.readline()
            except TimeoutError:
                await self._send(writer, {"ok": False, "error": f"no request for {IDLE_SECONDS:g} s: closed"})
                return
            except ValueError:  # longer than the limit: the stream cannot be resynchronised
                await self._send(
                    writer, {"ok": False, "error": f"request longer than {MAX_REQUEST_BYTES} bytes"}
                )
                return
            if not line:
                return
            try:
                request = parse_request(line, self.agents)
            except BadRequest as exc:
                logger.info("control channel: bad request: %s", exc)
                await self._send(writer, {"ok": False, "error": str(exc)})
                continue
            if request.op == "watch":
                await self._watch(writer)
                return
            await self._send(writer, self.execute(request))

    def execute(self, request: Request) -> dict[str, Any]:
        """Act on a valid request; a refusal says why and acts on nothing."""
        if request.op == "snapshot":
            return {"ok": True, "op": "snapshot", "snapshot": self.snapshot()}
        if request.op == "stop":
            self.control.stop(now=bool(request.now))
            return {"ok": True, "op": "stop"}
        agent = request.agent
        assert agent is not None
        act: dict[str, Callable[[str], bool]] = {
            "pause": self.control.pause,
            "resume": self.control.resume,
            "kill": partial(self.control.kill, now=request.now is not False),
        }
        before = self.control.agent_status(agent)
        if not act[request.op](agent):
            error = f"cannot {request.op} {agent}: it is {before.value}"
            return {"ok": False, "error": error, "agent": agent, "status": before.value}
        return {"ok": True, "op": request.op, "agent": agent}

    async def _watch(self, writer: asyncio.StreamWriter) -> None:
        snapshot = self.snapshot()
        watcher = _Watcher(int(snapshot.get("offset", 0)))
        self._watchers[watcher] = asyncio.current_task()
        try:
            await self._send(writer, {"ok": True, "op": "watch", "snapshot": snapshot})
            while True:
                await watcher.changed.wait()
                watcher.changed.clear()
                if watcher.offset > watcher.sent:
                    watcher.sent = watcher.offset
                    await self._send(writer, {"journal": watcher.offset})
                if self._closing.is_set():
                    await self._send(writer, {"closed": True})
                    return
        finally:
            self._watchers.pop(watcher, None)

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
        writer.write(encode(message))
        await writer.drain()


def _refuse(conn: socket.socket, reason: str) -> None:
    """A refused connection's one reply, if the socket takes it now (it is closed either way)."""
    with contextlib.suppress(OSError):
        conn.send(encode({"ok": False, "error": reason}))


# --- the front end's side -----------------------------------------------------------------------


async def connect(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open the run's socket, or raise :class:`OwnerUnreachable` saying why not."""
    try:
        with socket_address(path) as address:
            return await asyncio.open_unix_connection(address, limit=MAX_REPLY_BYTES)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise OwnerUnreachable(f"no process serves {path} (the run's owner has exited)") from exc
    except PermissionError as exc:
        raise OwnerUnreachable(f"permission denied opening {path}: the run belongs to another user") from exc
    except OSError as exc:
        raise OwnerUnreachable(f"cannot open {path}: {exc.strerror or exc}") from exc


async def read_message(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message from the owner, or None at the end of the stream."""
    try:
        line = await reader.readline()
    except ValueError as exc:
        raise ChannelError(f"the owner sent a line longer than {MAX_REPLY_BYTES} bytes") from exc
    if not line:
        return None
    try:
        message = parse_json(line)
    except ValueError as exc:
        raise ChannelError(f"the owner sent something that is not JSON: {line[:80]!r}") from exc
    if not isinstance(message, dict):
        raise ChannelError(f"the owner sent a JSON {type(message).__name__}, not an object")
    return message


async def call(path: Path, request: dict[str, Any], *, answer_within: float = 5.0) -> dict[str, Any]:
    """Send one request and return the owner's reply (``ok`` says whether it acted)."""
    reader, writer = await connect(path)
    try:
        writer.write(encode(request))
        async with asyncio.timeout(answer_within):
            await writer.drain()
            reply = await read_message(reader)
    except (ConnectionError, TimeoutError) as exc:
        raise OwnerUnreachable(f"the run's owner did not answer on {path}") from exc
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
    if reply is None:
        raise OwnerUnreachable(f"the run's owner closed {path} without answering")
    return reply
