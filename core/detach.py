"""``run --detach``: the run's owner is a background process that outlives the terminal.

The command creates the run directory (so it can print the run id at once), then starts the
owner as ``python -m core.detach RUN_DIR`` in a session of its own: no controlling
terminal (closing the terminal or dropping SSH sends it no SIGHUP), stdin from /dev/null, stdout
and stderr appended to ``owner.log`` in the run directory. The owner serves the run's control
channel like any other owner, so ``attach`` watches and steers it from anywhere on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import SetupError
from core.persistence.rundir import RunDir
from core.persistence.runmeta import public_url
from core.remote.owner import record_starting_owner
from core.safe_text import printable

if TYPE_CHECKING:
    from core.config.model import Trust
    from core.telemetry.settings import TelemetrySettings


def spawn_owner(
    run_dir: RunDir, *, simulate: bool, trust: str | None = None, telemetry: TelemetrySettings | None = None
) -> subprocess.Popen[bytes]:
    """Start the run's owner in a new session, detached from this terminal."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    log = os.open(run_dir.owner_log_path, flags, 0o600)
    command = [sys.executable, "-m", "core.detach", str(run_dir.path.resolve())]
    if simulate:
        command.append("--simulate")
    if trust is not None:
        command += ["--trust", trust]
    if telemetry is not None:
        command += telemetry.to_args()
    try:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(log)


def start_detached(
    config_path: Path,
    runs_dir: Path,
    *,
    simulate: bool,
    trust: str | None = None,
    telemetry: TelemetrySettings | None = None,
) -> tuple[RunDir, int]:
    """Create the run and start its owner in the background; returns at once (the owner starts on)."""
    from core.config.loader import load_config
    from core.persistence.rundir import new_run_id

    config = load_config(config_path)
    run_dir = RunDir.create(runs_dir, new_run_id(config.program.name), config_path.read_bytes())
    process = spawn_owner(run_dir, simulate=simulate, trust=trust, telemetry=telemetry)
    record_starting_owner(run_dir, process.pid)
    # an app that started it may outlive it: reap it when it ends, so it is never left a zombie
    threading.Thread(target=process.wait, name=f"reap-owner-{process.pid}", daemon=True).start()
    return run_dir, process.pid


def detach_command(
    config_path: Path,
    runs_dir: Path,
    *,
    simulate: bool,
    trust: str | None = None,
    telemetry: TelemetrySettings | None = None,
) -> int:
    """``run --detach``: create the run, start its owner, say how to attach; exit 0 at once."""
    from core.api.credentials import NO_API_KEY, api_key_present

    if not simulate and not api_key_present():
        raise SetupError(NO_API_KEY)
    if not simulate:  # a base URL that is not one is said here, not in the background owner's log
        public_url(os.environ.get("ANTHROPIC_BASE_URL"))
    run_dir, pid = start_detached(config_path, runs_dir, simulate=simulate, trust=trust, telemetry=telemetry)
    where = "" if Path(runs_dir) == Path("runs") else f" --runs-dir {shlex.quote(str(runs_dir))}"
    print(f"run {run_dir.run_id}")
    print(f"started in the background (owner pid {pid}); it goes on when this terminal closes")
    print(printable(f"  watch and steer it: research-orchestrator attach {run_dir.run_id}{where}"))
    print(printable(f"  its log:            {run_dir.owner_log_path}"))
    return 0


# --- the owner process ----------------------------------------------------------------------------


async def own(
    run_dir: Path, *, simulate: bool, trust: Trust | None = None, telemetry: TelemetrySettings | None = None
) -> int:
    """Run a prepared run to its end as its owner; SIGTERM, SIGINT and SIGHUP stop it cleanly (the
    calls in flight finish their turn, within the grace), a second one at once."""
    from core.logs import run_log
    from core.runner import open_prepared_run

    orchestrator = await open_prepared_run(
        RunDir(run_dir), simulate=simulate, trust=trust, telemetry=telemetry
    )
    loop = asyncio.get_running_loop()
    signals = 0

    def stop() -> None:
        nonlocal signals
        signals += 1
        orchestrator.stop(now=signals > 1)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(signum, stop)
    with run_log(Path(run_dir)):
        outcome = await orchestrator.run()
    print(outcome.describe(), flush=True)
    if outcome.message:
        print(outcome.message, flush=True)
    return outcome.exit_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.detach", description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--simulate", action="store_true")
    parser.add_argument("--trust", choices=("default", "system"), default=None)
    parser.add_argument("--otel", action="store_true")
    parser.add_argument("--metrics-port", type=int, default=None)
    args = parser.parse_args(argv)
    from core.logs import command_logging

    print(f"owner pid {os.getpid()} of run {args.run_dir.name}", flush=True)
    with command_logging():  # run.log gets the run's records; owner.log (stderr) what escapes them
        trust: Trust | None = args.trust
        from core.telemetry.settings import resolve

        telemetry = resolve(otel=args.otel, metrics_port=args.metrics_port)
        return asyncio.run(own(args.run_dir, simulate=args.simulate, trust=trust, telemetry=telemetry))


if __name__ == "__main__":
    raise SystemExit(main())
