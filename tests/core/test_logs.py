"""run.log: private, appended, masked for secrets, attached only while a run is in the block."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.cli import main
from core.errors import SetupError
from core.events import Event, TurnCompleted
from core.logs import RedactingFormatter, command_logging, run_log, setup_failures_logged
from core.persistence.atomic import DiskError
from core.runner import start_run
from tests.core import programs

log = logging.getLogger("core.test_logs")
SECRET_TEXT = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=8)


def record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("core.x", logging.ERROR, __file__, 1, message, args, exc_info)


@given(secret=SECRET_TEXT, before=st.text(max_size=20), after=st.text(max_size=20))
@settings(max_examples=200, deadline=None)
def test_a_known_secret_never_reaches_a_line(secret: str, before: str, after: str) -> None:
    formatter = RedactingFormatter([secret])
    for rec in (
        record(before + secret + after),
        record("key %s here", before + secret + after),
        record("failed", exc=RuntimeError(f"{before}{secret}{after}")),
    ):
        assert secret not in formatter.format(rec)


@given(tail=SECRET_TEXT.filter(lambda t: len(t) >= 4))
@settings(max_examples=100, deadline=None)
def test_api_key_and_bearer_shapes_are_masked_without_knowing_them(tail: str) -> None:
    formatter = RedactingFormatter()
    line = formatter.format(record("headers: x-api-key=sk-ant-%s authorization: Bearer %s", tail, tail * 2))
    assert f"sk-ant-{tail}" not in line and tail * 2 not in line
    assert line.count("[redacted]") == 2


def test_run_log_is_private_appends_and_holds_records_only_inside_the_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-ant-api03-" + "q" * 40
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    with command_logging(), run_log(tmp_path) as path:
        log.info("first run, key %s", key)
    log.warning("between runs")
    with command_logging(), run_log(tmp_path):
        log.info("resumed")
    text = path.read_text(encoding="utf-8")
    assert path == tmp_path / "run.log"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "first run" in text and "resumed" in text and text.index("first run") < text.index("resumed")
    assert "between runs" not in text
    assert key not in text and "[redacted]" in text


def test_an_older_wider_file_is_made_private(tmp_path: Path) -> None:
    (tmp_path / "run.log").write_text("old\n")
    (tmp_path / "run.log").chmod(0o644)
    with run_log(tmp_path) as path:
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("old\n")


def test_a_failure_escaping_the_run_is_logged_with_its_traceback(tmp_path: Path) -> None:
    def explode() -> None:
        raise ValueError("the disk said no")

    with pytest.raises(ValueError), command_logging(), run_log(tmp_path) as path:
        explode()
    text = path.read_text()
    assert "the run failed" in text and "Traceback" in text and "in explode" in text


def test_a_bug_while_a_run_is_set_up_is_logged_with_its_traceback_and_raised(tmp_path: Path) -> None:
    def assemble() -> None:
        raise TypeError("a bug")

    with pytest.raises(TypeError), setup_failures_logged(tmp_path):
        assemble()
    text = (tmp_path / "run.log").read_text()
    assert "the run could not start" in text and "Traceback" in text and "in assemble" in text


def test_a_user_error_while_a_run_is_set_up_is_not_logged(tmp_path: Path) -> None:
    """The front end tells it; the log is for what nobody could act on."""
    with pytest.raises(SetupError), setup_failures_logged(tmp_path):
        raise SetupError("no API key")
    assert not (tmp_path / "run.log").exists()


def test_a_log_that_cannot_be_opened_does_not_hide_the_bug(tmp_path: Path) -> None:
    with pytest.raises(TypeError), setup_failures_logged(tmp_path / "missing"):
        raise TypeError("a bug")


def test_an_unwritable_run_directory_is_a_disk_error(tmp_path: Path) -> None:
    with pytest.raises(DiskError, match=r"run\.log"), run_log(tmp_path / "missing"):
        pass


def test_verbose_shows_records_on_the_terminal_and_quiet_does_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with command_logging(verbose=True):
        log.debug("seen with verbose")
    with command_logging():
        log.info("not on the terminal")
    err = capsys.readouterr().err
    assert "seen with verbose" in err and "not on the terminal" not in err
    assert logging.getLogger("core").level == logging.NOTSET  # levels restored afterwards


def test_a_headless_run_writes_run_log_and_verbose_echoes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = programs.write(tmp_path, programs.program([programs.agent("a")], max_turns=1))
    runs = tmp_path / "runs"
    assert main(["run", str(config), "--headless", "--simulate", "--runs-dir", str(runs), "--verbose"]) == 0
    [run_dir] = list(runs.iterdir())
    text = (run_dir / "run.log").read_text()
    assert f"run {run_dir.name}: logging to run.log" in text and "run ended: completed" in text
    assert stat.S_IMODE((run_dir / "run.log").stat().st_mode) == 0o600
    assert "run ended: completed" in capsys.readouterr().err
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


def test_a_record_names_the_run_agent_and_request_it_is_about(tmp_path: Path) -> None:
    """A listener runs in the publishing agent's task: what it logs carries that agent's ids."""
    config = programs.write(
        tmp_path, programs.program([programs.agent("a"), programs.agent("b")], max_turns=1)
    )

    async def go() -> Path:
        orchestrator = await start_run(config, tmp_path / "runs", simulate=True)

        def note(event: Event) -> None:
            if isinstance(event, TurnCompleted):
                log.warning("turn of %s completed", event.agent_id)

        orchestrator.bus.listen(note)
        with command_logging(), run_log(orchestrator.run_dir):
            log.warning("before the run")
            outcome = await orchestrator.run()
        return outcome.run_dir

    run_dir = asyncio.run(go())
    lines = (run_dir / "run.log").read_text().splitlines()
    [before] = [line for line in lines if "before the run" in line]
    assert "[" not in before  # outside any run or agent: no ids
    journal = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    for turn in (e for e in journal if e["kind"] == "turn_completed"):
        [line] = [line for line in lines if f"turn of {turn['agent_id']} completed" in line]
        ids = f"[run={run_dir.name} agent={turn['agent_id']} request={turn['request_id']}]"
        assert ids in line, line
