"""One error root: every user error reaches the user as its message and its exit code, never a traceback."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from pathlib import Path

import pytest

import core
from core import cli
from core.cli import AppUnavailable, UsageError
from core.config.loader import ConfigError, ConfigIssue
from core.control import RunAlreadyComplete
from core.errors import (
    EXIT_COMPLETED,
    EXIT_FAILED,
    EXIT_INVALID,
    ResearchOrchestratorError,
    SetupError,
    UserError,
)
from core.persistence.atomic import DiskError, UnsafePathError
from core.persistence.rundir import RunRefError
from core.persistence.runlock import RunLocked
from core.persistence.runmeta import BaseUrlError
from core.remote.address import ChannelError, OwnerUnreachable
from core.remote.command import ControlRefused
from core.remote.owner import NoLiveOwner
from core.telemetry.settings import MetricsPortUnavailable, TelemetryUnavailable
from tests.core.test_import_hygiene import optional_modules

#: One of each user error core raises, as it raises it. A new one must be added here.
SAMPLES: list[UserError] = [
    UsageError("--port 70000 is not a TCP port: give 1 to 65535, or 0 for a free one"),
    AppUnavailable(),
    ConfigError("cfg.yaml", [ConfigIssue("layers.0.agents", 4, "at least one agent is needed")]),
    SetupError("no API key: set ANTHROPIC_API_KEY, or add --simulate"),
    DiskError(Path("runs/r1/summary.json"), "no space left on device writing runs/r1/summary.json"),
    UnsafePathError(Path("runs/r1/run.lock"), "runs/r1/run.lock is a symbolic link: refused"),
    RunRefError("no run matches 'nope' in runs; list them with: research-orchestrator runs"),
    RunLocked("r1", 4242, None, None),
    BaseUrlError("ANTHROPIC_BASE_URL is not an http(s)://host URL"),
    ChannelError("the owner answered something that is not the protocol"),
    OwnerUnreachable("run r1 is not live: no process owns it"),
    RunAlreadyComplete("run r1 is already complete"),
    NoLiveOwner("run r1 is not live: no process owns it; continue it with: research-orchestrator resume r1"),
    ControlRefused(
        "run r1: cannot kill a2: it is killed; a2 has finished (killed): there is nothing left to kill"
    ),
    TelemetryUnavailable("--otel needs the OpenTelemetry extra, which is not installed: pip install ..."),
    MetricsPortUnavailable(
        "the metrics endpoint cannot listen on 127.0.0.1 port 9464 (in use); pick another"
    ),
]


def core_user_errors() -> set[type[UserError]]:
    for info in pkgutil.walk_packages(core.__path__, prefix="core."):
        if not info.name.endswith("__main__") and info.name not in optional_modules():
            importlib.import_module(info.name)
    found: set[type[UserError]] = set()
    pending: list[type[UserError]] = [UserError]
    while pending:
        for sub in pending.pop().__subclasses__():
            pending.append(sub)
            if sub.__module__.startswith("core."):
                found.add(sub)
    return found


def test_every_user_error_of_core_has_a_sample() -> None:
    assert {type(error) for error in SAMPLES} == core_user_errors()


def raising(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    def dispatch(args: argparse.Namespace, open_app: object) -> int:
        raise error

    monkeypatch.setattr(cli, "_dispatch", dispatch)


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
def test_a_user_error_is_its_message_and_exit_code_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: UserError
) -> None:
    raising(monkeypatch, error)
    code = cli.main(["runs"])
    out, err = capsys.readouterr()
    assert code == error.exit_code
    told = err if code != EXIT_COMPLETED else out
    prefix = "error: " if code != EXIT_COMPLETED else ""
    assert told == f"{prefix}{error.describe()}\n"
    assert "Traceback" not in out + err and (out if code != EXIT_COMPLETED else err) == ""
    if not isinstance(error, ConfigError):  # a config error lists every issue, one per line
        assert told.count("\n") == 1


def test_exit_codes_are_the_documented_ones() -> None:
    assert {type(e): e.exit_code for e in SAMPLES if e.exit_code != EXIT_INVALID} == {
        RunAlreadyComplete: EXIT_COMPLETED,
        NoLiveOwner: EXIT_FAILED,  # control and attach --headless: no live owner
    }
    assert ConfigError("c.yaml", [ConfigIssue("program", 1, "required")]).describe() == (
        "invalid config\nc.yaml:1: program: required"
    )


def test_a_hint_is_told_on_its_own_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    error = SetupError("the run cannot start")
    error.hint = "add --simulate to run offline"
    raising(monkeypatch, error)
    assert cli.main(["runs"]) == EXIT_INVALID
    assert capsys.readouterr().err == "error: the run cannot start\nadd --simulate to run offline\n"


def test_a_message_from_a_file_is_told_with_its_control_characters_escaped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    raising(monkeypatch, RunRefError("no run matches '\x1b[31mred'"))
    assert cli.main(["runs"]) == EXIT_INVALID
    assert capsys.readouterr().err == "error: no run matches '\\x1b[31mred'\n"


def test_anything_else_is_a_bug_and_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    raising(monkeypatch, KeyError("agent"))
    with pytest.raises(KeyError):
        cli.main(["runs"])


def test_every_error_the_project_defines_has_the_one_root() -> None:
    core_user_errors()  # every module imported
    project = [
        cls
        for cls in _all_subclasses(Exception)
        if cls.__module__.startswith("core.") and cls.__module__ != "core.errors"
    ]
    assert project and all(issubclass(cls, ResearchOrchestratorError) for cls in project), [
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in project
        if not issubclass(cls, ResearchOrchestratorError)
    ]


def _all_subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    pending = [cls]
    while pending:
        for sub in pending.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                pending.append(sub)
    return found
