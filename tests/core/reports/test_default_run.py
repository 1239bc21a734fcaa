"""The shipped program on the simulator: a run whose reports a reader can trust, checked from outside."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.cli import main
from core.config.loader import load_config
from core.persistence.checkpoints import CheckpointStore
from core.persistence.rundir import RunDir
from core.reports.citethrough import LABELS, split_labels
from core.reports.document import plain_inline
from core.reports.findings import CITATION, findings_paragraphs
from core.reports.parse import parse_report
from core.reports.sources import ConversationSources
from core.reports.verify import report_files, report_links, returned_urls
from core.runner import start_run
from tests.core import programs


async def test_the_default_run_verifies_and_its_reports_carry_their_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    orchestrator = await start_run(programs.default_program_fast(tmp_path), tmp_path / "runs", simulate=True)
    run = RunDir((await orchestrator.run()).run_dir)

    assert main(["verify", str(run.path)]) == 0, capsys.readouterr().out
    returned = returned_urls(run)
    links = [url for path in report_files(run) for _, url in report_links(path.read_text())]
    assert links and all(url in returned for url in links), "every URL in every report came from a search"

    summary = json.loads(run.summary_path.read_text())
    reports = {a["id"]: parse_report((run.path / a["report"]).read_text()) for a in summary["agents"]}
    point = CheckpointStore(run.path).restore_point()
    layer1 = [a["id"] for a in summary["agents"] if a["layer"] == 1]
    for agent_id in layer1:
        cited = set(ConversationSources.of(point.agents[agent_id].messages).cited)
        assert cited <= {s.url for s in reports[agent_id].sources}, agent_id

    synthesis = point.agents["synthesis"]
    turn = synthesis.messages[synthesis.agent_state["report_from"] :]
    written = "".join(b.get("text", "") for m in turn if m["role"] == "assistant" for b in m["content"])
    labels = {pair for m in LABELS.finditer(written) for pair in split_labels(m.group(1))}
    originals = {s.url for a, n in labels for s in reports[a].sources if s.number == n}
    layer1_urls = {s.url for a in layer1 for s in reports[a].sources}
    assert len(originals & layer1_urls) >= 3
    assert originals <= {s.url for s in reports["synthesis"].sources}

    document = (run.path / "report.md").read_text()
    lines = document.splitlines()
    assert sum(line.startswith("# ") for line in lines) == 1
    assert sum(line.strip() == "## Sources" for line in lines) == 1
    header = document.split("\n## ", 1)[0]
    assert "SIMULATED" in header and "Will sodium-ion batteries displace" in header and run.run_id in header

    # The question is the title; the findings cite their sources inline, and every citation resolves.
    config = load_config(run.config_copy_path)
    assert lines[0] == "# " + plain_inline(config.program.question)
    assert "## Report" not in document
    for path in report_files(run):
        text = path.read_text()
        paragraphs = findings_paragraphs(text)
        cited = sum(p.cites for p in paragraphs)
        if path == run.final_report_path:
            assert paragraphs and cited >= 0.8 * len(paragraphs), [
                p.text[:60] for p in paragraphs if not p.cites
            ]
        listed = {s.number: s.url for s in parse_report(text).sources}
        for number, url in CITATION.findall(text.split("\n## Sources", 1)[0]):
            assert listed[int(number)] == url, (path.name, number)
    layer1_cited = [p.cites for a in layer1 for p in findings_paragraphs(run.report_path(a).read_text())]
    assert sum(layer1_cited) >= 0.8 * len(layer1_cited)

    # A citation that points nowhere fails verify, naming the place.
    first = CITATION.search(document)
    assert first is not None
    broken = document.replace(first.group(0), "[99]", 1)
    run.final_report_path.write_text(broken)
    capsys.readouterr()
    assert main(["verify", str(run.path)]) == 1
    line = broken[: broken.index("[99]")].count("\n") + 1
    assert f"report.md:{line}: [99] points to no source" in capsys.readouterr().out
