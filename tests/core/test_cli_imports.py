"""The commands that send nothing to the API answer without importing the SDK, the simulator or the app.

``import anthropic`` alone costs over a second of CPU, so ``--help``, ``validate``, ``estimate``,
``schema``, ``runs``, ``checkpoints RUN`` and ``verify RUN`` must never load it (nor aiohttp, the
simulator's server, nor textual). Each runs here in a fresh interpreter, on a real run directory
left by a small simulated run, and must both do its job and leave none of them in ``sys.modules``.
How fast they answer is a benchmark (``benchmarks/bench_startup.py``), not a test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import main
from tests.core import programs

ROOT = Path(__file__).resolve().parents[2]
NEVER = ("anthropic", "aiohttp", "textual", "core.simulator", "core.api.sdk", "core.runner")


def is_never(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in NEVER)


def run_command(argv: list[str], cwd: Path) -> tuple[int, str, list[str]]:
    """``core.cli.main(argv)`` in a fresh interpreter: its exit code, its output, what it loaded."""
    probe = (
        "import contextlib, io, json, sys\n"
        "from core.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n"
        f"        code = main({argv!r})\n"
        "    except SystemExit as exit:\n"
        "        code = exit.code\n"
        "print(json.dumps({'code': code, 'out': out.getvalue(), 'modules': sorted(sys.modules)}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True, timeout=120, check=True
    )
    result = json.loads(done.stdout)
    return result["code"], result["out"], result["modules"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A directory holding ``config.yaml`` and ``runs/`` with one completed simulated run; its run id."""
    root = tmp_path_factory.mktemp("quick-commands")
    config = programs.write(root, programs.program([programs.agent("a"), programs.agent("b")]))
    assert main(["run", str(config), "--headless", "--simulate", "--runs-dir", str(root / "runs")]) == 0
    (run_dir,) = (root / "runs").iterdir()
    return root, run_dir.name


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--help"], "research-orchestrator"),
        (["validate", "config.yaml"], "is valid"),
        (["estimate", "config.yaml"], "expected"),
        (["schema"], '"$schema"'),
        (["runs"], "completed"),
        (["checkpoints", "RUN"], "ok"),
        (["verify", "RUN"], "ok: every check holds"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_a_command_that_sends_nothing_loads_neither_the_sdk_nor_the_simulator_nor_the_app(
    workspace: tuple[Path, str], argv: list[str], says: str
) -> None:
    root, run_id = workspace
    code, out, modules = run_command([run_id if arg == "RUN" else arg for arg in argv], root)
    assert code == 0, out
    assert says in out  # it did its job, on the real run
    assert "core.cli" in modules
    assert [m for m in modules if is_never(m)] == []


def test_schema_prints_the_shipped_file_without_building_the_model(workspace: tuple[Path, str]) -> None:
    code, out, modules = run_command(["schema"], workspace[0])
    assert code == 0 and json.loads(out)["title"] == "research-orchestrator research program"
    assert "pydantic" not in modules and "core.config.model" not in modules


def test_the_probe_sees_an_import_of_the_sdk(workspace: tuple[Path, str]) -> None:
    """The check can fail: a command that does load the SDK (here, the runner) is seen doing so."""
    root, run_id = workspace
    code, _, modules = run_command(["resume", run_id, "--headless", "--simulate"], root)
    assert code == 0  # the run was complete: resuming it says so and exits 0
    assert "anthropic" in modules and "core.runner" in modules
