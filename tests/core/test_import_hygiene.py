"""The headless core never loads the terminal UI (DESIGN.md section 2)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import core

ROOT = Path(__file__).resolve().parents[2]


def core_modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages(core.__path__, prefix="core.")
        if not info.name.endswith("__main__")
    )


def test_every_core_module_imports_without_textual() -> None:
    modules = core_modules()
    assert "core.engine.orchestrator" in modules and "core.simulator.server" in modules
    script = (
        "\n".join(f"import {name}" for name in modules) + "\nimport sys\nprint('textual' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False", result.stderr
