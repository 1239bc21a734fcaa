"""Headless output: log conventions when not a terminal, the summary once, the report path last."""

from __future__ import annotations

import argparse
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from core import events as ev
from core.cli import main
from core.headless import ACTIVITY_CHARS, HeadlessDisplay, activity_text
from tests.core import programs

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2} ")


def test_piped_output_is_timestamped_lines_never_wrapped_with_the_summary_once_and_the_report_last(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deep = tmp_path / ("a-directory-name-long-enough-that-an-80-column-console-would-fold-it" * 2)
    config = programs.write(deep, programs.program([programs.agent("market"), programs.agent("policy")]))
    runs = deep / "runs"
    assert main(["run", str(config), "--headless", "--simulate", "--runs-dir", str(runs)]) == 0
    captured = capsys.readouterr()
    out, err = captured.out.splitlines(), captured.err.splitlines()
    assert out and err
    for line in out + err:
        assert ISO.match(line), line
    (run_dir,) = runs.iterdir()
    started = [line for line in err if " started in " in line]
    assert len(started) == 1 and str(run_dir) in started[0] and len(started[0]) > 80  # one line, unfolded
    assert sum("summary: run" in line for line in out + err) == 1
    assert any("summary: market" in line for line in out)
    assert out[-1].endswith(str(run_dir / "report.md")) and (run_dir / "report.md").is_file()


def _display() -> tuple[HeadlessDisplay, io.StringIO]:
    sink = io.StringIO()
    console = Console(file=sink, soft_wrap=True, force_terminal=False)
    return HeadlessDisplay(console, Console(file=io.StringIO())), sink


def test_a_retry_without_a_response_says_so_instead_of_none() -> None:
    display, sink = _display()
    display(
        ev.RetryScheduled(
            run_id="r", agent_id="market", layer=1, turn=1, at=0.0, error_kind="connection",
            status_code=None, attempt=1, wait_s=1.5,
        )
    )  # fmt: skip
    line = sink.getvalue().strip()
    assert "None" not in line and "connection (no response)" in line and "retry 1 in 1.5s" in line


@given(
    before=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200),
    host=st.from_regex(r"\A[a-z]{1,12}\.(com|org|example)\Z"),
    path=st.from_regex(r"\A(/[A-Za-z0-9_-]{1,20}){0,4}\Z"),
)
def test_last_activity_shows_links_as_their_domain_on_one_short_line(
    before: str, host: str, path: str
) -> None:
    shown = activity_text(f"{before} see https://{host}{path} ")
    assert ("https://" not in shown and path.rstrip("/") not in shown.split(host)[-1]) or not path
    assert "\n" not in shown and len(shown) <= ACTIVITY_CHARS + 1
    assert shown.endswith(f"({host})") or not shown.endswith(")")


