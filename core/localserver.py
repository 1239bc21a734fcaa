"""A Unix-socket server only its owner can use and no neighbour can starve.

asyncio's own servers accept a burst of connections per wake-up (each taking a descriptor before
any check runs) and log every failed accept (descriptors exhausted) with a traceback, once a
second for as long as it lasts. A process of the same user holding hundreds of idle connections
could so exhaust the owner's descriptors (a paid turn then cannot be checkpointed) and fill its
log. Here connections are accepted one at a time; the peer is checked (``SO_PEERCRED``) before a
byte is read; beyond ``max_connections`` a connection is refused at once; a failed accept backs
off and is logged at most once a minute, with a count. What the served connection does (idle
limits, request sizes) is its handler's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

LOG_EVERY_S = 60.0
"""A repeated complaint (refused peers, failed accepts) is logged at most this often, with a count."""
_BACKOFF_S = (0.05, 1.0)  # after a failed accept: first wait, longest wait
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


@dataclass(frozen=True, slots=True)
class Peer:
    """The process at the other end of a Unix socket, as the kernel saw it connect."""

    pid: int
    uid: int
    gid: int


def peer_of(sock: socket.socket) -> Peer | None:
    """The connecting process (Linux ``SO_PEERCRED``), or None where the kernel cannot tell."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    except OSError:
        return None
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(pid, uid, gid)


Admit = Callable[[Peer | None], str | None]
"""Says why a peer is refused, or None to let it in."""


def same_user(peer: Peer | None) -> str | None:
    """Only processes of this user (where the kernel cannot tell, the socket's mode decides)."""
    if peer is not None and peer.uid != os.getuid():
        return f"uid {peer.uid} does not own this run"
    return None


def same_process(peer: Peer | None) -> str | None:
    """Only this very process: a server it runs for itself (the embedded simulator)."""
    if peer is None or peer.pid != os.getpid():
        return f"pid {peer.pid if peer else '?'} is not this process"
    return None


class Throttled:
    """A warning that may repeat without bound, logged at most once per ``every`` seconds with a count."""

    def __init__(self, log: logging.Logger, every: float = LOG_EVERY_S) -> None:
        self._log = log
        self._every = every
        self._last = -float("inf")
        self._held = 0

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last < self._every:
            self._held += 1
            return
        held, self._held, self._last = self._held, 0, now
        more = f" (and {held} more like it in the last {self._every:g} s)" if held else ""
        self._log.warning(message + more, *args)


Handle = Callable[[socket.socket, Peer | None], None]
Refuse = Callable[[socket.socket, str], None]


class LocalServer:
    """Accepts on a bound, listening Unix socket until :meth:`close`; hands admitted connections on.

    ``handle(conn, peer)`` takes ownership of ``conn`` (non-blocking) and must call :meth:`done`
    when the connection ends, so that it no longer counts against ``max_connections`` (or give
    ``in_use``, which counts the connections being served). ``refuse(conn, reason)`` may say a
    last word (non-blocking) before the connection is closed.
    """

    def __init__(
        self,
        listener: socket.socket,
        handle: Handle,
        *,
        admit: Admit,
        max_connections: int,
        name: str,
        refuse: Refuse | None = None,
        in_use: Callable[[], int] | None = None,
    ) -> None:
        listener.setblocking(False)
        self.listener = listener
        self.max_connections = max_connections
        self.name = name
        self.active = 0
        self.refused = 0
        self._handle = handle
        self._admit = admit
        self._refuse = refuse
        self._in_use = in_use
        self._task: asyncio.Task[None] | None = None
        self._refusals = Throttled(logger)
        self._failures = Throttled(logger)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._accept_loop(), name=f"accept:{self.name}")

    def done(self) -> None:
        """One admitted connection has ended."""
        self.active -= 1

    async def close(self) -> None:
        """Stop accepting and close the listening socket (served connections are the handler's)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.listener.close()

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = _BACKOFF_S[0]
        while True:
            try:
                conn, _ = await loop.sock_accept(self.listener)
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRORS and not isinstance(exc, ConnectionAbortedError):
                    raise
                self._failures.warning("%s: cannot accept a connection: %s; waiting", self.name, exc.strerror)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_S[1])
                continue
            backoff = _BACKOFF_S[0]
            self._take(conn)

    def _take(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        peer = peer_of(conn)
        reason = self._admit(peer)
        served = self.active if self._in_use is None else self._in_use()
        if reason is None and served >= self.max_connections:
            reason = f"{self.max_connections} connections are open already; try again later"
        if reason is not None:
            self.refused += 1
            self._refusals.warning("%s: refused a connection: %s", self.name, reason)
            try:
                if self._refuse is not None:
                    self._refuse(conn, reason)
            finally:
                conn.close()
            return
        self.active += 1
        try:
            self._handle(conn, peer)
        except BaseException:
            self.active -= 1
            conn.close()
            raise
