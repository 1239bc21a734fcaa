"""The control channel: only the owner's user may steer a run, and a bad request changes nothing."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.control import AgentStatus, RunOutcome
from core.events import EventBus
from core.remote import channel as channel_module
from core.remote.address import socket_address
from core.remote.channel import (
    MAX_CONNECTIONS,
    MAX_REQUEST_BYTES,
    BadRequest,
    ControlChannel,
    OwnerUnreachable,
    call,
    connect,
    encode,
    parse_request,
    read_message,
)
from tests.waits import eventually

AGENTS = ("alpha", "beta")


class FakeControl:
    """A run's control surface that records what it was asked to do."""

    def __init__(self, run_dir: Path) -> None:
        self.run_id = run_dir.name
        self.run_dir = run_dir
        self.bus = EventBus.__new__(EventBus)
        self.statuses = {"alpha": AgentStatus.RUNNING, "beta": AgentStatus.COMPLETED}
        self.calls: list[tuple[str, str | None]] = []

    async def run(self) -> RunOutcome:
        raise NotImplementedError

    def agent_status(self, agent_id: str) -> AgentStatus:
        return self.statuses[agent_id]

    def pause(self, agent_id: str) -> bool:
        if self.statuses[agent_id] is not AgentStatus.RUNNING:
            return False
        self.calls.append(("pause", agent_id))
        self.statuses[agent_id] = AgentStatus.PAUSED
        return True

    def resume(self, agent_id: str) -> bool:
        if self.statuses[agent_id] is not AgentStatus.PAUSED:
            return False
        self.calls.append(("resume", agent_id))
        self.statuses[agent_id] = AgentStatus.RUNNING
        return True

    def kill(self, agent_id: str, *, now: bool = True) -> bool:
        if self.statuses[agent_id].is_final:
            return False
        self.calls.append(("kill" if now else "kill after its call", agent_id))
        self.statuses[agent_id] = AgentStatus.KILLED
        return True

    def stop(self, *, now: bool = False) -> None:
        self.calls.append(("stop now" if now else "stop", None))

    def in_flight_usd(self, agent_id: str | None = None) -> float | None:
        return None


def run_dir_of(tmp_path: Path, name: str = "20261130-010203-test-program-abcd") -> Path:
    path = tmp_path / "runs" / name
    path.mkdir(parents=True, mode=0o700)
    return path


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[ControlChannel, FakeControl]]:
    run_dir = run_dir_of(tmp_path)
    control = FakeControl(run_dir)
    channel = ControlChannel(
        run_dir / "control.sock", control, AGENTS, lambda: {"offset": 10, "agents": dict(control.statuses)}
    )
    async with channel.serving():
        yield channel, control


async def exchange(path: Path, *lines: bytes) -> list[dict[str, Any]]:
    """Send raw lines on one connection and collect one reply per line (until the owner hangs up)."""
    reader, writer = await connect(path)
    replies = []
    try:
        for line in lines:
            try:
                writer.write(line)
                await writer.drain()
            except ConnectionError:  # the owner hung up after its last reply
                break
            reply = await read_message(reader)
            if reply is None:
                break
            replies.append(reply)
    finally:
        writer.close()
    return replies


MALFORMED = [
    b"not json\n",
    b"\xff\xfe\n",
    b"[1, 2]\n",
    b'"pause"\n',
    b"{}\n",
    b'{"op": "explode"}\n',
    b'{"op": 3}\n',
    b'{"op": "pause"}\n',
    b'{"op": "pause", "agent": ""}\n',
    b'{"op": "pause", "agent": 7}\n',
    b'{"op": "pause", "agent": "nobody"}\n',
    b'{"op": "kill", "agent": "alpha", "force": true}\n',
    b'{"op": "stop", "agent": "alpha"}\n',
    b'{"op": "resume", "agent": "alpha"}\n',  # valid shape, but alpha is running: refused
    b'{"op": "kill", "agent": "beta"}\n',  # beta is completed: refused
]


