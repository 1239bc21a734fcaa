"""Reports on the simulator: sources survive report turns that cite nothing; later layers cite through."""

from __future__ import annotations

from pathlib import Path

from core.control import RunStatus
from core.persistence.checkpoints import CheckpointStore
from core.reports.citethrough import LABELS, split_labels
from core.reports.parse import parse_report
from core.reports.sources import ConversationSources
from core.runner import start_run
from core.simulator.responder import UNCITED_REPORT_DIRECTIVE
from tests.core import programs


async def test_every_report_lists_its_conversations_sources_when_no_report_turn_cites_anything(
    tmp_path: Path,
) -> None:
    layer1 = [programs.agent("alpha"), programs.agent("beta"), programs.agent("gamma")]
    data = programs.program(
        layer1,
        [programs.agent("omega", reads=["layer-1"])],
        max_turns=3,
        defaults={"report_prompt": f"Write your report now. {UNCITED_REPORT_DIRECTIVE}"},
    )
    orchestrator = await start_run(programs.write(tmp_path, data), tmp_path / "runs", simulate=True)
    outcome = await orchestrator.run()
    assert outcome.status is RunStatus.COMPLETED

    point = CheckpointStore(outcome.run_dir).restore_point()
    reports = {a: parse_report((outcome.run_dir / "reports" / f"{a}.md").read_text()) for a in point.agents}
    for agent_id, checkpoint in point.agents.items():
        messages = checkpoint.messages
        start = checkpoint.agent_state["report_from"]
        report_turn = [b for m in messages[start:] if m["role"] == "assistant" for b in m["content"]]
        assert report_turn and not any(b.get("citations") for b in report_turn), "the directive held"
        assert not any(b["type"] == "server_tool_use" for b in report_turn)
        cited = set(ConversationSources.of(messages).cited)
        assert cited, f"{agent_id} cited pages in its research turns"
        listed = {s.url for s in reports[agent_id].sources}
        assert cited <= listed, f"{agent_id}: pages its conversation cited are missing from its Sources"

    omega = point.agents["omega"]
    turn = omega.messages[omega.agent_state["report_from"] :]
    written = "".join(b.get("text", "") for m in turn if m["role"] == "assistant" for b in m["content"])
    labels = [pair for m in LABELS.finditer(written) for pair in split_labels(m.group(1))]
    originals = {next(s.url for s in reports[a].sources if s.number == n) for a, n in labels}
    assert len(originals) >= 3, "the synthesis cites at least three layer-1 sources"
    omega_report = reports["omega"]
    assert originals <= {s.url for s in omega_report.sources}
    assert all(f"]({url})" in omega_report.body for url in originals), "labels became links to the originals"
    assert "[alpha:" not in omega_report.body and "[beta:" not in omega_report.body
