"""A run remembers where it runs: a resume never turns simulated work into paid API calls.

A recording HTTP server stands in for the real API (``ANTHROPIC_BASE_URL``, with a key set): for
every way the run's files can be damaged, it must receive nothing unless the user asks for it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core import runner
from core.cli import main
from core.control import RunStatus
from core.engine.orchestrator import Orchestrator
from core.events import Event, TurnCompleted
from core.runner import start_run
from tests.core import programs


class Recorder(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.paths: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        assert isinstance(self.server, Recorder)
        self.server.paths.append(self.path)
        body = b'{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}'
        self.send_response(401)  # fatal for the run: the test needs no retries
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def paid_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-real-looking-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    yield server
    server.shutdown()
    server.server_close()


def interrupted_simulated_run(tmp_path: Path) -> Path:
    data = programs.program([programs.agent("a"), programs.agent("b")], max_turns=3)
    config = programs.write(tmp_path, data)

    async def go() -> Path:
        orchestrator = await start_run(config, tmp_path / "runs", simulate=True)

        def stop_after_first(event: Event) -> None:
            if isinstance(event, TurnCompleted):
                orchestrator.stop()

        orchestrator.bus.listen(stop_after_first)
        outcome = await orchestrator.run()
        assert outcome.status is RunStatus.INTERRUPTED
        return outcome.run_dir

    return asyncio.run(go())


def resume(run: Path, *flags: str) -> int:
    return main(["resume", run.name, "--headless", "--runs-dir", str(run.parent), *flags])


@pytest.mark.parametrize("damage", ["removed", "corrupt", "not an object"])
def test_a_simulated_run_without_its_summary_resumes_on_the_simulator(
    tmp_path: Path, paid_api: Recorder, damage: str
) -> None:
    run = interrupted_simulated_run(tmp_path)
    summary = run / "summary.json"
    if damage == "removed":
        summary.unlink()
    elif damage == "corrupt":
        summary.write_bytes(summary.read_bytes()[:40])
    else:
        summary.write_text("[]")
    assert resume(run) == 0
    assert paid_api.paths == []
    assert json.loads(summary.read_text())["status"] == "completed"


@pytest.mark.parametrize("damage", ["removed", "corrupt", "wrong shape"])
def test_missing_or_damaged_run_metadata_is_an_error_naming_the_file_and_the_fix(
    tmp_path: Path, paid_api: Recorder, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = interrupted_simulated_run(tmp_path)
    meta = run / "run.json"
    if damage == "removed":
        meta.unlink()
    elif damage == "corrupt":
        meta.write_text('{"simulated": tr')
    else:
        meta.write_text('{"simulated": "yes"}')
    capsys.readouterr()
    assert resume(run) == 2
    err = capsys.readouterr().err
    assert str(meta) in err and "--simulate" in err and "--api" in err and "Traceback" not in err
    assert paid_api.paths == []
    # The explicit choice works, and is remembered.
    assert resume(run, "--simulate") == 0
    assert paid_api.paths == []
    assert json.loads(meta.read_text())["simulated"] is True


def test_run_metadata_holds_the_endpoint_but_never_the_key(tmp_path: Path, paid_api: Recorder) -> None:
    run = interrupted_simulated_run(tmp_path)
    text = (run / "run.json").read_text()
    assert json.loads(text)["simulated"] is True
    assert "sk-ant" not in "".join(p.read_text(errors="replace") for p in run.rglob("*") if p.is_file())


def test_an_api_run_is_not_moved_to_another_base_url_implicitly(
    tmp_path: Path, paid_api: Recorder, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = interrupted_simulated_run(tmp_path)
    (run / "run.json").write_text(
        json.dumps({"format": 1, "simulated": False, "base_url": "https://gateway.example/v1"})
    )
    capsys.readouterr()
    assert resume(run) == 2
    err = capsys.readouterr().err
    assert "https://gateway.example/v1" in err and paid_api.url in err and "--api" in err
    assert paid_api.paths == []
    # --api is the explicit switch: it goes where ANTHROPIC_BASE_URL points (and fails there).
    assert resume(run, "--api") == 4
    assert paid_api.paths, "the explicit --api did reach the configured endpoint"
    assert json.loads((run / "run.json").read_text())["base_url"] == paid_api.url


def test_public_url_drops_credentials() -> None:
    from core.persistence.runmeta import public_url

    assert public_url("https://user:secret@gw.example:8443/v1/?key=abc#x") == "https://gw.example:8443/v1"


@pytest.mark.parametrize("how", ["start", "resume"])
def test_a_bug_while_a_run_is_set_up_leaves_its_traceback_in_run_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """The app cannot show a traceback: the run's run.log keeps it, for a bug report."""
    run = interrupted_simulated_run(tmp_path) if how == "resume" else None

    async def broken_assembly(**_: object) -> Orchestrator:
        raise AttributeError("a bug in the assembly")

    monkeypatch.setattr(runner, "_assemble", broken_assembly)
    runs = tmp_path / "runs"
    config = programs.write(tmp_path, programs.program([programs.agent("a")]))

    async def set_up() -> Orchestrator:
        if run is None:
            return await start_run(config, runs, simulate=True)
        return await runner.resume_run(runs, run.name, simulate=True)

    with pytest.raises(AttributeError):
        asyncio.run(set_up())
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    text = (run_dir / "run.log").read_text()
    assert "the run could not start" in text and "Traceback" in text and "broken_assembly" in text