async def test_malformed_or_refused_requests_get_an_error_and_change_nothing(
    served: tuple[ControlChannel, FakeControl],
) -> None:
    channel, control = served
    before = dict(control.statuses)
    replies = await exchange(channel.path, *MALFORMED)
    assert len(replies) == len(MALFORMED)
    for line, reply in zip(MALFORMED, replies, strict=True):
        assert reply["ok"] is False and reply["error"], line
    assert control.calls == [] and control.statuses == before
    # the same connection still serves a good request afterwards
    [reply] = await exchange(channel.path, b'{"op": "pause", "agent": "alpha"}\n')
    assert reply == {"ok": True, "op": "pause", "agent": "alpha"}
    assert control.calls == [("pause", "alpha")]


async def test_an_oversized_request_is_refused_and_the_connection_closed(
    served: tuple[ControlChannel, FakeControl],
) -> None:
    channel, control = served
    huge = b'{"op": "pause", "agent": "' + b"a" * MAX_REQUEST_BYTES + b'"}\n'
    replies = await exchange(channel.path, huge, b'{"op": "snapshot"}\n')
    assert len(replies) == 1 and replies[0]["ok"] is False and "longer than" in replies[0]["error"]
    assert control.calls == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=200),
        st.dictionaries(
            st.sampled_from(["op", "agent", "x"]),
            st.one_of(st.none(), st.integers(), st.text(max_size=8), st.sampled_from(["pause", "alpha"])),
        ).map(lambda d: json.dumps(d).encode()),
    )
)
def test_parse_request_accepts_only_well_formed_requests_for_real_agents(line: bytes) -> None:
    try:
        request = parse_request(line, AGENTS)
    except BadRequest as exc:
        assert str(exc)
        return
    data = json.loads(line)
    assert data["op"] == request.op
    assert set(data) <= {"op", "agent"}
    assert request.agent is None or request.agent in AGENTS


async def test_the_socket_is_private_and_removed_when_the_run_ends(tmp_path: Path) -> None:
    run_dir = run_dir_of(tmp_path)
    path = run_dir / "control.sock"
    path.write_text("left behind by a dead owner")
    channel = ControlChannel(path, FakeControl(run_dir), AGENTS, lambda: {})
    async with channel.serving():
        mode = path.stat().st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert not path.exists()
    with pytest.raises(OwnerUnreachable, match="exited"):
        await call(path, {"op": "snapshot"})


async def test_a_run_directory_too_long_for_sun_path_still_gets_a_socket(tmp_path: Path) -> None:
    run_dir = run_dir_of(tmp_path, "2026-" + "x" * 110)
    control = FakeControl(run_dir)
    channel = ControlChannel(run_dir / "control.sock", control, AGENTS, lambda: {"offset": 0})
    async with channel.serving():
        assert await call(channel.path, {"op": "kill", "agent": "alpha"}) == {
            "ok": True,
            "op": "kill",
            "agent": "alpha",
        }
    assert control.calls == [("kill", "alpha")]


async def test_an_exception_in_the_run_propagates_unwrapped_and_closes_the_channel(tmp_path: Path) -> None:
    run_dir = run_dir_of(tmp_path)
    channel = ControlChannel(run_dir / "control.sock", FakeControl(run_dir), AGENTS, lambda: {})
    with pytest.raises(KeyError):
        async with channel.serving():
            raise KeyError("boom")
    assert not channel.path.exists()


async def test_a_peer_of_another_uid_is_refused(served: tuple[ControlChannel, FakeControl]) -> None:
    channel, control = served
    channel.allowed_uid = os.getuid() + 1  # as if the socket had been reached by someone else
    reply = await call(channel.path, {"op": "kill", "agent": "alpha"})
    assert reply["ok"] is False and "unauthorised" in reply["error"]
    assert control.calls == [] and control.statuses["alpha"] is AgentStatus.RUNNING


