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
