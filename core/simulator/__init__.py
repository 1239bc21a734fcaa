"""An Anthropic Messages API simulator on loopback HTTP + SSE, driven through the official SDK.

Use it in-process::

    async with Simulator(SimulatorSettings(seed=7)) as sim:
        client = AsyncAnthropic(base_url=sim.base_url, api_key="sim", max_retries=0)

or standalone: ``research-orchestrator simulator --port 8765`` (also ``python -m core.simulator``).

Inside ``run --simulate`` it is private (``Simulator(private=True)``): it listens on a Unix socket
in a 0700 directory of its own, and serves only its own process (the peer's pid is checked before
a byte is read), so no other user can reach it and no other process can flood it (a loopback TCP
port was open to every local user: a flood ended one run in a traceback and filled another's
log). Its clients connect to :attr:`Simulator.socket_path`. A temporary directory rather
than the run directory: a socket's path must fit in 108 bytes and must not move with the run.

It answers like the real API for any client: web search with citations and ``pause_turn`` at the
server loop's limit, client tools (``tool_use`` with schema-valid input, ``tool_choice``), structured
output, answers sized to the prompt, token counts by script, and the API's 4xx for invalid requests
(``validation``, ``conversation``), and message threads (beta ``message-threads-2026-08-12``:
create, continue, expiry, ``threads``), and the Message Batches API (``batches``: create, retrieve,
list, results, cancel, delete; each request answered as ``POST /v1/messages`` answers it). Test
directives, read from the text of the last user message and inert otherwise:

- ``[sim:refusal]``: some text, then ``stop_reason: refusal`` with ``stop_details``.
- ``[sim:pause_turn]``: the turn runs ``server_loop_limit`` searches, then pauses (``pause_turn`` with
  a dangling ``server_tool_use``); its continuation (the paused content sent back) is not forced.
- ``[sim:max_tokens]``: the turn is cut short with ``stop_reason: max_tokens`` (it wins over the others).
- ``[sim:fault=KIND]`` / ``[sim:fault=KIND:N]``: the fault KIND (rate_limit, overloaded, server_error,
  stream_error, disconnect, slow) on the first (or first N) attempts of that exact request body, so
  an SDK retry of the same body succeeds afterwards.

Determinism: the answer depends only on the seed and the request body (``stream`` aside), so a
streamed and a non-streamed call of the same request return equal messages (ids included). Faults
depend on the seed, the body and how many times that body was seen (see ``faults``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from core.config.simulator import SimulatorSettings
from core.simulator.stats import SimulatorStats

if TYPE_CHECKING:
    from aiohttp import web

    from core.localserver import LocalServer
    from core.simulator.server import SimulatorState

PRIVATE_MAX_CONNECTIONS = 512
"""Connections the private simulator serves at once: one per agent's call, and then some."""

__all__ = ["Simulator", "SimulatorSettings", "SimulatorStats", "run_standalone"]


class Simulator:
    """A running simulator on ``host:port`` (port 0 picks a free one), or ``private`` to this process
    on a Unix socket; an async context manager."""

    def __init__(
        self,
        settings: SimulatorSettings | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        record_bodies: bool = False,
        clock: Callable[[], float] = time.time,
        private: bool = False,
    ) -> None:
        self.settings = settings or SimulatorSettings()
        self.host = host
        self.port = port
        self.private = private
        self.socket_path: Path | None = None
        self._local: LocalServer | None = None
        # The server (and aiohttp) loads when a simulator is made, not when the package is imported:
        # the command line builds the simulator's options from this package without serving.
        from core.simulator.server import SimulatorState

        self.state: SimulatorState = SimulatorState(self.settings, clock=clock, record_bodies=record_bodies)
        self._runner: web.AppRunner | None = None

    @property
    def stats(self) -> SimulatorStats:
        return self.state.stats

    @property
    def base_url(self) -> str:
        if self._runner is None:
            raise RuntimeError("the simulator is not running")
        if self.private:
            return "http://simulator.localhost"  # the host is a name only: the socket is the address
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        from aiohttp import web

        from core.simulator.server import create_app

        runner = web.AppRunner(create_app(self.state), access_log=None, handle_signals=False)
        await runner.setup()
        self._runner = runner
        if self.private:
            await self._listen_privately(runner)
            return
        site = web.TCPSite(runner, self.host, self.port, backlog=4096, reuse_address=True)
        await site.start()
        addresses = runner.addresses  # the bound socket tells the real port when port 0 was asked for
        if addresses:
            self.port = int(addresses[0][1])

    async def _listen_privately(self, runner: web.AppRunner) -> None:
        from core.localserver import LocalServer, Peer, same_process

        directory = Path(tempfile.mkdtemp(prefix="ro-sim-"))  # 0700: nobody else may even look in
        self.socket_path = directory / "api.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(self.socket_path))
            os.chmod(self.socket_path, 0o600)
            listener.listen(1024)
        except BaseException:
            listener.close()
            shutil.rmtree(directory, ignore_errors=True)
            raise
        server = runner.server
        assert server is not None
        loop = asyncio.get_running_loop()

        connecting: set[asyncio.Task[object]] = set()

        async def connect(conn: socket.socket) -> None:
            try:
                await loop.connect_accepted_socket(server, conn)
            except OSError:  # the client left before it was served
                conn.close()

        def serve(conn: socket.socket, _peer: Peer | None) -> None:
            task: asyncio.Task[object] = loop.create_task(connect(conn), name="simulator-connection")
            connecting.add(task)
            task.add_done_callback(connecting.discard)

        self._local = LocalServer(
            listener,
            serve,
            admit=same_process,
            max_connections=PRIVATE_MAX_CONNECTIONS,
            name="the built-in simulator",
            in_use=lambda: len(server.connections),
        )
        self._local.start()

    async def stop(self) -> None:
        if self._local is not None:
            await self._local.close()
            self._local = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.socket_path is not None:
            shutil.rmtree(self.socket_path.parent, ignore_errors=True)
            self.socket_path = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def run_standalone(settings: SimulatorSettings, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve until interrupted, printing the base URL first (blocking)."""

    async def serve() -> None:
        async with Simulator(settings, host=host, port=port) as sim:
            print(f"Anthropic API simulator listening on {sim.base_url} (seed {settings.seed})", flush=True)
            print(f"  ANTHROPIC_BASE_URL={sim.base_url} ANTHROPIC_API_KEY=sim", flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
