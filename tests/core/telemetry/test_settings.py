"""Telemetry is off unless asked for, free when off, and asking for it without the extra says how
to install it (these tests need no OpenTelemetry package)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import main
from core.telemetry import settings
from core.telemetry.settings import TelemetrySettings, TelemetryUnavailable, resolve
from tests.core import programs

ROOT = Path(__file__).resolve().parents[3]


def test_off_unless_a_flag_or_the_standard_environment_asks() -> None:
    assert resolve(environ={}) is None
    assert resolve(environ={"OTEL_TRACES_EXPORTER": "none", "OTEL_SERVICE_NAME": "x"}) is None
    if not settings.extra_installed():
        pytest.skip("the otel extra is not installed: resolving an enabled telemetry needs it")
    assert resolve(otel=True, environ={}) == TelemetrySettings(otel=True)
    assert resolve(environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}) == TelemetrySettings(
        otel=True
    )
    assert resolve(metrics_port=9464, environ={}) == TelemetrySettings(metrics_port=9464)
    disabled = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}
    assert resolve(environ=disabled) is None


def test_a_detached_owner_is_given_the_same_settings() -> None:
    assert TelemetrySettings(otel=True, metrics_port=9464).to_args() == ["--otel", "--metrics-port", "9464"]
    assert TelemetrySettings().to_args() == []


def test_flags_without_the_extra_say_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(settings, "extra_installed", lambda: False)
    with pytest.raises(
        TelemetryUnavailable, match=r"--otel needs .* pip install 'research-orchestrator\[otel\]'"
    ):
        resolve(otel=True, environ={})
    # The environment alone (set for other programs) does not stop a run: no telemetry, a warning.
    assert resolve(environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}) is None
    config = programs.write(tmp_path, programs.program([programs.agent("a")]))
    code = main(
        [
            "run",
            str(config),
            "--headless",
            "--simulate",
            "--metrics-port",
            "9464",
            "--runs-dir",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "--metrics-port needs the OpenTelemetry extra" in capsys.readouterr().err
    assert not any(path.is_dir() for path in tmp_path.iterdir())  # refused before any run was created


def test_a_bad_port_is_refused_naming_it() -> None:
    with pytest.raises(TelemetryUnavailable, match="--metrics-port 70000 is not a TCP port"):
        resolve(metrics_port=70000, environ={})


#: What telemetry loads when on. (The SDK imports opentelemetry's API by itself, without exporting.)
TELEMETRY_MODULES = ("opentelemetry.sdk", "opentelemetry.exporter", "prometheus_client", "core.telemetry.run")


def test_a_run_without_telemetry_loads_none_of_it(tmp_path: Path) -> None:
    """Off is free: a whole simulated run (the command line, the runner, the engine) loads none of it."""
    config = programs.write(tmp_path, programs.program([programs.agent("a")], max_turns=1))
    argv = ["run", str(config), "--headless", "--simulate", "--runs-dir", str(tmp_path / "runs")]
    script = (
        f"import sys\nfrom core.cli import main\ncode = main({argv!r})\n"
        f"print(code, sorted(m for m in sys.modules if m.startswith({TELEMETRY_MODULES!r})))\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True, env=environ
    )
    assert result.stdout.strip().splitlines()[-1] == "0 []", result.stderr
