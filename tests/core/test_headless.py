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
