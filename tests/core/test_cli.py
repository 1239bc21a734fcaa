"""The command line contract: exit codes, clear messages, nothing created for bad input."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.cli import main
from tests.core import programs

BAD_CONFIGS = {
    "unknown key": ("defaults:\n  max_turn: 3\n", "max_turn"),
    "wrong type": ("defaults:\n  max_turns: lots\n", "max_turns"),
    "missing field": ("layers:\n  - name: one\n    agents:\n      - id: a\n        brief: b\n", "program"),
    "empty file": ("", "empty"),
    "unknown agent": (None, "nobody"),
}


def bad_config(tmp_path: Path, case: str) -> Path:
    text, _ = BAD_CONFIGS[case]
    if case == "unknown agent":
        data = programs.program([programs.agent("a")], [programs.agent("b", reads=["nobody"])])
        return programs.write(tmp_path, data)
    if case not in ("missing field", "empty file"):
        base = (
            "program:\n  name: p\n  question: q\n"
            "layers:\n  - name: one\n    agents:\n      - id: a\n        brief: b\n"
        )
        text = base + (text or "")
    path = tmp_path / "bad.yaml"
    path.write_text(text or "", encoding="utf-8")
    return path


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_configs_exit_2_naming_the_key_without_traceback_or_run_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, command: str
) -> None:
    config = bad_config(tmp_path, case)
    runs = tmp_path / "runs"
    argv = [command, str(config)] + (
        ["--headless", "--simulate", "--runs-dir", str(runs)] if command == "run" else []
    )
    assert main(argv) == 2
    out = capsys.readouterr()
    text = out.out + out.err
    assert BAD_CONFIGS[case][1] in text
    assert "Traceback" not in text
    assert not runs.exists()


def test_validate_accepts_the_shipped_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(programs.DEFAULT_CONFIG)]) == 0
    assert "valid" in capsys.readouterr().out


def test_run_without_a_key_names_the_variable_and_suggests_simulate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    config = programs.write(tmp_path, programs.program([programs.agent("a")]))
    assert main(["run", str(config), "--headless", "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "ANTHROPIC_API_KEY" in err and "--simulate" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_headless_simulated_run_through_the_console_script(tmp_path: Path) -> None:
    """The real entry point, in a subprocess, as a user types it."""
    config = programs.write(
        tmp_path, programs.program([programs.agent("a"), programs.agent("b")], max_turns=1)
    )
    runs = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.cli",
            "run",
            str(config),
            "--headless",
            "--simulate",
            "--runs-dir",
            str(runs),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    [run_dir] = list(runs.iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert {a["status"] for a in summary["agents"]} == {"completed"}

    listed = subprocess.run(
        [sys.executable, "-m", "core.cli", "runs", "--runs-dir", str(runs)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run_dir.name in listed.stdout and "completed" in listed.stdout


def tree_digest(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``root`` with its content hash and mode: what "byte-identical" compares."""
    import hashlib

    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mode)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_resume_of_a_completed_run_says_so_exits_0_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = programs.write(tmp_path, programs.program([programs.agent("a")], max_turns=1))
    runs = tmp_path / "runs"
    assert main(["run", str(config), "--headless", "--simulate", "--runs-dir", str(runs)]) == 0
    (run_dir,) = runs.iterdir()
    before = tree_digest(run_dir)
    mtimes = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
    capsys.readouterr()

    assert main(["resume", run_dir.name, "--headless", "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "already complete" in out and "report.md" in out and "started" not in out
    assert tree_digest(run_dir) == before
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")} == mtimes


def test_runs_lists_a_fork_with_its_parent_run_and_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = programs.write(tmp_path, programs.program([programs.agent("a")], max_turns=3))
    runs = tmp_path / "runs"
    assert main(["run", str(config), "--headless", "--simulate", "--runs-dir", str(runs)]) == 0
    (parent,) = runs.iterdir()
    first = sorted((parent / "checkpoints").iterdir())[0].stem
    assert main(["resume", parent.name, "--checkpoint", first, "--headless", "--runs-dir", str(runs)]) == 0
    capsys.readouterr()
    assert main(["runs", "--runs-dir", str(runs)]) == 0
    listing = capsys.readouterr().out
    fork_line = next(line for line in listing.splitlines() if line.split()[0] != parent.name and "@" in line)
    assert f"{parent.name} @ {first}" in fork_line
    fork = next(p for p in runs.iterdir() if p != parent)
    assert json.loads((fork / "summary.json").read_text())["parent"] == {
        "run_id": parent.name,
        "checkpoint_id": first,
    }


def test_checkpoints_lists_each_turn_of_each_agent_once_the_last_one_final(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An agent's last turn is its final checkpoint (status and all): no second file for the same turn."""
    from core.persistence.checkpoints import CheckpointStore

    data = programs.program([programs.agent("a"), programs.agent("b")], [programs.agent("c")], max_turns=3)
    config = programs.write(tmp_path, data)
    runs = tmp_path / "runs"
    assert main(["run", str(config), "--headless", "--simulate", "--runs-dir", str(runs)]) == 0
    (run,) = runs.iterdir()
    capsys.readouterr()
    assert main(["checkpoints", run.name, "--runs-dir", str(runs)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    turns = [(row[1], row[2]) for row in rows]
    assert len(turns) == len(set(turns)), turns
    assert {agent for agent, _ in turns} == {"a", "b", "c"}
    infos = CheckpointStore(run).list()
    last = {info.agent_id: info for info in infos}
    assert {info.agent_status for info in last.values()} == {"completed"}
    summary = json.loads((run / "summary.json").read_text())
    assert {a["id"]: a["turns"] for a in summary["agents"]} == {i.agent_id: i.turn for i in last.values()}


@pytest.mark.parametrize(
    ("ref", "phrase"),
    [
        ("x" * 5000, "too long"),
        ("a/" * 600 + "b", "too long"),
        ("run\x1b[2J", "control character"),
        ("run\nid", "control character"),
        ("", "empty"),
    ],
    ids=["5000 chars", "1200 components", "escape", "newline", "empty"],
)
@pytest.mark.parametrize("command", ["resume", "checkpoints"])
def test_hostile_run_references_get_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ref: str, phrase: str, command: str
) -> None:
    assert main([command, ref, "--runs-dir", str(tmp_path)]) == 2  # resume: refused before the app opens
    err = capsys.readouterr().err
    assert phrase in err and "Traceback" not in err
    assert "\x1b" not in err and len(err.strip().splitlines()) == 1


def test_run_ids_with_terminal_escapes_are_printed_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.persistence.rundir import RunDir

    RunDir.create(tmp_path, "evil\x1b]0;pwned\x07", "program: {}\n")
    assert main(["runs", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "evil\\x1b]0;pwned\\x07" in out


F_SETPIPE_SZ = 1031


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "{config}"],
        ["estimate", "{config}"],
        ["schema"],
        ["runs", "--runs-dir", "{runs}"],
        ["checkpoints", "{run}", "--runs-dir", "{runs}"],
    ],
)
def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path: Path, argv: list[str]) -> None:
    """``research-orchestrator ... | head -1``: no BrokenPipeError traceback, whatever the command."""
    from core.persistence.checkpoints import CheckpointStore
    from core.persistence.rundir import RunDir

    config = programs.write(tmp_path, programs.program(*[[programs.agent(f"a{i}")] for i in range(120)]))
    runs = tmp_path / "runs"
    for i in range(100 if "runs" in argv else 0):
        RunDir.create(runs, f"20261124-1000{i:03d}-r-aaaa", "program: {}\n")
    run = RunDir.create(runs, "20261124-090000-c-bbbb", "program: {}\n")
    store = CheckpointStore(run.path)
    for turn in range(100 if "checkpoints" in argv else 0):
        asyncio.run(
            store.save(
                agent_id="a", layer=1, turn=turn, messages=[], agent_state={}, ledger_state={},
                cost_usd=0.0, tokens=0, agent_status="running",
            )
        )  # fmt: skip
    args = [a.format(config=config, runs=runs, run=run.path.name) for a in argv]
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, F_SETPIPE_SZ, 4096)  # the output must overflow the pipe: a real EPIPE
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", *args], stdout=write_end, stderr=subprocess.PIPE, cwd=tmp_path
    )
    os.close(write_end)
    assert process.stderr is not None
    with os.fdopen(read_end, "rb") as reader:
        first = reader.readline()
    # what `head -1` does after its line: the pipe's reader is gone
    err = process.stderr.read().decode()
    code = process.wait(timeout=60)
    assert first
    assert err == "", err
    assert code in (0, 141)


