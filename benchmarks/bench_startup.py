"""Start-up of the console script: how long the commands that send nothing take to answer.

``--help``, ``validate``, ``estimate``, ``schema``, ``runs``, ``checkpoints RUN`` and ``verify RUN``
(on a run left by a small simulated run) each run as a user types them (the venv's
``research-orchestrator`` script, else ``python -m tui.launch``), in a fresh process, ``repeat``
times; the figure is the median wall time, beside the median of ``python -c pass`` on the same
machine at the same moment (the floor no Python command can beat). ``cli_startup_seconds`` is the
slowest command's median; the goal is 0.25 s on a quiet machine. Which heavy modules each command
imported (the SDK, the simulator, the app) is recorded too: start-up is kept fast by not importing
them, checked by ``tests/core/test_cli_imports.py`` and ``tests/tui/test_launch.py``.

The commands run with their bytecode cached, as an installed package has it: an environment with
``PYTHONDONTWRITEBYTECODE`` set would otherwise compile the project's modules from source on every
start (about 20 ms for ``validate``), which no user's installation does. The cache is written to a
scratch ``PYTHONPYCACHEPREFIX`` by an unmeasured first run of each command, never into the tree.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    DEFAULT_CONFIG,
    ROOT,
    bench_main,
    flat_program,
    process_cpu_seconds,
    scratch_dir,
    write_program,
)

HEAVY = (
    "anthropic",
    "aiohttp",
    "textual",
    "core.simulator.server",
    "core.engine.orchestrator",
    "core.runner",
)


def console_script() -> list[str]:
    script = Path(sys.executable).with_name("research-orchestrator")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "tui.launch"]


def cached_bytecode_env(cache: Path) -> dict[str, str]:
    """The environment with bytecode written to (and read from) ``cache``, as an installation has it."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(cache)}


def medians(command: list[str], repeat: int, cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Median wall and median CPU (user + system) seconds of ``command`` run ``repeat`` times.

    The CPU figure is steadier than the wall one on a busy machine (it leaves out waiting for a core).
    """
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(
            command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
        )
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


def simulated_run(tmp: Path) -> tuple[Path, str]:
    """A runs directory holding one small completed simulated run, and that run's id."""
    config = write_program(tmp, flat_program(3, max_turns=2))
    runs_dir = tmp / "runs"
    subprocess.run(
        [*console_script(), "run", str(config), "--headless", "--simulate", "--runs-dir", str(runs_dir)],
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=300,
    )
    (run_dir,) = runs_dir.iterdir()
    return runs_dir, run_dir.name


def run(quick: bool) -> dict[str, Any]:
    repeat = 5 if quick else 11
    with scratch_dir("bench-startup-") as tmp:
        runs_dir, run_id = simulated_run(tmp)
        at = ["--runs-dir", str(runs_dir)]
        commands = {
            "help": ["--help"],
            "validate": ["validate", str(DEFAULT_CONFIG)],
            "estimate": ["estimate", str(DEFAULT_CONFIG)],
            "schema": ["schema"],
            "runs": ["runs", *at],
            "checkpoints": ["checkpoints", run_id, *at],
            "verify": ["verify", run_id, *at],
        }
        figures: dict[str, Any] = {
            "cli_startup.repeat": repeat,
            "cli_startup.command": console_script()[-1],
            "cli_startup.bytecode": "cached",
        }
        env = cached_bytecode_env(tmp / "pycache")
        runs = {"python_pass": [sys.executable, "-c", "pass"]}
        runs |= {name: [*console_script(), *argv] for name, argv in commands.items()}
        for command in runs.values():  # write the bytecode and warm the file cache, not measured
            medians(command, 1, tmp, env)
        for name, command in runs.items():
            wall, cpu = medians(command, repeat, tmp, env)
            figures[f"cli_startup_seconds.{name}"] = wall
            figures[f"cli_startup_cpu_seconds.{name}"] = cpu
        for name, argv in commands.items():
            figures[f"cli_startup.heavy_imports.{name}"] = heavy_imports(argv, ROOT)
        figures["cli_startup_seconds"] = max(figures[f"cli_startup_seconds.{n}"] for n in commands)
        figures |= app_first_frame(tmp, 3 if quick else 7, env)
    return figures


# --- the app's first frame ----------------------------------------------------------------------


def first_frame_seconds(
    config: Path, runs_dir: Path, marker: str, env: dict[str, str]
) -> tuple[float, float]:
    """Wall seconds from starting ``run CONFIG --simulate`` in a terminal to the first output holding
    ``marker`` (an agent's id: the agents table is drawn with its rows), and the CPU seconds the
    process had used by then; then the run is stopped (SIGTERM: the app stops it cleanly, as a
    closed terminal does) and waited for."""
    import fcntl
    import pty
    import select
    import signal
    import struct
    import termios

    main_fd, child_fd = pty.openpty()
    fcntl.ioctl(child_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    command = [*console_script(), "run", str(config), "--simulate", "--runs-dir", str(runs_dir)]
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=runs_dir.parent,
        env={**env, "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "50"},
        stdin=child_fd,
        stdout=child_fd,
        stderr=child_fd,
        start_new_session=True,
    )
    os.close(child_fd)
    seen, drawn, cpu = b"", None, None
    try:
        deadline = started + 60
        while drawn is None and time.perf_counter() < deadline:
            ready, _, _ = select.select([main_fd], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(main_fd, 1 << 16)
            except OSError:  # the child closed the terminal
                break
            seen = seen[-len(marker) :] + chunk
            if marker.encode() in seen:
                drawn = time.perf_counter() - started
                cpu = process_cpu_seconds(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        end = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < end:  # drain, so its writes never block
            if select.select([main_fd], [], [], 0.2)[0]:
                try:
                    os.read(main_fd, 1 << 16)
                except OSError:
                    break
        if process.poll() is None:
            process.kill()
        process.wait()
        os.close(main_fd)
    if drawn is None or cpu is None:
        raise RuntimeError(f"the app never drew {marker!r}: {seen[-400:]!r}")
    return drawn, cpu


def app_first_frame(tmp: Path, repeat: int, env: dict[str, str]) -> dict[str, Any]:
    """``app_first_frame_seconds``: the median of ``repeat`` starts of the app on a new simulated run."""
    data = flat_program(3, max_turns=2)
    data["simulator"] = {"latency_ms": 2000}  # the run stays alive while the app is measured
    config = write_program(tmp / "app", data)
    marker = data["layers"][0]["agents"][0]["id"]
    first_frame_seconds(config, tmp / "app" / "runs", marker, env)  # warm the caches, not measured
    measured = [first_frame_seconds(config, tmp / "app" / "runs", marker, env) for _ in range(repeat)]
    return {
        "app_first_frame_seconds": statistics.median(wall for wall, _ in measured),
        "app_first_frame_cpu_seconds": statistics.median(cpu for _, cpu in measured),
        "app_first_frame.all": measured,
    }


if __name__ == "__main__":
    bench_main(run)
