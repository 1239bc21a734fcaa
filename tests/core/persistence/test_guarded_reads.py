"""Every command that reads a run directory reads it through the one guarded path.

A run directory may come from someone else. Whatever is planted where the run keeps a file (a
FIFO that would block a reader forever, a link to ``/dev/zero`` that never ends, a link to a secret
file of the user's), the commands that only read (``runs``, ``checkpoints``, ``verify``, ``attach``)
end at once with their documented code, print no traceback, and show nothing of the link's target.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.cli import main
from core.persistence.atomic import UnsafePathError, list_dir, read_regular, read_tail
from core.runner import start_run
from tests.core import programs

SECRET = "the-users-secret-b8f1"
# Every file a read command may look at, by where the run keeps it.
READ_FILES = ("summary.json", "events.jsonl", "owner.pid", "owner.log", "run.json", "run.lock", "report.md")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("guarded")
    config = programs.write(root, programs.program([programs.agent("a")], max_turns=1))

    async def go() -> Path:
        orchestrator = await start_run(config, root / "runs", simulate=True)
        return (await orchestrator.run()).run_dir

    return asyncio.run(go())


@pytest.fixture
def run(finished: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "runs" / finished.name
    shutil.copytree(finished, copy)
    return copy


def plant_fifo(path: Path, secret: Path) -> None:
    os.mkfifo(path)


def plant_endless(path: Path, secret: Path) -> None:
    path.symlink_to("/dev/zero")


def plant_secret_link(path: Path, secret: Path) -> None:
    path.symlink_to(secret)


PLANTS: dict[str, Callable[[Path, Path], None]] = {
    "fifo": plant_fifo,
    "link to /dev/zero": plant_endless,
    "link to a secret": plant_secret_link,
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("plant", sorted(PLANTS))
@pytest.mark.parametrize("name", READ_FILES)
def test_read_commands_never_block_nor_read_through_what_was_planted(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, plant: str
) -> None:
    secret = tmp_path / "secret"
    secret.write_text(f"{SECRET}\n")
    target = run / name
    target.unlink(missing_ok=True)
    if name == "owner.log":  # a dead detached owner: attach shows the end of its log
        (run / "owner.pid").write_text(f"{os.getpid()}\n")
    PLANTS[plant](target, secret)
    runs = str(run.parent)
    capsys.readouterr()

    codes = {
        "runs": main(["runs", "--runs-dir", runs]),
        "checkpoints": main(["checkpoints", run.name, "--runs-dir", runs]),
        "verify": main(["verify", run.name, "--runs-dir", runs]),
        "attach": main(["attach", run.name, "--runs-dir", runs]),
    }
    out, err = capsys.readouterr()
    assert codes["runs"] == codes["checkpoints"] == 0, (codes, out, err)
    assert codes["verify"] == 1 and f"problem {name}" in out, (out, err)
    assert codes["attach"] == 2 and str(target) in err, err  # refused, naming the path
    assert SECRET not in out + err and "Traceback" not in out + err


@pytest.mark.timeout(60)
def test_verify_names_a_report_linked_out_of_the_run_without_reading_it(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "secret.md"
    secret.write_text(f"[x](https://{SECRET}.example/)\n")
    report = run / "reports" / "a.md"
    report.unlink()
    report.symlink_to(secret)
    capsys.readouterr()
    assert main(["verify", str(run)]) == 1
    out = capsys.readouterr().out
    assert "problem reports/a.md" in out and "symbolic link" in out and SECRET not in out


def test_a_linked_checkpoints_directory_is_refused_by_name(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    (run / "checkpoints").rename(elsewhere)
    (run / "checkpoints").symlink_to(elsewhere, target_is_directory=True)
    capsys.readouterr()
    assert main(["checkpoints", run.name, "--runs-dir", str(run.parent)]) == 2
    assert "checkpoints is a symbolic link" in capsys.readouterr().err
    assert main(["runs", "--runs-dir", str(run.parent)]) == 0


def test_the_guarded_primitives(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(b"0123456789")
    assert read_tail(data, limit=4) == b"6789" and read_tail(data, limit=99) == b"0123456789"
    assert read_regular(data, limit=10) == b"0123456789"
    with pytest.raises(OSError, match="larger than"):
        read_regular(data, limit=9)
    (tmp_path / "link").symlink_to(data)
    os.mkfifo(tmp_path / "fifo")
    for planted in ("link", "fifo"):
        with pytest.raises(UnsafePathError):
            read_tail(tmp_path / planted, limit=4)
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "x").touch()
    (tmp_path / "dirlink").symlink_to(tmp_path / "dir")
    assert list_dir(tmp_path / "dir", kind="d") == ["x"]
    with pytest.raises(UnsafePathError, match="symbolic link"):
        list_dir(tmp_path / "dirlink", kind="d")
    with pytest.raises(UnsafePathError, match="is a file"):
        list_dir(data, kind="d")


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


# JSON that parses to something other than what the file holds, or does not parse at all.
HOSTILE_JSON = st.one_of(
    st.integers(min_value=2_000, max_value=200_000).map(_deep),
    st.sampled_from(["5", '"x"', "null", "[1]", "{", "\u0000", '{"kind": "checkpoint_saved"}']),
)


JSON_FILES = st.sampled_from(["events.jsonl", "summary.json", "checkpoint", "run.lock", "run.json"])


def _signed_checkpoint(body: str) -> bytes:
    payload = body.encode()
    return b'{"sha256":"' + hashlib.sha256(payload).hexdigest().encode() + b'","body":' + payload + b"}\n"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=HOSTILE_JSON, where=JSON_FILES)
def test_hostile_json_in_any_run_file_is_reported_never_a_traceback(
    finished: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str],
    document: str, where: str,
) -> None:  # fmt: skip
    """Before, a line of ``[[[[...`` (RecursionError) or a bare ``5`` (not an object) in events.jsonl,
    or a deep body in a checkpoint with a valid checksum, ended verify and resume in a traceback."""
    run = tmp_path_factory.mktemp("hostile") / finished.name
    shutil.copytree(finished, run)
    if where == "events.jsonl":
        with (run / where).open("a") as journal:
            journal.write(document + "\n")
    elif where == "checkpoint":
        newest = sorted((run / "checkpoints").iterdir())[-1]
        newest.write_bytes(_signed_checkpoint(document))
    else:
        (run / where).write_text(document)
    capsys.readouterr()
    assert main(["runs", "--runs-dir", str(run.parent)]) == 0
    assert main(["checkpoints", str(run)]) == 0
    assert main(["verify", str(run)]) in (0, 1)
    assert main(["resume", str(run), "--headless", "--runs-dir", str(run.parent)]) in (0, 2)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
