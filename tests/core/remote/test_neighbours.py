"""No neighbour can starve a run (issue 24): another process of the same user holds 300 idle
connections to the run's control socket and floods its built-in simulator, while the owner runs
with ``ulimit -n 256``. The run completes, every paid turn is checkpointed, and ``run.log`` stays
small. Before, the owner's descriptors ran out (a paid turn was never checkpointed, the run ended
``failed``) and ``run.log`` filled with accept errors.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from core.persistence.checkpoints import CheckpointStore
from tests.core import programs
from tests.waits import wait_until

DESCRIPTORS = 256
IDLE_CONNECTIONS = 300
FLOODER = r'''
import os, socket, sys, time
run_dir, owner = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 120  # bounded: it stops by itself
held = []

def connect(path):
    s = socket.socket(socket.AF_UNIX)
    s.setblocking(False)
    try:
        s.connect(path)
    except BlockingIOError:
        pass
    except OSError:
        s.close()
        return None
    return s

def simulator_socket():
    """The owner's own simulator socket: its descriptors' inodes, looked up in /proc/net/unix."""
    inodes = set()
    for fd in os.listdir(f"/proc/{owner}/fd"):
        try:
            target = os.readlink(f"/proc/{owner}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    with open("/proc/net/unix") as table:
        for line in table:
            fields = line.split()
            if len(fields) >= 8 and fields[6] in inodes and "/ro-sim-" in fields[7]:
                return fields[7]
    return None

os.chdir(run_dir)  # a relative path: a socket's path must fit in 108 bytes
control = "control.sock"
while not os.path.exists(control) and time.monotonic() < deadline:
    time.sleep(0.05)
for _ in range(IDLE):
    s = connect(control)
    if s is not None:
        held.append(s)
print(f"holding {len(held)} connections to control.sock", flush=True)
simulator = None
while simulator is None and time.monotonic() < deadline:
    simulator = simulator_socket()
    time.sleep(0.05)
print(f"flooding {simulator}", flush=True)
sent = 0
while time.monotonic() < deadline and os.path.exists(f"/proc/{owner}") and sent < 30_000:
    s = connect(simulator)
    if s is None:
        continue
    try:
        s.send(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n[[[[[")
    except OSError:
        pass
    sent += 1
    if len(held) < IDLE + 100:
        held.append(s)  # some stay open too
    else:
        s.close()
print(f"sent {sent} requests to the simulator", flush=True)
'''.replace("IDLE", str(IDLE_CONNECTIONS))


def limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTORS, DESCRIPTORS))


def test_idle_connections_and_a_simulator_flood_from_a_neighbour_starve_nothing(tmp_path: Path) -> None:
    data = programs.program(
        [programs.agent(a) for a in ("north", "south", "east")],
        [programs.agent("synthesis")],
        max_turns=3,
        simulator={"latency_ms": 40, "tokens_per_second": 2000},
    )
    config = programs.write(tmp_path, data)
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "core.cli", "run", str(config), "--headless", "--simulate"]
    owner = subprocess.Popen(
        [*command, "--runs-dir", str(runs)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=limit_descriptors,
    )  # fmt: skip
    flooder: subprocess.Popen[str] | None = None
    try:
        run_dir = wait_until(
            lambda: (
                next((p for p in runs.iterdir() if not p.name.startswith(".")), None)
                if runs.exists()
                else None
            ),
            "the run directory",
        )
        flooder = subprocess.Popen(
            [sys.executable, "-c", FLOODER, str(run_dir), str(owner.pid)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        started = time.monotonic()
        _, err = owner.communicate(timeout=240)
    finally:
        if owner.poll() is None:
            owner.kill()
        if flooder is not None:
            flooder.kill()
            flooded = flooder.communicate(timeout=30)[0]
    print(flooded, f"run took {time.monotonic() - started:.1f} s", sep="\n")
    assert owner.returncode == 0, err.decode(errors="replace")[-3000:]
    assert f"holding {IDLE_CONNECTIONS} connections" in flooded and "flooding /" in flooded

    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    turns = {(e["agent_id"], e["turn"]) for e in events if e["kind"] == "turn_completed"}
    saved = {(e["agent_id"], e["turn"]) for e in events if e["kind"] == "checkpoint_saved"}
    assert turns and turns <= saved  # every paid turn was checkpointed
    infos = CheckpointStore(run_dir).list()
    assert infos and all(info.status == "ok" for info in infos)
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    size = (run_dir / "run.log").stat().st_size
    print(f"run.log: {size} bytes")
    assert size < 1_000_000
