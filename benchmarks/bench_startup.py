"""Start-up of the console script: how long ``--help``, ``validate`` and ``runs`` take to answer.

Each command runs as a user types it (the venv's ``research-orchestrator`` script, else
``python -m tui.launch``), in a fresh process, ``repeat`` times; the figure is the median wall
time, beside the median of ``python -c pass`` on the same machine at the same moment (the floor no
Python command can beat). ``cli_startup_seconds`` is the slowest command's median; the goal is
0.25 s on a quiet machine. Which heavy modules each command imported (the SDK, the simulator, the
app) is recorded too: start-up is kept fast by not importing them, checked by
``tests/tui/test_launch.py``.
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import DEFAULT_CONFIG, ROOT, bench_main, scratch_dir

HEAVY = ("anthropic", "aiohttp", "textual", "core.simulator.server", "core.engine")


def console_script() -> list[str]:
    script = Path(sys.executable).with_name("research-orchestrator")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "tui.launch"]


def medians(command: list[str], repeat: int, cwd: Path) -> tuple[float, float]:
    """Median wall and median CPU (user + system) seconds of ``command`` run ``repeat`` times.

    The CPU figure is steadier than the wall one on a busy machine (it leaves out waiting for a core).
    """
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def heavy_imports(argv: list[str], cwd: Path) -> list[str]:
    """The heavy modules that ``main(argv)`` of the console script leaves in ``sys.modules``."""
    probe = (
        "import contextlib, io, sys\nfrom tui.launch import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    main({argv!r})\n"
        f"print(' '.join(sorted(m for m in sys.modules if m.startswith({HEAVY!r}))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True, check=True)
    return sorted(
        {name.split(".")[0] if not name.startswith("core.") else name for name in done.stdout.split()}
    )


def run(quick: bool) -> dict[str, Any]:
    repeat = 5 if quick else 11
    with scratch_dir("bench-startup-") as tmp:
        commands = {
            "help": ["--help"],
            "validate": ["validate", str(DEFAULT_CONFIG)],
            "runs": ["runs", "--runs-dir", str(tmp / "runs")],
        }
        figures: dict[str, Any] = {"cli_startup.repeat": repeat, "cli_startup.command": console_script()[-1]}
        medians([*console_script(), "--help"], 1, tmp)  # warm the file cache, not measured
        runs = {"python_pass": [sys.executable, "-c", "pass"]}
        runs |= {name: [*console_script(), *argv] for name, argv in commands.items()}
        for name, command in runs.items():
            wall, cpu = medians(command, repeat, tmp)
            figures[f"cli_startup_seconds.{name}"] = wall
            figures[f"cli_startup_cpu_seconds.{name}"] = cpu
        for name, argv in commands.items():
            figures[f"cli_startup.heavy_imports.{name}"] = heavy_imports(argv, ROOT)
        figures["cli_startup_seconds"] = max(figures[f"cli_startup_seconds.{n}"] for n in commands)
    return figures


if __name__ == "__main__":
    bench_main(run)