def interpreter_for_anyone() -> str | None:
    """A Python that another user may execute (a venv under a private home directory is not one)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"):
        if os.path.exists(candidate) and os.stat(candidate).st_mode & stat.S_IXOTH:
            return candidate
    return None


@pytest.fixture
def world_traversable_runs() -> Iterator[Path]:
    """A runs directory another user may walk to (pytest's tmp_path is private all the way down)."""
    base = Path(tempfile.mkdtemp(prefix="ro-perm-", dir="/tmp"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run a client as another user")
@pytest.mark.skipif(interpreter_for_anyone() is None, reason="no Python another user may run")
@pytest.mark.parametrize(
    "run_dir_mode", [0o700, 0o711], ids=["private-run-dir", "traversable-run-dir-private-socket"]
)
async def test_a_process_of_another_user_cannot_open_the_socket(
    world_traversable_runs: Path, run_dir_mode: int
) -> None:
    run_dir = world_traversable_runs / "run"
    run_dir.mkdir()
    run_dir.chmod(run_dir_mode)  # 0711: only the socket's own 0600 mode stands in the way
    control = FakeControl(run_dir)
    channel = ControlChannel(run_dir / "control.sock", control, AGENTS, lambda: {})
    script = (
        "import socket\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        f"    s.connect({str(channel.path)!r})\n"
        '    s.sendall(b\'{"op": "kill", "agent": "alpha"}\\n\')\n'
        "    print(s.recv(4096).decode())\n"
        "except OSError as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    nobody = 65534
    async with channel.serving():
        result = await asyncio.to_thread(
            subprocess.run,
            [interpreter_for_anyone() or sys.executable, "-I", "-c", script],
            user=nobody,
            group=nobody,
            capture_output=True,
            text=True,
            timeout=30,
            cwd="/",
        )
    assert result.stdout.startswith("PermissionError"), (result.stdout, result.stderr)
    assert control.calls == [] and control.statuses["alpha"] is AgentStatus.RUNNING


async def test_a_watcher_gets_the_snapshot_then_each_new_journal_offset_then_goodbye(
    tmp_path: Path,
) -> None:
    run_dir = run_dir_of(tmp_path)
    channel = ControlChannel(run_dir / "control.sock", FakeControl(run_dir), AGENTS, lambda: {"offset": 5})
    async with channel.serving():
        reader, writer = await connect(channel.path)
        writer.write(encode({"op": "watch"}))
        first = await read_message(reader)
        assert first == {"ok": True, "op": "watch", "snapshot": {"offset": 5}}
        channel.journal_advanced(3)  # older than the snapshot: nothing to say
        channel.journal_advanced(40)
        channel.journal_advanced(90)  # latest wins: a slow watcher may skip 40
        message = await read_message(reader)
        assert message is not None and message["journal"] in (40, 90)
        if message["journal"] == 40:
            assert await read_message(reader) == {"journal": 90}
    assert await read_message(reader) == {"closed": True}
    assert await read_message(reader) is None
    writer.close()


async def test_a_watcher_that_never_reads_stalls_neither_the_owner_nor_other_clients(tmp_path: Path) -> None:
    run_dir = run_dir_of(tmp_path)
    control = FakeControl(run_dir)
    big = {"offset": 0, "events": ["x" * 1024] * 4096}  # 4 MiB: more than the socket buffers hold
    channel = ControlChannel(run_dir / "control.sock", control, AGENTS, lambda: big)
    async with channel.serving():
        _stuck_reader, stuck = await connect(channel.path)
        stuck.write(encode({"op": "watch"}))  # and never reads a byte
        await stuck.drain()
        # the owner reads the request on its own schedule
        await eventually(lambda: channel.watchers, "the owner to take the watch request")
        assert channel.watchers == 1
        for offset in range(1, 10_001):
            channel.journal_advanced(offset)  # inline and cheap: nothing queues per watcher
        async with asyncio.timeout(5):  # another client is answered at once
            reply = await call(channel.path, {"op": "pause", "agent": "alpha"})
        assert reply["ok"] and control.calls == [("pause", "alpha")]
        stuck.close()


async def test_a_request_that_repeats_a_key_is_refused_and_does_nothing(
    served: tuple[ControlChannel, FakeControl],
) -> None:
    channel, control = served
    replies = await exchange(
        channel.path,
        b'{"op": "snapshot", "op": "stop"}\n',  # read as a snapshot, acted on as a stop: neither
        b'{"op": "pause", "agent": "beta", "agent": "alpha"}\n',
    )
    assert [r["ok"] for r in replies] == [False, False]
    assert all("appears twice" in r["error"] for r in replies)
    assert control.calls == []


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_connections_beyond_the_cap_are_refused_at_once_and_hold_no_descriptor(
    served: tuple[ControlChannel, FakeControl],
) -> None:
    channel, control = served
    before = open_descriptors()
    idle: list[socket.socket] = []

    def connect_many(count: int) -> None:  # blocking connects (the backlog fills): not on the loop
        with socket_address(channel.path) as address:
            for _ in range(count):
                sock = socket.socket(socket.AF_UNIX)
                idle.append(sock)
                sock.connect(address)

    try:
        await asyncio.to_thread(connect_many, MAX_CONNECTIONS + 40)
        assert channel.server is not None
        server = channel.server
        await eventually(lambda: server.refused >= 40, "the connections beyond the cap to be refused")
        assert server.active == MAX_CONNECTIONS
        # the owner holds one descriptor per connection it serves, none for those it refused
        # (the test's own ends count too: one per socket it opened)
        assert open_descriptors() - before <= len(idle) + MAX_CONNECTIONS + 2
        refused = idle[-1]
        refused.settimeout(5)
        reply = json.loads(refused.recv(4096).decode())
        assert reply["ok"] is False and "connections are open already" in reply["error"]
        assert refused.recv(4096) == b""  # and closed
    finally:
        for sock in idle:
            sock.close()
    await eventually(lambda: server.active == 0, "the closed connections to be let go")
    assert (await call(channel.path, {"op": "pause", "agent": "alpha"}))["ok"]
    assert control.calls == [("pause", "alpha")]


async def test_an_idle_connection_is_closed_but_a_watcher_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(channel_module, "IDLE_SECONDS", 0.3)
    run_dir = run_dir_of(tmp_path)
    channel = ControlChannel(run_dir / "control.sock", FakeControl(run_dir), AGENTS, lambda: {"offset": 1})
    async with channel.serving():
        idle_reader, idle_writer = await connect(channel.path)
        watch_reader, watch_writer = await connect(channel.path)
        watch_writer.write(encode({"op": "watch"}))
        assert (await read_message(watch_reader) or {}).get("ok")
        async with asyncio.timeout(10):
            goodbye = await read_message(idle_reader)
            assert goodbye is not None and "no request for 0.3 s" in goodbye["error"]
            assert await read_message(idle_reader) is None
        assert channel.server is not None
        await eventually(lambda: channel.server is not None and channel.server.active == 1, "one left")
        channel.journal_advanced(50)  # the watcher, idle for as long, still gets its news
        assert await read_message(watch_reader) == {"journal": 50}
        idle_writer.close()
    watch_writer.close()


async def test_now_is_a_flag_of_stop_and_kill_and_a_refusal_says_the_agent_status(
    served: tuple[ControlChannel, FakeControl],
) -> None:
    channel, control = served
    replies = await exchange(
        channel.path,
        b'{"op": "stop", "now": "yes"}\n',
        b'{"op": "pause", "agent": "alpha", "now": true}\n',
        b'{"op": "pause", "agent": "nobody"}\n',
        b'{"op": "kill", "agent": "beta"}\n',
    )
    assert [reply["ok"] for reply in replies] == [False] * 4 and control.calls == []
    assert "no agent 'nobody' in this run; its agents: alpha, beta" in replies[2]["error"]
    assert replies[3] == {
        "ok": False,
        "error": "cannot kill beta: it is completed",
        "agent": "beta",
        "status": "completed",
    }
    assert await call(channel.path, {"op": "stop", "now": True}) == {"ok": True, "op": "stop"}
    assert len(control.calls) == 1 and control.calls[0][0].startswith("stop")