def _commands(parser: argparse.ArgumentParser, name: str) -> Iterator[tuple[str, argparse.Action]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                yield from _commands(sub, f"{name} {command}")
        else:
            yield name, action


def test_every_argument_of_every_command_is_documented_in_its_help() -> None:
    from core.cli import _parser

    undocumented = [
        f"{command}: {action.option_strings or action.dest}"
        for command, action in _commands(_parser(["simulator"]), "research-orchestrator")
        if not action.help or (action.help == argparse.SUPPRESS and action.dest != "help")
    ]
    assert undocumented == []


@pytest.mark.parametrize("height", [12, 30, 60])
def test_the_live_table_fits_the_terminal_with_agents_at_work_first_and_the_totals_in_view(
    height: int,
) -> None:
    """A layer of 100 agents on a 30-line terminal: the running ones, a line counting the rest by
    status, and the totals under the table all on screen; the final table has every agent."""
    sink, final = io.StringIO(), io.StringIO()
    console = Console(file=sink, force_terminal=True, width=120, height=height)
    display = HeadlessDisplay(console, Console(file=final, width=120))
    agents = tuple((f"agent-{i:03d}", 1 if i < 60 else 2, "") for i in range(100))
    display(ev.RunStarted(run_id="r", at=0.0, program="wide", run_dir="runs/r", agents=agents))
    for i in (3, 58, 59):
        display(ev.AgentStarted(run_id="r", agent_id=f"agent-{i:03d}", layer=1, turn=1, at=1.0, title=""))
    console.print(display.render())
    lines = sink.getvalue().splitlines()
    assert len(lines) <= height
    assert "spent" in lines[-1]  # the totals, under the table
    for running in ("agent-003", "agent-058", "agent-059"):
        assert any(running in line and "running" in line for line in lines)
    shown = sum(bool(re.search(r"agent-\d{3}", line)) for line in lines)
    (more,) = [line for line in lines if " more" in line]
    hidden = int(re.search(r"… (\d+) more", more).group(1))  # type: ignore[union-attr]
    assert shown + hidden == 100 and f"{hidden} pending" in more
    display.out.print(display.render(fit=False))
    assert all(f"agent-{i:03d}" in final.getvalue() for i in range(100))


def test_a_redirected_stdout_gets_the_log_lines_while_the_terminal_keeps_the_table(tmp_path: Path) -> None:
    """``run --headless > log`` from a terminal: the file holds timestamped event lines and the summary
    (no table drawn for a terminal); the terminal (standard error) shows the live table."""
    from core.control import RunOutcome, RunStatus

    terminal, log = io.StringIO(), io.StringIO()
    display = HeadlessDisplay(
        Console(file=terminal, force_terminal=True, width=160, height=40),
        Console(file=log, force_terminal=False, soft_wrap=True),
    )
    agents = (("market", 1, "Market"), ("policy", 1, "Policy"))
    with display:
        display(ev.RunStarted(run_id="r", at=0.0, program="p", run_dir=str(tmp_path), agents=agents))
        display(ev.AgentStarted(run_id="r", agent_id="market", layer=1, turn=1, at=1.0, title="Market"))
        display(ev.AgentFinished(run_id="r", agent_id="market", layer=1, turn=2, at=2.0, status="completed"))
    display.finish(RunOutcome(RunStatus.COMPLETED, tmp_path, 0.25))
    lines = log.getvalue().splitlines()
    assert lines and all(ISO.match(line) for line in lines), lines
    assert any("market: started (layer 1)" in line for line in lines)
    assert any("market: completed" in line for line in lines)
    assert sum("summary: run" in line for line in lines) == 1
    assert "report" in lines[-1]
    assert not any(c in log.getvalue() for c in "┏━│┃╇")  # no table in the file
    assert "market" in terminal.getvalue()  # the live table was drawn on the terminal


def test_the_lines_and_the_table_tell_billed_from_unconfirmed_dollars(tmp_path: Path) -> None:
    """A turn the API reported ($0.50, 2 searches) and an attempt cut off whose usage never arrived
    (charged $0.25 and 1 search as a bound): each line and the table say which is which."""
    from core.control import RunOutcome, RunStatus
    from core.usage import TokenUsage

    terminal, log = io.StringIO(), io.StringIO()
    display = HeadlessDisplay(
        Console(file=terminal, force_terminal=True, width=200, height=40),
        Console(file=log, force_terminal=False, soft_wrap=True),
    )
    run, agent = "r", {"agent_id": "market", "layer": 1}
    display(
        ev.RunStarted(run_id=run, at=0.0, program="p", run_dir=str(tmp_path), agents=(("market", 1, ""),))
    )
    display(ev.AgentStarted(run_id=run, turn=0, title="", **agent))
    display(
        ev.TurnCompleted(
            run_id=run, turn=1, stop_reason="end_turn", usage=TokenUsage(web_search_requests=2), cost_usd=0.5,
            **agent,
        )
    )  # fmt: skip
    display(
        ev.AttemptCharged(
            run_id=run, turn=1, usage=TokenUsage(web_search_requests=1), cost_usd=0.25, basis="received",
            **agent,
        )
    )  # fmt: skip
    display(ev.AgentFinished(run_id=run, turn=2, status="completed", **agent))
    display(ev.RunFinished(run_id=run, status=RunStatus.COMPLETED, cost_usd=0.75))
    display.console.print(display.render())
    display.finish(RunOutcome(RunStatus.COMPLETED, tmp_path, 0.75))

    lines = log.getvalue().splitlines()
    split = "$0.5000 billed + $0.2500 unconfirmed (1 attempt whose usage never arrived)"
    (charged,) = [line for line in lines if "charged for the failed attempt" in line]
    assert "$0.2500" in charged and charged.endswith("unconfirmed")
    (finished,) = [line for line in lines if "market: completed after" in line]
    assert "$0.7500" in finished and split in finished
    (total,) = [line for line in lines if "summary: run" in line]
    assert "$0.7500 spent, 3 searches" in total and split in total and "1 searches unconfirmed" in total
    (row,) = [line for line in lines if "summary: market" in line]
    assert "3 searches, $0.7500" in row and split in row
    table = terminal.getvalue()
    assert "billed $" in table and "unconfirmed $" in table
    assert re.search(r"market .*0\.5000 .*0\.2500", table)
    assert f"$0.7500 spent ({split}) · 3 searches (1 unconfirmed)" in table
