"""The ``research-orchestrator`` command line (DESIGN.md section 3): the parser and the headless commands.

Exit codes: 0 completed; 2 invalid config or arguments; 3 stopped by a budget cap; 4 failed;
130 interrupted. User errors print one clear message and never a traceback.

``core`` never imports the terminal app: the console script (``tui.launch``) passes an ``open_app``
callable; without one (``python -m core.cli``) the commands that open the app say to use ``--headless``.
Each command imports only what it needs, so ``--help``, ``validate`` and ``runs`` start fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from core.safe_text import printable

if TYPE_CHECKING:
    from core.control import RunControl
    from core.streams import GuardedStream

Factory = Callable[[], Awaitable["RunControl"]]
logger = logging.getLogger(__name__)


class AppOpener(Protocol):
    """Opens the terminal app and returns the exit code; given by the console script in ``tui``."""

    def __call__(
        self,
        *,
        runs_dir: Path,
        config_path: Path | None = None,
        control_factory: Factory | None = None,
        simulate: bool | None = None,
    ) -> int: ...


DEFAULT_CONFIG = Path("research_config.yaml")
DEFAULT_RUNS_DIR = Path("runs")
VERBOSE_HELP = "also show log records on the terminal (a run always logs to run.log in its directory)"


def _parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The whole command line; the simulator's options (and their imports) only when ``argv`` names it."""
    parser = argparse.ArgumentParser(
        prog="research-orchestrator",
        description="Run long, parallel, layered research programs on Claude. "
        "With no command, opens the terminal app on ./research_config.yaml.",
    )
    parser.add_argument(
        "--runs-dir", type=Path, default=DEFAULT_RUNS_DIR, help="where runs live (default: ./runs)"
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help="the config the app opens with no command (default: %(default)s)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def verbose_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)

    def runs_dir_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--runs-dir", type=Path, default=argparse.SUPPRESS, help="where runs live (default: ./runs)"
        )
        verbose_option(sub)

    run = commands.add_parser("run", help="start a run (the terminal app unless --headless)")
    run.add_argument("config", nargs="?", type=Path, default=DEFAULT_CONFIG, help="research config (YAML)")
    run.add_argument(
        "--headless",
        action="store_true",
        help="no terminal app: a live table on a terminal, log lines elsewhere",
    )
    run.add_argument("--simulate", action="store_true", help="use the built-in offline API simulator")
    run.add_argument(
        "--detach",
        action="store_true",
        help="run in a background process that outlives the terminal; prints the run id and exits",
    )
    runs_dir_option(run)

    attach = commands.add_parser(
        "attach", help="open the app on a live run owned by another process (e.g. run --detach)"
    )
    attach.add_argument("run", help="run id (or a unique prefix, or its directory)")
    runs_dir_option(attach)

    resume = commands.add_parser(
        "resume", help="resume a run from its latest checkpoint, or fork it from one"
    )
    resume.add_argument("run", help="run id (or a unique prefix, or its directory)")
    resume.add_argument(
        "--checkpoint",
        metavar="ID",
        help="fork a new run from this checkpoint (its id or a unique prefix of it)",
    )
    resume.add_argument(
        "--headless",
        action="store_true",
        help="no terminal app: a live table on a terminal, log lines elsewhere",
    )
    endpoint = resume.add_mutually_exclusive_group()
    endpoint.add_argument(
        "--simulate",
        action="store_const",
        const=True,
        default=None,
        help="continue on the simulator (default: where the run was started, from its run.json)",
    )
    endpoint.add_argument(
        "--api",
        dest="simulate",
        action="store_const",
        const=False,
        help="continue on the real, paid API at ANTHROPIC_BASE_URL (default: where the run was started)",
    )
    resume.add_argument(
        "--start-over",
        action="store_true",
        help="when no checkpoint of the run is usable, start it over (pays for every turn again)",
    )
    runs_dir_option(resume)

    runs = commands.add_parser("runs", help="list runs")
    runs_dir_option(runs)

    checkpoints = commands.add_parser("checkpoints", help="list a run's checkpoints with their integrity")
    checkpoints.add_argument("run", help="run id (or a unique prefix, or its directory)")
    runs_dir_option(checkpoints)

    validate = commands.add_parser("validate", help="validate a config (exit 0 valid, 2 invalid)")
    validate.add_argument(
        "config",
        nargs="?",
        type=Path,
        default=DEFAULT_CONFIG,
        help="research config (YAML; default: %(default)s)",
    )
    runs_dir_option(validate)

    estimate = commands.add_parser("estimate", help="pre-flight cost estimate (low / expected / high)")
    estimate.add_argument(
        "config",
        nargs="?",
        type=Path,
        default=DEFAULT_CONFIG,
        help="research config (YAML; default: %(default)s)",
    )
    runs_dir_option(estimate)

    verify = commands.add_parser(
        "verify",
        help="check a run: checkpoints, summary.json against checkpoints and journal, report links",
        description="Check a run's files agree: every checkpoint verifies; summary.json agrees with the "
        "checkpoints and events.jsonl; every link in every report was returned by a search in the run. "
        "Exit 0 when all hold, 1 otherwise.",
    )
    verify.add_argument("run", help="run id (or a unique prefix, or its directory)")
    runs_dir_option(verify)

    schema = commands.add_parser("schema", help="print the JSON Schema of research_config.yaml")
    runs_dir_option(schema)

    simulator = commands.add_parser(
        "simulator",
        help="serve the offline Anthropic API simulator",
        description="Serve the Anthropic Messages API simulator on loopback. Point the SDK at it with "
        "ANTHROPIC_BASE_URL=http://HOST:PORT and any ANTHROPIC_API_KEY.",
    )
    verbose_option(simulator)
    if "simulator" in argv:  # a subcommand is named exactly, so no other command needs these options
        from core.simulator.cli import add_cli_arguments

        add_cli_arguments(simulator)
    return parser


