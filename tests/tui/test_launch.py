"""The console script: each command imports only what it needs, and core's command line runs without it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.core.test_import_hygiene import heavy_in, loaded_after

ROOT = Path(__file__).resolve().parents[2]


def command_modules(argv: list[str]) -> set[str]:
    """Modules loaded by the console script's ``main(argv)`` (``--help`` exits through SystemExit)."""
    return loaded_after(
        "import contextlib, io\n"
        "from tui.launch import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    main({argv!r})"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["validate", "research_config.yaml"],
        ["runs", "--runs-dir", "no-such-dir"],
        ["run", "--help"],
        ["verify", "no-such-run", "--runs-dir", "no-such-dir"],  # a user error, told without the SDK
        ["checkpoints", "no-such-run", "--runs-dir", "no-such-dir"],
    ],
    ids=" ".join,
)
def test_quick_commands_load_neither_the_sdk_nor_the_simulator_nor_the_app(argv: list[str]) -> None:
    modules = command_modules(argv)
    assert "core.cli" in modules
    assert [m for m in heavy_in(modules) if m not in ("tui", "tui.launch")] == []


def test_simulator_options_are_built_without_the_server() -> None:
    modules = command_modules(["simulator", "--help"])
    assert "core.simulator.cli" in modules
    assert [m for m in modules if m.startswith(("aiohttp", "anthropic", "core.simulator.server"))] == []


def test_core_command_line_without_the_app_says_to_use_headless(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", "run", "research_config.yaml", "--runs-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--headless" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_app_and_what_it_attaches_with_load_neither_the_sdk_nor_the_simulator() -> None:
    """``run`` and ``resume`` draw the app while the SDK imports in a worker thread, and ``attach``
    never needs it: the app, a run being assembled and an attached run are all loaded without it."""
    modules = loaded_after("import tui.app, core.starting, core.remote.attached")
    assert "textual" in modules
    never = ("anthropic", "aiohttp", "core.simulator", "core.runner")
    assert [m for m in modules if m.startswith(never)] == []
