"""The README's run command in a real terminal: see the run, pause an agent, quit, terminal restored.

tmux gives the app a real pseudo-terminal and lets the test read the screen and the terminal's
modes afterwards; ``.ci/run`` installs it where it is missing.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.core import programs
from tests.processes import alive
from tests.tui.tmux import TmuxServer, tmux_path, wait_for_file
from tests.waits import wait_until

pytestmark = [
    pytest.mark.tmux,
    pytest.mark.timeout(90),
    pytest.mark.skipif(tmux_path() is None, reason="tmux is not installed (.ci/run installs it)"),
]

REPO = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 160, 48
BOX_DRAWING = re.compile("[\u2500-\u257f\u2580-\u259f]")  # borders, bars and blocks the app draws
EXIT_INTERRUPTED = 130


def run_command() -> list[str]:
    """The README's ``research-orchestrator run`` (the venv's script), else ``python -m tui.launch run``."""
    script = Path(sys.executable).with_name("research-orchestrator")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "tui.launch"]


def long_enough_program(tmp_path: Path) -> Path:
    """Four agents streaming at 100 tokens/s for several turns: still running when the test quits."""
    data = programs.program(
        [programs.agent(a) for a in ("alpha", "beta", "gamma")],
        [programs.agent("delta", reads=["alpha", "beta", "gamma"])],
        max_turns=6,
        simulator={"latency_ms": 200, "tokens_per_second": 100, "output_tokens_per_turn": [150, 250]},
    )
    return programs.write(tmp_path, data)


def row_of(screen: str, agent_id: str) -> str:
    """The agents-table cell of ``agent_id`` (``L1 ● alpha  t1 …``), without the panes beside it."""
    for line in screen.splitlines():
        found = re.search(rf"L\d \S {agent_id}\b[^│]*", line)
        if found:
            return found.group(0)
    return ""


def test_run_in_a_real_terminal_pause_then_quit_leaves_the_terminal_as_it_was(
    tmux: TmuxServer, tmp_path: Path
) -> None:
    config = long_enough_program(tmp_path)
    runs, exit_file = tmp_path / "runs", tmp_path / "exit"
    before, after = tmp_path / "stty-before", tmp_path / "stty-after"
    app = shlex.join([*run_command(), "run", str(config), "--simulate", "--runs-dir", str(runs)])
    script = (
        f"stty -a > {shlex.quote(str(before))}; {app}; echo EXIT=$? > {shlex.quote(str(exit_file))}; "
        f"stty -a > {shlex.quote(str(after))}; sleep 60"
    )
    session = f"ro-tui-{uuid.uuid4().hex[:8]}"
    pane = tmux.new_session(session, script, width=WIDTH, height=HEIGHT, cwd=REPO)
    fresh = tmux.new_window(session, "sleep 60", cwd=REPO)  # a terminal nothing has run in

    screen = tmux.wait_for_screen(
        pane,
        lambda s: "Budget" in s and "spent" in s and all(row_of(s, a) for a in ("alpha", "beta", "gamma")),
        "the agents table and the budget meter",
    )
    assert "Agents" in screen
    assert tmux.display(pane, "#{alternate_on}") == "1"  # the app is on the alternate screen

    tmux.send_keys(pane, "p")  # the table's cursor starts on the first agent, alpha
    screen = tmux.wait_for_screen(
        pane,
        lambda s: "‖" in row_of(s, "alpha") and ("pausing" in s or "paused" in s),
        "alpha shown pausing or paused",
    )
    assert "‖" not in row_of(screen, "beta")  # only the selected agent

    tmux.send_keys(pane, "C-q")
    tmux.wait_for_screen(pane, lambda s: "Stop and quit" in s, "the quit confirmation")
    tmux.send_keys(pane, "y")

    # the run was still active (it asked), so `y` stopped it: interrupted, resumable
    assert wait_for_file(exit_file, "the app to exit").strip() == f"EXIT={EXIT_INTERRUPTED}"
    wait_for_file(after, "the shell to run on after the app")
    left = tmux.capture(pane)
    assert not BOX_DRAWING.search(left), f"app chrome left on the terminal:\n{left}"
    assert "Budget" not in left
    assert tmux.display(pane, "#{alternate_on}") == "0"
    assert tmux.modes(pane) == tmux.modes(fresh)  # cursor shown, mouse and keypad modes off again
    assert after.read_text() == before.read_text()  # line discipline (echo, canonical mode) restored
    summaries = list(runs.glob("*/summary.json"))
    assert len(summaries) == 1
    assert json.loads(summaries[0].read_text())["status"] == "interrupted"


def test_at_80x24_maximise_restore_then_keys_act_on_the_list_and_help_fits(
    tmux: TmuxServer, tmp_path: Path
) -> None:
    config = long_enough_program(tmp_path)
    runs, exit_file = tmp_path / "runs", tmp_path / "exit"
    app = shlex.join([*run_command(), "run", str(config), "--simulate", "--runs-dir", str(runs)])
    session = f"ro-tui-{uuid.uuid4().hex[:8]}"
    script = f"{app}; echo EXIT=$? > {shlex.quote(str(exit_file))}; sleep 60"
    pane = tmux.new_session(session, script, width=80, height=24, cwd=REPO)
    screen = tmux.wait_for_screen(  # one pane beside the list, which says the others are hidden
        pane,
        lambda s: all(row_of(s, a) for a in ("alpha", "beta", "gamma")) and "hidden" in s,
        "the agents table with one pane",
    )
    assert "^q Quit" in screen.replace("^qQuit", "^q Quit")  # how to quit is on screen at 80 columns

    tmux.send_keys(pane, "f")
    tmux.wait_for_screen(pane, lambda s: not row_of(s, "beta"), "alpha's pane maximised over the list")
    tmux.send_keys(pane, "Escape")
    tmux.wait_for_screen(pane, lambda s: bool(row_of(s, "beta")), "the list back after esc")
    tmux.send_keys(pane, "Down", "p")  # the keys act on the list again: beta is selected and paused
    screen = tmux.wait_for_screen(pane, lambda s: "‖" in row_of(s, "beta"), "beta shown pausing or paused")
    assert "‖" not in row_of(screen, "alpha")

    tmux.send_keys(pane, "?")
    screen = tmux.wait_for_screen(pane, lambda s: "Keys on the run screen" in s, "the help")
    assert "esc closes" in screen and "pause or resume the selected agent" in screen  # framed whole at 80x24
    tmux.send_keys(pane, "Escape", "C-q")
    tmux.wait_for_screen(pane, lambda s: "Stop and quit" in s, "the quit confirmation")
    tmux.send_keys(pane, "y")
    assert wait_for_file(exit_file, "the app to exit").strip() == f"EXIT={EXIT_INTERRUPTED}"


def test_closing_the_terminal_stops_the_run_cleanly_and_the_app_exits(
    tmux: TmuxServer, tmp_path: Path
) -> None:
    """SIGHUP (the terminal window closed, SSH dropped) is a clean stop, as a confirmed quit is: the summary
    says interrupted, the journal ends with the run's end, the control socket is gone, and the
    process exits instead of hanging on writes to a terminal that no longer exists."""
    config = long_enough_program(tmp_path)
    runs, pid_file = tmp_path / "runs", tmp_path / "pid"
    app = shlex.join([*run_command(), "run", str(config), "--simulate", "--runs-dir", str(runs)])
    # exec: the app is the terminal's session leader, which the kernel sends the hang-up to
    script = f"echo $$ > {shlex.quote(str(pid_file))}; exec {app}"
    session = f"ro-hup-{uuid.uuid4().hex[:8]}"
    pane = tmux.new_session(session, script, width=WIDTH, height=HEIGHT, cwd=REPO)
    tmux.wait_for_screen(pane, lambda s: "t1" in row_of(s, "alpha"), "alpha's first turn")
    pid = int(wait_for_file(pid_file, "the app's pid"))
    tmux.tmux("kill-session", "-t", session)
    wait_until(lambda: not alive(pid), "the app to exit after the hang-up")
    (run_dir,) = runs.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "interrupted"
    assert summary["unconfirmed_usd"] == 0  # the calls in flight finished their turn: nothing cancelled
    assert all(agent["status"] in ("interrupted", "pending", "completed") for agent in summary["agents"])
    last = json.loads((run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    assert last["kind"] == "run_finished" and last["status"] == "interrupted"
    assert not (run_dir / "control.sock").exists()
    # the hang-up, or a write to the terminal failing first, whichever the app heard of first
    assert "the app stops its run and exits" in (run_dir / "run.log").read_text(encoding="utf-8")


def test_kill_of_an_app_whose_terminal_is_gone_still_stops_the_run_and_exits(
    tmux: TmuxServer, tmp_path: Path
) -> None:
    """The terminal closed under a shell that ignores hang-ups, so the app never heard of it; a later
    ``kill`` (SIGTERM) stops the run cleanly as a quit does (nothing in flight cancelled), and the app
    exits 130 instead of blocking on writes to the dead terminal."""
    config = long_enough_program(tmp_path)
    runs, exit_file = tmp_path / "runs", tmp_path / "exit"
    app = shlex.join([*run_command(), "run", str(config), "--simulate", "--runs-dir", str(runs)])
    script = f"trap '' HUP; {app}; echo EXIT=$? > {shlex.quote(str(exit_file))}"
    session = f"ro-term-{uuid.uuid4().hex[:8]}"
    pane = tmux.new_session(session, script, width=WIDTH, height=HEIGHT, cwd=REPO)
    tmux.wait_for_screen(pane, lambda s: "t1" in row_of(s, "alpha"), "alpha's first turn")
    tmux.tmux("kill-session", "-t", session)
    found = subprocess.run(["pgrep", "-f", str(config)], capture_output=True, text=True).stdout.split()
    (pid,) = [int(p) for p in found if Path(f"/proc/{p}/comm").read_text().strip() not in ("sh", "bash")]
    os.kill(pid, signal.SIGTERM)
    assert wait_for_file(exit_file, "the app's exit status").strip() == f"EXIT={EXIT_INTERRUPTED}"
    (run_dir,) = runs.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "interrupted" and summary["unconfirmed_usd"] == 0


def test_the_tmux_server_ends_what_its_panes_left_running(tmux: TmuxServer, tmp_path: Path) -> None:
    """A process that outlives its terminal (as an app a failed test left behind could) is ended when
    the test's server is, so no test leaves the machine loaded."""
    pid_file, stubborn = tmp_path / "pid", tmp_path / "stubborn.sh"
    stubborn.write_text(f"trap '' HUP TERM\necho $$ > {shlex.quote(str(pid_file))}\nsleep 600\n")
    script = f"trap '' HUP TERM; sh {shlex.quote(str(stubborn))}"
    tmux.new_session(f"ro-left-{uuid.uuid4().hex[:8]}", script, width=WIDTH, height=HEIGHT, cwd=REPO)
    pid = int(wait_for_file(pid_file, "the stubborn process's pid"))
    tmux.kill()
    assert not alive(pid)