EXIT_PIPE_CLOSED = 141  # as a shell reports a process ended by SIGPIPE (`... | head -1`)
EXIT_FAILED = 4


def main(argv: Sequence[str] | None = None, *, open_app: AppOpener | None = None) -> int:
    """Run one command; ``open_app`` opens the terminal app (absent, those commands exit 2)."""
    from core.streams import guarded_output

    with guarded_output() as (out, err):
        code = _main(argv, open_app)
    return _output_code(code, out, err)


def _main(argv: Sequence[str] | None, open_app: AppOpener | None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = _parser(arguments).parse_args(arguments)
    from core.logs import command_logging

    try:
        with command_logging(verbose=args.verbose):
            code = _dispatch(args, open_app)
            sys.stdout.flush()  # a reader that went away is noticed here, not at shutdown
            return code
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # user-facing errors only; anything else is a bug worth a traceback
        from core.control import (
            EXIT_INVALID,
            RunAlreadyComplete,
        )  # imported late: keeps asyncio out of --help

        if isinstance(error, RunAlreadyComplete):
            print(printable(str(error), keep_newlines=True))
            return 0
        message = _user_error(error)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return EXIT_INVALID


def _output_code(code: int, *streams: GuardedStream) -> int:
    """The exit code once the output is accounted for: a reader that went away is a quiet 141; any
    other failure to write it (a full disk, a terminal gone) is said where it can still be read."""
    from core.streams import pipe_closed

    lost = [stream for stream in streams if stream.lost is not None]
    if not lost:
        return code
    if any(pipe_closed(stream.lost) for stream in lost):
        return EXIT_PIPE_CLOSED
    for stream in lost:
        reason = stream.lost.strerror if stream.lost is not None else None
        for other in streams:
            print(f"error: cannot write to {stream.name} ({reason}); its output is lost", file=other)
    return code or EXIT_FAILED


#: The errors a user can cause, by module and class. An error's class is loaded when the error exists,
#: so only modules already imported are looked at: a mistyped run id must not import the SDK (over a
#: second) just to be told apart from a SetupError.
USER_ERRORS = (
    ("core.config.loader", "ConfigError"),
    ("core.engine.runner", "SetupError"),
    ("core.persistence.atomic", "DiskError"),
    ("core.persistence.rundir", "RunRefError"),
    ("core.persistence.runlock", "RunLocked"),
    ("core.persistence.runmeta", "BaseUrlError"),
    ("core.remote.channel", "ChannelError"),
)


def _user_error(error: Exception) -> str | None:
    if isinstance(error, AppUnavailable | UsageError):
        return str(error)
    for module_name, class_name in USER_ERRORS:
        module = sys.modules.get(module_name)
        if module is not None and isinstance(error, getattr(module, class_name)):
            if class_name == "ConfigError":
                return f"invalid config\n{error.format()}"
            return printable(str(error), keep_newlines=True)
    return None


def _dispatch(args: argparse.Namespace, open_app: AppOpener | None) -> int:
    command = args.command
    if command is None:
        return _app(open_app)(runs_dir=args.runs_dir, config_path=args.config)
    if command == "validate":
        from core.config.loader import validate_command

        return validate_command(str(args.config), sys.stdout)
    if command == "estimate":
        return _estimate(args.config)
    if command == "schema":
        from core.config.schema import render_schema

        print(render_schema(), end="")
        return 0
    if command == "simulator":
        return _simulator(args)
    if command == "runs":
        return _list_runs(args.runs_dir)
    if command == "checkpoints":
        return _list_checkpoints(args.runs_dir, args.run)
    if command == "verify":
        return _verify(args.runs_dir, args.run)
    if command == "run":
        from core.config.loader import load_config

        load_config(args.config)  # invalid configs exit 2 before anything is created
        if args.detach:  # returns at once: the SDK is loaded by the background owner, not here
            from core.remote.detach import detach_command

            return detach_command(args.config, args.runs_dir, simulate=args.simulate)
        from core.engine.runner import start_run

        return _launch(
            lambda: start_run(args.config, args.runs_dir, simulate=args.simulate),
            open_app=None if args.headless else _app(open_app),
            runs_dir=args.runs_dir,
            # Runs resumed from the app keep the endpoint they were started on unless told.
            simulate=True if args.simulate else None,
        )
    if command == "attach":
        return _attach(args.runs_dir, args.run, open_app)
    if command == "resume":
        from core.engine.runner import resume_run
        from core.persistence.rundir import check_run_ref

        check_run_ref(args.run)  # before the app opens: a bad reference is one line, exit 2
        return _launch(
            lambda: resume_run(
                args.runs_dir,
                args.run,
                checkpoint_id=args.checkpoint,
                simulate=args.simulate,
                start_over=args.start_over,
                on_notice=_notice,
            ),
            open_app=None if args.headless else _app(open_app),
            runs_dir=args.runs_dir,
        )
    raise AssertionError(command)


class UsageError(Exception):
    """Arguments the parser accepts but the command cannot use; the message names the option and the fix."""


def _simulator(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from core.simulator import run_standalone
    from core.simulator.cli import settings_from_args

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a TCP port: give 1 to 65535, or 0 for a free one")
    try:
        settings = settings_from_args(args)
    except ValidationError as error:
        problems = (f"--{str(e['loc'][-1]).replace('_', '-')}: {e['msg']}" for e in error.errors())
        raise UsageError("invalid simulator options: " + "; ".join(problems)) from None
    try:
        run_standalone(settings, args.host, args.port)
    except OSError as error:  # in use, not an address of this machine, unresolvable, privileged
        raise UsageError(
            f"cannot listen on {printable(args.host)} port {args.port} ({error.strerror or error}); "
            "pick another --port (0 picks a free one) or --host (default 127.0.0.1)"
        ) from None
    return 0


class AppUnavailable(Exception):
    """A command that opens the terminal app was given where there is none (``python -m core.cli``)."""

    def __str__(self) -> str:
        return (
            "the terminal app is opened by the research-orchestrator command; "
            "here, add --headless (python -m core.cli run --headless ...)"
        )


def _app(open_app: AppOpener | None) -> AppOpener:
    if open_app is None:
        raise AppUnavailable
    if not (os.isatty(0) and os.isatty(2)):  # the app reads keys on stdin and draws on stderr
        raise UsageError(
            "the terminal app needs a terminal, and standard input or standard error is not one here "
            "(a pipe, a file, CI): add --headless to run or resume, or start it in a terminal"
        )
    return open_app


def _launch(
    factory: Factory, *, open_app: AppOpener | None, runs_dir: Path, simulate: bool | None = None
) -> int:
    """The run in the app when ``open_app`` is given, else headless."""
    if open_app is not None:
        return open_app(control_factory=factory, runs_dir=runs_dir, simulate=simulate)
    import asyncio

    return asyncio.run(_run_headless(factory))


def _notice(message: str) -> None:
    print(f"note: {printable(message)}", file=sys.stderr)


async def _run_headless(factory: Factory) -> int:
    """Run to the end; INT, TERM and HUP stop it with its state saved (exit 130), at any moment."""
    import asyncio
    import signal

    from core.headless import HeadlessDisplay
    from core.logs import run_log
    from core.streams import on_lost

    loop = asyncio.get_running_loop()
    setup = asyncio.current_task()
    started: list[RunControl] = []

    def stop() -> None:
        if started:
            started[0].stop()
        elif setup is not None:
            setup.cancel()  # still assembling: nothing has been sent yet

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # HUP: the terminal was closed
        loop.add_signal_handler(signum, stop)
    # Output that cannot be written (a reader gone, a terminal gone) stops the run as a closed terminal does.
    with on_lost(lambda: loop.call_soon_threadsafe(stop)):
        try:
            started.append(await factory())
        except asyncio.CancelledError:
            print("interrupted before the run started: nothing was sent", file=sys.stderr)
            return 130
        orchestrator = started[0]
        display = HeadlessDisplay()
        orchestrator.bus.listen(display)
        with run_log(orchestrator.run_dir), display:
            outcome = await orchestrator.run()
            logger.info("run ended: %s", outcome.describe())
        display.finish(outcome)  # the table or summary once, the outcome, and the report's path last
    return outcome.exit_code


def _attach(runs_dir: Path, run_ref: str, open_app: AppOpener | None) -> int:
    from core.persistence.rundir import RunDir
    from core.remote.attached import attach_run
    from core.remote.owner import live_owner, not_live

    run_dir = RunDir.open(runs_dir, run_ref)
    run_dir.check_sandbox()  # a link or a FIFO planted in it: refused, naming the path (exit 2)
    if live_owner(run_dir.path) is None:
        raise not_live(run_dir)
    return _app(open_app)(control_factory=lambda: attach_run(runs_dir, str(run_dir.path)), runs_dir=runs_dir)


def _estimate(config_path: Path) -> int:
    from core.budget.estimate import estimate, format_estimate
    from core.budget.pricing import PriceTable
    from core.config.loader import load_config

    config = load_config(config_path)
    print(format_estimate(estimate(config, PriceTable.from_config(config.pricing))))
    return 0


def _list_runs(runs_dir: Path) -> int:
    from core.persistence.rundir import list_runs
    from core.remote.owner import live_owner

    if runs_dir.exists() and not runs_dir.is_dir():
        shown = printable(str(runs_dir))
        raise UsageError(f"--runs-dir {shown} is not a directory; give the directory the runs are in")
    runs = list_runs(runs_dir)
    if not runs:
        print(f"no runs in {printable(str(runs_dir))}")
        return 0
    print(f"{'run':<48} {'status':<17} {'owner':<16} {'cost':>10}  forked from")
    for run in runs:
        parent = printable(f"{run.parent} @ {run.parent_checkpoint}" if run.parent else "")
        owner = live_owner(run.path)
        live = "" if owner is None else ("live" if owner.serving else "starting")
        if owner is not None and owner.pid:
            live += f" pid {owner.pid}"
        run_id, status = printable(run.run_id), printable(run.status)
        print(f"{run_id:<48} {status:<17} {live:<16} {run.cost_usd:>10.4f}  {parent}")
    return 0


def _list_checkpoints(runs_dir: Path, run_ref: str) -> int:
    import datetime

    from core.persistence.checkpoints import CheckpointStore
    from core.persistence.rundir import RunDir

    run_dir = RunDir.open(runs_dir, run_ref)
    infos = CheckpointStore(run_dir.path).list()
    if not infos:
        print(f"run {printable(run_dir.run_id)} has no checkpoints")
        return 0
    print(
        f"{'checkpoint':<28} {'agent':<16} {'turn':>4}  {'time':<8} {'run tokens':>10} {'agent $':>9} "
        f"{'run $':>9}  integrity"
    )
    for info in infos:
        when = datetime.datetime.fromtimestamp(info.created_at).strftime("%H:%M:%S")
        integrity = info.status if info.status == "ok" else f"corrupt ({printable(info.problem or '')})"
        print(
            f"{info.id:<28} {info.agent_id:<16} {info.turn:>4}  {when:<8} {info.tokens:>10} "
            f"{info.agent_cost_usd:>9.4f} {info.cost_usd:>9.4f}  {integrity}"
        )
    return 0


def _verify(runs_dir: Path, run_ref: str) -> int:
    from core.persistence.rundir import RunDir
    from core.reports.verify import verify_run

    run_dir = RunDir.open(runs_dir, run_ref)
    result = verify_run(run_dir)
    print(f"run {printable(run_dir.run_id)}")  # names and links come from files: escapes shown, not obeyed
    for line in result.checked:
        print(f"  checked {printable(line)}")
    for problem in result.problems:
        print(f"  problem {printable(str(problem))}")
    print("ok: every check holds" if result.ok else f"FAILED: {len(result.problems)} problem(s)")
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
