"""A command whose output cannot be written: no traceback, the documented code, nothing saved lost.

Each case drives the real command line in a subprocess with its standard output (or error) closed,
on a full device, or read by a reader that goes away after one line (``| head -1``).
"""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.streams import GuardedStream, on_lost
from tests.core import programs

HAS_DEV_FULL = Path("/dev/full").exists()


def command(tmp_path: Path, *args: str, **popen: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "core.cli", *args], cwd=tmp_path, timeout=120, **popen
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("streams")
    config = programs.write(root, programs.program([programs.agent("a")], max_turns=1))
    done = command(root, "run", str(config), "--headless", "--simulate", "--runs-dir", "runs")
    assert done.returncode == 0
    return root


def commands(root: Path) -> list[list[str]]:
    (run,) = (root / "runs").iterdir()
    return [
        ["validate", "config.yaml"],
        ["estimate", "config.yaml"],
        ["schema"],
        ["runs"],
        ["checkpoints", run.name],
        ["verify", run.name],
    ]


def test_every_command_with_its_output_closed_does_its_job_quietly(finished: Path) -> None:
    """``>&-``: the command runs as usual; a file it opens never takes the closed descriptor."""
    for args in commands(finished):
        done = command(finished, *args, stderr=subprocess.PIPE, preexec_fn=lambda: os.close(1))
        assert done.returncode == 0, (args, done.stderr)
        assert b"Traceback" not in done.stderr, (args, done.stderr)


@pytest.mark.skipif(not HAS_DEV_FULL, reason="needs /dev/full")
def test_every_command_writing_to_a_full_device_says_so_and_exits_4(finished: Path) -> None:
    for args in commands(finished):
        with open("/dev/full", "wb") as full:
            done = command(finished, *args, stdout=full, stderr=subprocess.PIPE)
        assert done.returncode == 4, (args, done.stderr)
        assert b"cannot write to standard output (No space left on device)" in done.stderr, args
        assert b"Traceback" not in done.stderr, (args, done.stderr)


def test_a_headless_run_whose_reader_goes_away_stops_with_its_state_saved(tmp_path: Path) -> None:
    """``run --headless 2>&1 | head -1``: exit 141, a truthful summary, and ``resume`` finishes it.

    Before, the display's broken pipe escaped into the engine: the run ended ``failed`` with its
    agents still ``running`` in summary.json and the process exited 1.
    """
    config = programs.write(
        tmp_path, programs.program([programs.agent("a"), programs.agent("b")], [programs.agent("c")])
    )
    args = ["run", str(config), "--headless", "--simulate", "--runs-dir", "runs"]
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    assert process.stdout.readline()
    process.stdout.close()  # what `head -1` does after its line
    assert process.wait(timeout=120) == 141
    (run,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] in ("interrupted", "completed")
    assert all(agent["status"] != "running" for agent in summary["agents"]), summary["agents"]
    assert "Traceback" not in (run / "run.log").read_text()
    resumed = command(tmp_path, "resume", run.name, "--headless", "--runs-dir", "runs", capture_output=True)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"


class Failing(io.StringIO):
    def __init__(self, code: int) -> None:
        super().__init__()
        self.code = code

    def write(self, text: str) -> int:
        raise OSError(self.code, os.strerror(self.code))


@pytest.mark.parametrize("code", [errno.EPIPE, errno.EIO, errno.ENOSPC])
def test_a_guarded_stream_keeps_the_first_failure_and_tells_once(code: int) -> None:
    told: list[int] = []
    stream = GuardedStream(Failing(code), "standard output")
    with on_lost(lambda: told.append(1)):
        assert stream.write("line\n") == 5
        stream.write("more\n")
        stream.flush()
    assert stream.lost is not None and stream.lost.errno == code
    assert told == [1]