def test_resume_checkpoint_accepts_a_unique_prefix_of_its_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = programs.write(tmp_path, programs.program([programs.agent("a")], max_turns=3))
    runs = tmp_path / "runs"
    assert main(["run", str(config), "--headless", "--simulate", "--runs-dir", str(runs)]) == 0
    (parent,) = runs.iterdir()
    first = sorted((parent / "checkpoints").iterdir())[0].stem  # 000001-a-t001
    capsys.readouterr()
    assert main(["resume", parent.name, "--checkpoint", "0000", "--headless", "--runs-dir", str(runs)]) == 2
    assert "matches" in capsys.readouterr().err  # ambiguous: every id starts with 0000
    prefix = first.split("-")[0]
    assert main(["resume", parent.name, "--checkpoint", prefix, "--headless", "--runs-dir", str(runs)]) == 0
    fork = next(p for p in runs.iterdir() if p != parent)
    assert json.loads((fork / "summary.json").read_text())["parent"]["checkpoint_id"] == first


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--port", "99999"], "--port 99999 is not a TCP port"),
        (["--port", "-1"], "--port -1 is not a TCP port"),
        (["--host", "no-such-host.invalid", "--port", "0"], "cannot listen on no-such-host.invalid"),
        (["--host", "999.1.1.1", "--port", "0"], "cannot listen on 999.1.1.1"),
        (["--latency-ms", "-5", "--port", "0"], "--latency-ms: Input should be greater than or equal to 0"),
        (["--server-loop-limit", "0", "--port", "0"], "--server-loop-limit:"),
        (["--requests-per-minute", "-3", "--port", "0"], "--requests-per-minute:"),
    ],
)
def test_simulator_options_it_cannot_use_are_one_line_and_exit_2(
    tmp_path: Path, options: list[str], named: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "core.cli", "simulator", *options],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert named in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_simulator_on_a_port_in_use_says_so_and_exits_2(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "core.cli", "simulator", "--port", str(port)],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"cannot listen on 127.0.0.1 port {port}" in done.stderr
    assert "address already in use" in done.stderr


