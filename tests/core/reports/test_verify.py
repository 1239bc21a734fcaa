"""``verify RUN`` on a real simulated run: all holds, and each kind of tampering is named."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.cli import main
from core.persistence.rundir import RunDir
from core.reports.verify import report_files, report_links, returned_urls, verify_run
from core.runner import start_run
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
    links = [p for p in problems if ": links " in p]  # (a [[7]] also cites a number its Sources lack)
    assert links == [f"{place}:{at + 1}: links {url}, which no search in this run returned"]


def test_billed_dollars_passed_off_as_unconfirmed_are_named_against_the_journal(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The totals still add up (cost = billed + unconfirmed), but the journal's reported usage says
    what was billed: moving a quarter from billed to unconfirmed is named, each with its figure."""
    code, out = verify(run, capsys)
    summary = json.loads((run / "summary.json").read_text())
    assert code == 0 and f"${summary['billed_usd']:.4f} billed (the usage the API reported)" in out
    summary["billed_usd"] = round(summary["billed_usd"] - 0.25, 6)
    summary["unconfirmed_usd"] = round(summary["unconfirmed_usd"] + 0.25, 6)
    (run / "summary.json").write_text(json.dumps(summary))
    code, out = verify(run, capsys)
    assert code == 1
    assert "summary.json: billed_usd" in out and "summary.json: unconfirmed_usd" in out


# --- only checkpoints the journal recorded for the run's agents are trusted ----------------------


@pytest.fixture(scope="module")
def other_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another program's run: its own agents, searches and URLs."""
    root = tmp_path_factory.mktemp("other")
    data = programs.program([programs.agent("gamma")], max_turns=2, simulator={"seed": 11})
    data["program"]["question"] = "Which cities lead in tidal energy pilots?"
    config = programs.write(root, data)

    async def run() -> Path:
        return (await (await start_run(config, root / "runs", simulate=True)).run()).run_dir

    return asyncio.run(run())


def _cite(run: Path, url: str) -> None:
    with (run / "reports" / "alpha.md").open("a", encoding="utf-8") as handle:
        handle.write(f"\nAs [this page]({url}) shows.\n")


