"""The headless core never loads the terminal UI (docs/ARCHITECTURE.md, "Layers")."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import core
from core.telemetry.settings import NEEDS_EXTRA, extra_installed

ROOT = Path(__file__).resolve().parents[2]


def optional_modules() -> frozenset[str]:
    """Modules that need an extra this environment lacks (the otel extra: core.telemetry's exporters)."""
    return frozenset() if extra_installed() else frozenset(NEEDS_EXTRA)


def core_modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages(core.__path__, prefix="core.")
        if not info.name.endswith("__main__") and info.name not in optional_modules()
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


#: What reading a configuration or listing runs must never load: the SDK (over a second to import),
#: the simulator (its server pulls in aiohttp), the engine, and the app.
HEAVY = ("anthropic", "aiohttp", "core.simulator", "core.engine", "textual", "tui")


def loaded_after(script: str) -> set[str]:
    """Top-level and ``core.*`` package names in ``sys.modules`` after ``script`` runs in a fresh process."""
    probe = script + "\nimport sys\nprint('\\n'.join(sys.modules))\n"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


def test_reading_a_config_loads_neither_the_simulator_nor_the_sdk() -> None:
    modules = loaded_after("from core.config.loader import load_config\nload_config('research_config.yaml')")
    assert "core.config.loader" in modules and "pydantic" in modules
    assert heavy_in(modules) == []
