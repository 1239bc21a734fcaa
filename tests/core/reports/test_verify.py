"""``verify RUN`` on a real simulated run: all holds, and each kind of tampering is named."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.cli import main
from core.engine.runner import start_run
from core.persistence.rundir import RunDir
from core.reports.verify import report_files, report_links, returned_urls, verify_run
from tests.core import programs


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("verify")
    layer1 = [programs.agent("alpha"), programs.agent("beta")]
    data = programs.program(layer1, [programs.agent("omega", reads=["layer-1"])], max_turns=3)
    config = programs.write(root, data)

    async def run() -> Path:
        orchestrator = await start_run(config, root / "runs", simulate=True)
        return (await orchestrator.run()).run_dir

    return asyncio.run(run())


@pytest.fixture
def run(finished_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / finished_run.name
    shutil.copytree(finished_run, copy)
    return copy


def verify(run: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["verify", str(run)])
    return code, capsys.readouterr().out


def test_an_untouched_run_verifies_and_every_report_link_came_from_its_searches(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = verify(run, capsys)
    assert code == 0, out
    assert "checked checkpoints" in out and "checked summary.json" in out and "checked links" in out
    returned = returned_urls(RunDir(run))
    links = [
        url
        for path in [*run.glob("reports/*.md"), run / "report.md"]
        for _, url in report_links(path.read_text())
    ]
    assert links and all(url in returned for url in links)


@pytest.mark.parametrize("report", ["reports/alpha.md", "reports/omega.md", "report.md"])
def test_a_link_no_search_returned_is_named_with_its_report(
    run: Path, report: str, capsys: pytest.CaptureFixture[str]
) -> None:
    invented = "https://invented.example/never-searched"
    with (run / report).open("a", encoding="utf-8") as handle:
        handle.write(f"\nAs [shown here]({invented}).\n")
    code, out = verify(run, capsys)
    assert code == 1
    problem = next(line for line in out.splitlines() if invented in line)
    assert f"{report}:" in problem


@pytest.mark.parametrize("which", [0, -1])
def test_a_deleted_checkpoint_is_named(run: Path, which: int, capsys: pytest.CaptureFixture[str]) -> None:
    victim = sorted((run / "checkpoints").glob("*-alpha-*.json"))[which]
    victim.unlink()
    code, out = verify(run, capsys)
    assert code == 1 and victim.stem in out


def test_an_edited_agent_cost_is_named(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = json.loads((run / "summary.json").read_text())
    summary["agents"][1]["cost_usd"] += 0.25
    (run / "summary.json").write_text(json.dumps(summary))
    code, out = verify(run, capsys)
    assert code == 1
    assert "agent beta cost_usd" in out and "summary.json: cost_usd" in out


def test_an_edited_total_and_search_count_are_named(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = json.loads((run / "summary.json").read_text())
    summary["cost_usd"] = round(summary["cost_usd"] * 2, 6)
    summary["searches"] += 1
    (run / "summary.json").write_text(json.dumps(summary))
    code, out = verify(run, capsys)
    assert code == 1
    assert "summary.json: cost_usd" in out and "summary.json: searches" in out and "events.jsonl" in out


def test_a_corrupted_checkpoint_is_named(run: Path) -> None:
    victim = sorted((run / "checkpoints").glob("*.json"))[2]
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0x01
    victim.write_bytes(bytes(data))
    result = verify_run(RunDir(run))
    assert not result.ok and any(victim.stem in str(p) for p in result.problems)


def test_an_unknown_run_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "nothing-here", "--runs-dir", str(tmp_path)]) == 2
    assert "no run matches" in capsys.readouterr().err


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_an_invented_link_in_any_form_anywhere_is_named_with_its_file_and_line(
    finished_run: Path, data: st.DataObject
) -> None:
    run = RunDir(finished_run)
    path = data.draw(st.sampled_from(report_files(run)))
    original = path.read_text(encoding="utf-8")
    lines = original.splitlines()
    at = data.draw(st.integers(0, len(lines)))
    host = data.draw(st.from_regex(r"[a-z]{3,12}", fullmatch=True))
    url = f"https://{host}.invented.example/page-{data.draw(st.integers(0, 999))}"
    form = data.draw(st.sampled_from(["[x]({url})", "<{url}>", "see {url}.", "[[7]]({url})", "{url}"]))
    lines.insert(at, form.format(url=url))
    try:
        path.write_text("\n".join(lines), encoding="utf-8")
        problems = [str(p) for p in verify_run(run).problems]
    finally:
        path.write_text(original, encoding="utf-8")
    place = str(path.relative_to(run.path))
    assert problems == [f"{place}:{at + 1}: links {url}, which no search in this run returned"]