@pytest.mark.parametrize("command", [[], ["run", "{config}", "--simulate"], ["resume", "{run}"]])
def test_the_app_without_a_terminal_is_refused_at_once_not_left_waiting(
    tmp_path: Path, command: list[str]
) -> None:
    """``research-orchestrator run cfg --simulate > log < /dev/null`` (``--headless`` forgotten, in CI):
    before, the app opened on no terminal and waited for a key forever after the run."""
    config = programs.write(tmp_path, programs.program([programs.agent("a")], max_turns=1))
    args = [a.format(config=config, run="20261124-100212-p-3f2a") for a in command]
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from tui.launch import main; sys.exit(main())", *args],
        cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "the terminal app needs a terminal" in done.stderr and "--headless" in done.stderr
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "runs").exists()


_CONTROLS = st.sampled_from(["\x1b]0;owned\x07", "\x1b[2J", "\x9b31m", "\u202e", "\x08", "\r"])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(control=_CONTROLS, valid=st.booleans())
def test_names_from_files_and_arguments_are_printed_with_their_controls_escaped(
    tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str], control: str, valid: bool
) -> None:
    """A file name, a --runs-dir or a run directory (from someone else) holding an escape sequence
    must not recolour, retitle or clear the terminal of whoever lists or checks it."""
    from core.persistence.rundir import RunDir
    from core.safe_text import is_control

    root = tmp_path_factory.mktemp("names")
    config = root / f"conf{control}.yaml"
    config.write_text("x: 1\n" if not valid else (programs.DEFAULT_CONFIG.read_text()), encoding="utf-8")
    runs = root / f"runs{control}"
    RunDir.create(runs, f"20261124-100212-p{control}-3f2a", "program: {}\n")
    capsys.readouterr()
    for args in (
        ["validate", str(config)],
        ["runs", "--runs-dir", str(root / f"empty{control}")],
        ["runs", "--runs-dir", str(runs)],
        ["checkpoints", "2026", "--runs-dir", str(runs)],
        ["verify", "2026", "--runs-dir", str(runs)],
    ):
        main(args)
        out, err = capsys.readouterr()
        shown = [char for char in out + err if is_control(char, allow_whitespace=True) or char == "\r"]
        assert not shown, (args, out, err)


@pytest.mark.parametrize("command", ["validate", "estimate", "schema"])
def test_commands_that_read_no_runs_take_no_runs_dir(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An option a command ignores is refused, not silently accepted (exit 2, naming it)."""
    with pytest.raises(SystemExit) as ended:
        main([command, "--runs-dir", str(tmp_path)])
    assert ended.value.code == 2
    assert "unrecognized arguments: --runs-dir" in capsys.readouterr().err
    assert main([command, "-v"] if command == "schema" else [command, str(programs.DEFAULT_CONFIG)]) == 0
