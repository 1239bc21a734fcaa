"""The simulator inside ``run --simulate`` is private to its process (issue 24).

It listened on a 127.0.0.1 TCP port with no check: any local user could reach it, and a flood
from another process ended one run in a traceback and wrote a 29 MB log in 20 s. Now it is a Unix
socket in a 0700 directory of its own, and only its own process is served.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys

import pytest
from anthropic import AsyncAnthropic

from core.api.sdk import http_client
from core.simulator import Simulator, SimulatorSettings
from tests.core.remote.test_channel import interpreter_for_anyone
from tests.core.simulator.conftest import request

CONNECT_AND_ASK = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
    s.sendall(b"GET /_simulator/stats HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
    s.settimeout(10)
    print(repr(s.recv(4096)))
except OSError as e:
    print(type(e).__name__, e)
"""


async def test_it_listens_on_a_private_unix_socket_and_serves_the_sdk() -> None:
    async with Simulator(SimulatorSettings(pause_turn_probability=0.0), private=True) as sim:
        assert sim.socket_path is not None and sim.port == 0  # no TCP port at all
        assert stat.S_IMODE(os.stat(sim.socket_path.parent).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(sim.socket_path).st_mode) == 0o600
        client = AsyncAnthropic(
            base_url=sim.base_url,
            api_key="k",
            max_retries=0,
            http_client=http_client(socket_path=sim.socket_path),
        )
        async with client:
            message = await client.messages.create(**request())
        assert message.stop_reason in ("end_turn", "pause_turn")
        directory = sim.socket_path.parent
    assert not directory.exists()  # nothing left behind


async def test_another_process_of_the_same_user_is_closed_on_before_anything_is_served() -> None:
    async with Simulator(SimulatorSettings(), private=True) as sim:
        assert sim.socket_path is not None
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", CONNECT_AND_ASK, str(sim.socket_path)],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        closed = ("b''", "ConnectionResetError", "BrokenPipeError")  # closed at once: read or write fails
        assert result.stdout.strip().startswith(closed), result.stdout
        assert sim.stats.snapshot()["requests"] == 0


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run a client as another user")
@pytest.mark.skipif(interpreter_for_anyone() is None, reason="no Python another user may run")
async def test_a_user_other_than_the_owner_cannot_reach_it() -> None:
    async with Simulator(SimulatorSettings(), private=True) as sim:
        assert sim.socket_path is not None
        nobody = 65534
        result = await asyncio.to_thread(
            subprocess.run,
            [interpreter_for_anyone() or sys.executable, "-I", "-c", CONNECT_AND_ASK, str(sim.socket_path)],
            user=nobody, group=nobody, capture_output=True, text=True, timeout=30, cwd="/",
        )  # fmt: skip
        assert result.stdout.startswith("PermissionError"), (result.stdout, result.stderr)
        assert sim.stats.snapshot()["requests"] == 0