def test_a_checkpoint_copied_from_another_run_is_named_and_its_urls_are_not_trusted(
    run: Path, other_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copied = sorted((other_run / "checkpoints").glob("*.json"))[0]
    shutil.copy2(copied, run / "checkpoints" / copied.name)
    borrowed = sorted(returned_urls(RunDir(other_run)) - returned_urls(RunDir(run)))[0]
    _cite(run, borrowed)
    code, out = verify(run, capsys)
    assert code == 1
    assert f"checkpoints/{copied.name}: not recorded in events.jsonl" in out
    assert f"links {borrowed}, which no search in this run returned" in out


def _forge(run: Path, source: Path, name: str, url: str) -> Path:
    """A checkpoint whose every hash is recomputed, whose search "returned" ``url``."""
    from core.persistence.checkpoints import _digest, _extend_chain, decode_checkpoint, encode_checkpoint

    seq, agent, turn = re.match(r"(\d+)-(.+)-t(\d+)$", name).groups()  # type: ignore[union-attr]
    body = decode_checkpoint(source.read_bytes(), source.stem)
    result = {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_x",
              "content": [{"type": "web_search_result", "title": "Login", "url": url}]}  # fmt: skip
    messages = [{"role": "user", "content": "brief"}, {"role": "assistant", "content": [result]}]
    body.update(id=name, seq=int(seq), agent_id=agent, turn=int(turn), base=True, prev=None, offset=0,
                messages=messages, count=len(messages),
                chain=_extend_chain("0" * 64, [_digest(m) for m in messages]))  # fmt: skip
    path = run / "checkpoints" / f"{name}.json"
    path.write_bytes(encode_checkpoint(body))
    return path


@pytest.mark.parametrize("replace", [False, True], ids=["new file", "a recorded one replaced"])
def test_a_forged_checkpoint_with_recomputed_hashes_is_named_and_returns_nothing(
    run: Path, replace: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoints = sorted((run / "checkpoints").glob("*-alpha-*.json"))
    name = checkpoints[-1].stem if replace else "000999-alpha-t009"
    phishing = "https://login.bank-example.example/verify-account"
    forged = _forge(run, checkpoints[-1], name, phishing)
    assert verify_run(RunDir(run)).problems  # a sanity check that it reads as a checkpoint at all
    _cite(run, phishing)
    code, out = verify(run, capsys)
    assert code == 1
    what = "differs from the checkpoint events.jsonl recorded" if replace else "not recorded in events.jsonl"
    assert f"checkpoints/{forged.name}: {what}" in out
    assert f"links {phishing}, which no search in this run returned" in out


@pytest.mark.parametrize(
    "form",
    [
        "[x](HTTPS://evil.example/a)",
        "see Https://evil.example/b here",
        "see www.evil.example/c here",
        "[x](javascript:alert(1))",
        "<javascript:alert(2)>",
        "[x](file:///etc/passwd)",
        "![x](data:image/png;base64,AAAA)",
        "[x](//evil.example/d)",
        "<HTTPS://evil.example/e>",
        '<a href="https://evil.example/f">x</a>',
        "[x][ref]\n\n[ref]: ftp://evil.example/g",
    ],
)
def test_every_link_a_markdown_viewer_renders_is_checked_whatever_its_form(
    run: Path, form: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = run / "reports" / "beta.md"
    lines = path.read_text(encoding="utf-8").splitlines()
    link, _, definition = form.partition("\n\n")  # a reference link's definition goes at the end
    lines[4:4] = ["", f"A claim {link} in the findings.", ""]
    path.write_text("\n".join([*lines, "", definition]) + "\n", encoding="utf-8")
    code, out = verify(run, capsys)
    assert code == 1
    problems = [line for line in out.splitlines() if "which no search in this run returned" in line]
    assert len(problems) == 1 and "reports/beta.md:6: links " in problems[0], out


def test_a_code_span_or_block_is_not_a_link(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with (run / "reports" / "beta.md").open("a", encoding="utf-8") as handle:
        handle.write("\nThe flag `https://evil.example/x` stays text.\n\n    www.evil.example/y\n")
    code, out = verify(run, capsys)
    assert code == 0, out


# --- numbered citations ----------------------------------------------------------------------


def test_a_citation_number_that_points_nowhere_is_named_with_its_place(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = run / "reports" / "alpha.md"
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line and not line.startswith(("#", "*", ">")))
    lines[at] += " Another claim [42]."
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out = verify(run, capsys)
    assert code == 1
    assert f"reports/alpha.md:{at + 1}: [42] points to no source" in out


def test_a_citation_whose_number_is_not_its_sources_entry_is_named(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = run / "report.md"
    text = path.read_text(encoding="utf-8")
    match = re.search(r"\[\[(\d+)\]\]\(([^)\s]+)\)", text)
    assert match is not None, "the final report cites its sources inline"
    wrong = int(match.group(1)) + 500
    path.write_text(text.replace(match.group(0), f"[[{wrong}]]({match.group(2)})", 1), encoding="utf-8")
    code, out = verify(run, capsys)
    assert code == 1
    assert f"cites [{wrong}], which its Sources list does not have" in out and "report.md:" in out


# --- the journal, read as a stream ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak from /proc")
def test_verify_reads_a_300_mb_journal_in_bounded_memory(run: Path) -> None:
    """300 MB of streamed text in events.jsonl: verify still agrees and its process stays under 100 MB."""
    line = json.dumps({"kind": "text_streamed", "run_id": run.name, "agent_id": "alpha", "text": "x" * 3900})
    chunk = ((line + "\n") * 256).encode()
    with (run / "events.jsonl").open("ab") as journal:
        for _ in range(300 * 1024 * 1024 // len(chunk) + 1):
            journal.write(chunk)
    assert (run / "events.jsonl").stat().st_size >= 300 * 1024 * 1024
    # VmHWM: this process's own peak (ru_maxrss would carry the forking pytest's peak across exec)
    probe = (
        "import re, sys\n"
        "from core.cli import main\n"
        "code = main(['verify', sys.argv[1]])\n"
        "peak = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
        "print('maxrss_kb', peak, file=sys.stderr)\n"
        "raise SystemExit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(run)], capture_output=True, text=True, cwd=programs.ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr
    peak_kb = int(re.search(r"maxrss_kb (\d+)", done.stderr).group(1))  # type: ignore[union-attr]
    assert peak_kb < 100 * 1024, f"verify peaked at {peak_kb / 1024:.0f} MB\n{done.stdout}"


def test_a_clean_run_whose_question_mentions_urls_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The question is the report's title, as text: its URLs are no claim of the run's to check."""
    data = programs.program([programs.agent("alpha")], [programs.agent("omega")], max_turns=2)
    data["program"]["question"] = (
        "Does https://www.iea.org/reports/batteries-2026 or www.irena.org agree that sodium-ion grid "
        "storage grows faster than LFP?"
    )
    config = programs.write(tmp_path, data)
    runs = tmp_path / "runs"
    assert main(["run", str(config), "--headless", "--simulate", "--runs-dir", str(runs)]) == 0
    (run,) = runs.iterdir()
    capsys.readouterr()
    code, out = verify(run, capsys)
    assert code == 0, out
    title = (run / "report.md").read_text(encoding="utf-8").splitlines()[0]
    assert title.startswith("# Does `https://www.iea.org/reports/batteries-2026` or `www.irena.org`"), title
