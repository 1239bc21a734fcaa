"""The adapter reads runs, checkpoint previews and estimates from core, degrading gracefully."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.persistence.checkpoints import CheckpointInfo
from tui.data import (
    Exchange,
    exchange_of,
    list_runs,
    load_estimate,
    read_document,
    run_documents,
)
from tui.format import middle, plural
from tui.screens.checkpoints import distinct

CONFIG = Path(__file__).resolve().parents[2] / "research_config.yaml"


def test_the_last_exchange_is_the_last_user_text_and_the_replies_after_it() -> None:
    messages = [
        {"role": "user", "content": "first brief"},
        {"role": "assistant", "content": [{"type": "text", "text": "old answer"}]},
        {"role": "user", "content": [{"type": "text", "text": "go deeper"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {"query": "q1"}},
                {"type": "web_search_tool_result", "content": []},
                {"type": "text", "text": "new answer"},
            ],
        },
    ]
    assert exchange_of(messages) == Exchange(prompt="go deeper", reply='🔍 "q1"\nnew answer')
    assert exchange_of([]) is None


def test_the_estimate_of_the_sample_config_has_every_agent() -> None:
    estimate = load_estimate(CONFIG)
    assert not isinstance(estimate, str)
    assert len(estimate.agents) == 8 and estimate.usd.expected > 0


def test_the_estimate_of_a_broken_config_explains_instead_of_raising(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("program: {name: x}\n")
    explained = load_estimate(bad)
    assert isinstance(explained, str) and explained.startswith(f"Cannot read {bad}")


def test_runs_and_documents_of_an_empty_or_missing_dir(tmp_path: Path) -> None:
    assert list_runs(tmp_path / "nowhere") == []
    run = tmp_path / "r"
    (run / "reports").mkdir(parents=True)
    (run / "reports" / "market.md").write_text("# Market\n")
    (run / "report.md").write_text("# Final\n")
    (run / "events.jsonl").write_text('{"kind": "run_started"}\n')
    docs = run_documents(run)
    assert [d.title for d in docs] == ["final report", "market", "journal (events.jsonl)"]
    assert "```json" in read_document(docs[-1].path)


@given(st.text(max_size=60), st.integers(min_value=3, max_value=50))
def test_a_middle_cut_keeps_both_ends_and_fits(text: str, width: int) -> None:
    cut = middle(text, width)
    assert len(cut) <= width
    if len(text) <= width:
        assert cut == text
    else:
        head, tail = cut.split("…")[0], cut.rsplit("…", 1)[-1]
        assert text.startswith(head) and text.endswith(tail) and len(cut) == width


@given(st.integers(min_value=0, max_value=10_000))
def test_counts_take_the_right_number(n: int) -> None:
    assert plural(n, "search") == (f"{n} search" if n == 1 else f"{n} searches")
    assert plural(n, "agent") == (f"{n} agent" if n == 1 else f"{n} agents")


entries = st.builds(
    CheckpointInfo,
    id=st.uuids().map(str),
    seq=st.integers(1, 50),
    agent_id=st.sampled_from(["market", "policy"]),
    layer=st.just(1),
    turn=st.integers(1, 4),
    created_at=st.just(0.0),
    status=st.sampled_from(["ok", "corrupt"]),
    cost_usd=st.just(1.0),
    tokens=st.sampled_from([100, 200]),
    agent_status=st.just("running"),
    path=st.just(Path("checkpoints/cp.json")),
    problem=st.none(),
)


@given(st.lists(entries, max_size=20))
def test_distinct_checkpoints_keep_the_latest_of_each_state_in_seq_order(
    items: list[CheckpointInfo],
) -> None:
    shown = distinct(items)
    keys = [(e.agent_id, e.turn, e.tokens, e.status) for e in shown]
    assert len(keys) == len(set(keys)) == len({(e.agent_id, e.turn, e.tokens, e.status) for e in items})
    assert [e.seq for e in shown] == sorted(e.seq for e in shown)
    for entry in shown:
        same = [
            e
            for e in items
            if (e.agent_id, e.turn, e.tokens, e.status)
            == (entry.agent_id, entry.turn, entry.tokens, entry.status)
        ]
        assert entry.seq == max(e.seq for e in same)


def test_a_report_planted_as_a_fifo_or_a_link_is_refused_not_read(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "reports").mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("not the run's")
    os.mkfifo(run / "reports" / "fifo.md")  # a plain read would block for ever
    (run / "reports" / "link.md").symlink_to(secret)
    (run / "events.jsonl").write_text("".join(f'{{"n": {i}}}\n' for i in range(1000)))
    shown = {doc.title: read_document(doc.path) for doc in run_documents(run)}
    assert shown["fifo"].startswith("*Cannot read") and shown["link"].startswith("*Cannot read")
    assert "not the run's" not in shown["link"]
    journal = shown["journal (events.jsonl)"]  # its last lines only
    assert '{"n": 999}' in journal and '{"n": 0}' not in journal


PROBE = """
import asyncio, sys, threading
from pathlib import Path
import tui.data

class Watch:  # where the SDK is imported: the loop's thread would freeze the app meanwhile
    def find_spec(self, name, path=None, target=None):
        if name == "anthropic":
            print("anthropic imported on", threading.current_thread().name)
        return None

sys.meta_path.insert(0, Watch())

async def main() -> None:
    factory = tui.data.{factory}
    try:
        await factory()  # assembled, never run: the process ends here
    except Exception as error:  # a run that cannot start is not this test's business
        print("factory ended:", type(error).__name__)

threading.current_thread().name = "loop"
asyncio.run(main())
"""


@pytest.mark.parametrize(
    "factory",
    [
        "start_factory(Path({config!r}), Path({runs!r}), simulate=True)",
        "resume_factory(Path({runs!r}), 'no-such-run', None, simulate=True)",
    ],
)
def test_a_run_started_from_the_app_imports_the_sdk_off_the_loop(factory: str, tmp_path: Path) -> None:
    script = PROBE.replace("{factory}", factory.format(config=str(CONFIG), runs=str(tmp_path)))
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=CONFIG.parent, capture_output=True, text=True, timeout=120
    )
    assert "anthropic imported on" in result.stdout, result.stderr
    assert "anthropic imported on loop" not in result.stdout
