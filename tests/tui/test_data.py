"""The adapter reads runs, checkpoint previews and estimates from core, degrading gracefully."""

from __future__ import annotations

from pathlib import Path

from tui.data import Exchange, estimate_text, exchange_of, list_runs, read_document, run_documents

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


def test_estimate_text_for_the_sample_config_names_dollars() -> None:
    assert "$" in estimate_text(CONFIG)


def test_estimate_text_of_a_broken_config_explains_instead_of_raising(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("program: {name: x}\n")
    assert estimate_text(bad).startswith(f"Cannot read {bad}")


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
