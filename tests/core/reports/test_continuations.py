"""Answers cut by ``max_tokens`` and continued: a report joins them where they were cut, and a report
whose last answer is still cut says it is partial."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from core.cli import main
from core.persistence.checkpoints import CheckpointStore
from core.reports.render import CONTINUE_PROMPT
from tests.core import programs


def run_program(tmp_path: Path, max_tokens: int, continuations: int) -> Path:
    data = programs.program(
        [programs.agent("alpha")],
        [programs.agent("omega")],
        max_turns=2,
        defaults={"max_tokens": max_tokens, "max_tokens_continuations": continuations},
    )
    config = programs.write(tmp_path, data)
    runs = tmp_path / "runs"
    assert main(["run", str(config), "--headless", "--simulate", "--runs-dir", str(runs)]) == 0
    (run,) = runs.iterdir()
    return run


def report_answers(run: Path, agent: str) -> list[str]:
    """The texts of the report turn's answers, one per API call (the cut ones and their rests)."""
    store = CheckpointStore(run)
    last = [info for info in store.list() if info.agent_id == agent][-1]
    checkpoint = store.load(last.id)
    turn = checkpoint.messages[checkpoint.agent_state["report_from"] :]
    assert any(m["role"] == "user" and m["content"][0]["text"] == CONTINUE_PROMPT for m in turn), "not cut"
    return [
        "".join(str(b.get("text", "")) for b in m["content"] if b.get("type") == "text")
        for m in turn
        if m["role"] == "assistant"
    ]


def test_a_report_cut_by_max_tokens_is_joined_where_it_was_cut(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_program(tmp_path, max_tokens=150, continuations=5)
    capsys.readouterr()
    for agent in ("alpha", "omega"):
        answers = report_answers(run, agent)
        assert len(answers) >= 2
        report = (run / "reports" / f"{agent}.md").read_text(encoding="utf-8")
        assert "Partial" not in report, "its last answer ended before the limit"
        assert report.count("## Summary") == 1 and "## Open questions" in report  # continued, not restarted
        for before, after in itertools.pairwise(answers):
            tail, head = re.search(r"[A-Za-z-]*$", before), re.match(r"[A-Za-z-]*", after)
            cut_word = (tail.group(0) if tail else "") + (head.group(0) if head else "")
            if cut_word:
                assert re.search(rf"(?<![A-Za-z-]){re.escape(cut_word)}(?![A-Za-z-])", report), cut_word
    assert main(["verify", str(run)]) == 0, capsys.readouterr().out


def test_a_report_still_cut_when_the_continuations_run_out_is_marked_partial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_program(tmp_path, max_tokens=16, continuations=2)
    note = "Partial: the report was cut at the output limit (max_tokens 16)"
    for agent in ("alpha", "omega"):
        assert len(report_answers(run, agent)) == 3
        assert note in (run / "reports" / f"{agent}.md").read_text(encoding="utf-8")
    document = (run / "report.md").read_text(encoding="utf-8")
    assert note in document and document.index(note) < document.index("## Summary")  # above the findings
    assert document.count("## Summary") == 1  # one report, continued: not three cut copies
    summary: dict[str, Any] = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed"
