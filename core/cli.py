"""The ``research-orchestrator`` command line: the parser and the headless commands.

Its commands, flags and exit codes are a contract (docs/ARCHITECTURE.md, "Contracts").

Exit codes (:mod:`core.errors`): 0 completed; 2 invalid config or arguments; 3 stopped by a budget
cap; 4 failed; 130 interrupted; 141 output closed. A user error (:class:`core.errors.UserError`) is
told as one message with its exit code, never a traceback; anything else is a bug, with its traceback.

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

from core.errors import EXIT_COMPLETED, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_PIPE_CLOSED, UserError
from core.safe_text import printable

if TYPE_CHECKING:
    from core.control import RunControl
    from core.starting import LoadStart, Start, StartingRun
    from core.streams import GuardedStream
    from core.telemetry.settings import TelemetrySettings

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

    def trust_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--trust",
            choices=("default", "system"),
            default=None,
            help="whose certificates the API connection trusts: 'system' uses the operating system's "
            "trust store (a corporate root certificate installed there); default: the config's "
            "network.trust, else SSL_CERT_FILE / SSL_CERT_DIR when set, else the system's",
        )

    def telemetry_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--otel",
            action="store_true",
            help="export OpenTelemetry traces and metrics over OTLP/HTTP, as the standard OTEL_* "
            "variables say (on by itself when OTEL_EXPORTER_OTLP_ENDPOINT is set); needs the otel extra",
        )
        sub.add_argument(
            "--metrics-port",
            type=int,
            metavar="PORT",
            default=None,
            help="serve Prometheus metrics at http://127.0.0.1:PORT/metrics (0: a free port, logged); "
            "needs the otel extra",
        )

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
    trust_option(run)
    telemetry_options(run)
    runs_dir_option(run)

    attach = commands.add_parser(
        "attach", help="open the app on a live run owned by another process (e.g. run --detach)"
    )
    attach.add_argument("run", help="run id (or a unique prefix, or its directory)")
    attach.add_argument(
        "--headless",
        action="store_true",
        help="no terminal app: follow the run as run --headless prints it, until it ends "
        "(exit code as run --headless; ctrl+c stops following, the run goes on)",
    )
    runs_dir_option(attach)

    control = commands.add_parser(
        "control",
        help="pause, resume or kill an agent of a live run, or stop the run (through its control socket)",
        description="Act on a live run owned by another process (run --detach, run --headless, the app). "
        "Exit 0 done; 2 a request that cannot be done (unknown agent, agent already finished); "
        "4 no live owner.",
    )
    control.add_argument("run", help="run id (or a unique prefix, or its directory)")
    control.add_argument("verb", choices=("pause", "resume", "kill", "stop"), help="what to do")
    control.add_argument("agent", nargs="?", help="the agent's id (pause, resume and kill)")
    control.add_argument(
        "--now", action="store_true", help="stop: cancel the calls in flight at once instead of waiting"
    )
    runs_dir_option(control)

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
    trust_option(resume)
    telemetry_options(resume)
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
    verbose_option(validate)

    estimate = commands.add_parser("estimate", help="pre-flight cost estimate (low / expected / high)")
    estimate.add_argument(
        "config",
        nargs="?",
        type=Path,
        default=DEFAULT_CONFIG,
        help="research config (YAML; default: %(default)s)",
    )
    verbose_option(estimate)

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
    verbose_option(schema)

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
        return EXIT_INTERRUPTED
    except UserError as error:  # anything else is a bug: its traceback is shown
        return _tell(error)


def _tell(error: UserError) -> int:
    """The one place the command line tells a user error: its message, never a traceback, and its
    exit code. An exit code of 0 is an answer (the run is already complete), printed as output."""
    message = printable(error.describe(), keep_newlines=True)  # messages quote names from files
    if error.exit_code == EXIT_COMPLETED:
        print(message)
    else:
        print(f"error: {message}", file=sys.stderr)
    return error.exit_code


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
        from core.config.schema import shipped_schema

        print(shipped_schema(), end="")
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
        from core.starting import new_run

        config = load_config(args.config)  # invalid configs exit 2 before anything is created
        telemetry = _telemetry(args)
        if args.detach:  # returns at once: the SDK is loaded by the background owner, not here
            from core.detach import detach_command

            return detach_command(
                args.config, args.runs_dir, simulate=args.simulate, trust=args.trust, telemetry=telemetry
            )

        def load_start() -> Start:
            from core.runner import start_run

            return lambda bus: start_run(
                args.config,
                args.runs_dir,
                simulate=args.simulate,
                trust=args.trust,
                bus=bus,
                telemetry=telemetry,
            )

        return _launch(
            load_start,
            lambda: new_run(load_start, config, runs_dir=args.runs_dir, simulated=args.simulate),
            open_app=None if args.headless else _app(open_app),
            # Runs resumed from the app keep the endpoint they were started on unless told.
            simulate=True if args.simulate else None,
        )
    if command == "attach":
        return _attach(args.runs_dir, args.run, open_app, headless=args.headless)
    if command == "control":
        return _control(args.runs_dir, args.run, args.verb, args.agent, now=args.now)
    if command == "resume":
        from core.persistence.rundir import check_run_ref
        from core.starting import resumed_run

        check_run_ref(args.run)  # before the app opens: a bad reference is one line, exit 2
        telemetry = _telemetry(args)

        def load_resume() -> Start:
            from core.runner import resume_run

            return lambda bus: resume_run(
                args.runs_dir,
                args.run,
                checkpoint_id=args.checkpoint,
                simulate=args.simulate,
                start_over=args.start_over,
                on_notice=_notice,
                trust=args.trust,
                bus=bus,
                telemetry=telemetry,
            )

        return _launch(
            load_resume,
            lambda: resumed_run(load_resume, args.run, runs_dir=args.runs_dir),
            open_app=None if args.headless else _app(open_app),
        )
    raise AssertionError(command)


def _telemetry(args: argparse.Namespace) -> TelemetrySettings | None:
    """``--otel`` / ``--metrics-port`` and the OTEL_* environment (no OpenTelemetry import here)."""
    from core.telemetry.settings import resolve

    return resolve(otel=args.otel, metrics_port=args.metrics_port)


class UsageError(UserError):
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


class AppUnavailable(UserError):
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
    load: LoadStart,
    starting: Callable[[], StartingRun],
    *,
    open_app: AppOpener | None,
    simulate: bool | None = None,
) -> int:
    """The run in the app when ``open_app`` is given, else headless.

    ``load`` imports the composition root, and the SDK with it (over a second): the app is handed
    ``starting()``, a run it shows at once while ``load`` runs in a worker thread; headless, nothing
    is drawn meanwhile, so it is simply called."""
    if open_app is not None:
        run = starting()

        async def shown_at_once() -> RunControl:
            return run

        return open_app(control_factory=shown_at_once, runs_dir=run.runs_dir, simulate=simulate)
    import asyncio

    from core.events import EventBus

    async def assemble() -> RunControl:
        # The SDK's import happens here, once the loop holds INT/TERM/HUP: a ctrl+c meanwhile waits
        # for it and then cancels the setup (exit 130). Before, it raised KeyboardInterrupt inside
        # the import, where Python may wrap it (a class's __set_name__) and show a traceback.
        start = load()
        return await start(EventBus())

    return asyncio.run(_run_headless(assemble))


def _notice(message: str) -> None:
    print(f"note: {printable(message)}", file=sys.stderr)


async def _run_headless(factory: Factory) -> int:
    """Run to the end; INT, TERM and HUP stop it with its state saved (exit 130), at any moment: the
    first cleanly (the calls in flight finish their turn, within the grace), a second one now."""
    import asyncio
    import signal

    from core.headless import HeadlessDisplay
    from core.logs import run_log
    from core.streams import on_lost

    loop = asyncio.get_running_loop()
    setup = asyncio.current_task()
    started: list[RunControl] = []

    signals = 0

    def stop() -> None:
        nonlocal signals
        signals += 1
        if started:
            started[0].stop(now=signals > 1)
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


def _attach(runs_dir: Path, run_ref: str, open_app: AppOpener | None, *, headless: bool) -> int:
    """The app on another process's run, or its headless view (no owner: exit 4 headless, 2 for the app)."""
    from core.persistence.rundir import RunDir
    from core.remote.attached import attach_run
    from core.remote.owner import NoLiveOwner, live_owner, not_live

    run_dir = RunDir.open(runs_dir, run_ref)
    run_dir.check_sandbox()  # a link or a FIFO planted in it: refused, naming the path (exit 2)
    if live_owner(run_dir.path) is None:
        raise not_live(run_dir, NoLiveOwner) if headless else not_live(run_dir)
    if not headless:
        return _app(open_app)(
            control_factory=lambda: attach_run(runs_dir, str(run_dir.path)), runs_dir=runs_dir
        )
    import asyncio

    return asyncio.run(_follow_headless(run_dir.path))


async def _follow_headless(run_path: Path) -> int:
    """Follow another process's run as ``run --headless`` shows its own, until it ends; INT, TERM and
    HUP stop following (exit 130) and leave the run to its owner."""
    import asyncio
    import signal

    from core.headless import HeadlessDisplay
    from core.persistence.rundir import RunDir
    from core.remote.attached import attach_run
    from core.remote.channel import OwnerUnreachable
    from core.remote.owner import NoLiveOwner
    from core.streams import on_lost

    run = RunDir(run_path)
    attached = await attach_run(run.path.parent, str(run.path))
    display = HeadlessDisplay()
    attached.bus.listen(display)
    following = asyncio.create_task(attached.run(), name=f"attach:{run.run_id}")
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, following.cancel)
    with on_lost(lambda: loop.call_soon_threadsafe(following.cancel)), display:
        display.note(f"attached to run {run.run_id} (owner pid {attached.owner_pid or 'unknown'})")
        await asyncio.wait({following})
    if following.cancelled():  # ours to cancel: the run goes on in its owner
        print(
            f"stopped following run {run.run_id}; it goes on in its owner "
            f"(research-orchestrator control {run.run_id} stop ends it)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    try:
        outcome = following.result()
    except OwnerUnreachable as error:  # it ended, or stopped answering, before sending its snapshot
        raise NoLiveOwner(str(error)) from None
    display.finish(outcome)  # the same closing lines as run --headless: the table or summary, the outcome
    return outcome.exit_code


def _control(runs_dir: Path, run_ref: str, verb: str, agent: str | None, *, now: bool) -> int:
    """One request to a live run's owner; one line saying what was done (exit 0), else why not."""
    import asyncio

    from core.persistence.rundir import RunDir
    from core.remote.command import request_for, send_control

    run_dir = RunDir.open(runs_dir, run_ref)
    run_dir.check_sandbox()  # the socket it connects to must be the run's own
    request = request_for(run_dir.run_id, verb, agent, now=now)
    print(printable(asyncio.run(send_control(run_dir, request))))
    return EXIT_COMPLETED


def _estimate(config_path: Path) -> int:
    from core.budget.pricing import PriceTable
    from core.config.loader import load_config
    from core.estimate import estimate, format_estimate

    config = load_config(config_path)
    print(format_estimate(estimate(config, PriceTable.from_config(config.pricing))))
    return 0


def _list_runs(runs_dir: Path) -> int:
    from core.catalogue import list_runs

    if runs_dir.exists() and not runs_dir.is_dir():
        shown = printable(str(runs_dir))
        raise UsageError(f"--runs-dir {shown} is not a directory; give the directory the runs are in")
    runs = list_runs(runs_dir)
    if not runs:
        print(f"no runs in {printable(str(runs_dir))}")
        return 0
    print(
        f"{'run':<48} {'status':<17} {'owner':<16} {'cost':>10} {'billed':>10} {'unconfirmed':>11}  "
        "forked from"
    )
    for run in runs:
        parent = printable(f"{run.parent} @ {run.parent_checkpoint}" if run.parent else "")
        owner = run.owner
        live = "" if owner is None else ("live" if owner.serving else "starting")
        if owner is not None and owner.pid:
            live += f" pid {owner.pid}"
        run_id, status = printable(run.run_id), printable(run.status)
        print(
            f"{run_id:<48} {status:<17} {live:<16} {run.cost_usd:>10.4f} {run.billed_usd:>10.4f} "
            f"{run.unconfirmed_usd:>11.4f}  {parent}"
        )
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
        f"{'unconf.':>9} {'run $':>9} {'unconf.':>9}  integrity"
    )
    for info in infos:
        when = datetime.datetime.fromtimestamp(info.created_at).strftime("%H:%M:%S")
        integrity = info.status if info.status == "ok" else f"corrupt ({printable(info.problem or '')})"
        print(
            f"{info.id:<28} {info.agent_id:<16} {info.turn:>4}  {when:<8} {info.tokens:>10} "
            f"{info.agent_cost_usd:>9.4f} {info.agent_unconfirmed_usd:>9.4f} {info.cost_usd:>9.4f} "
            f"{info.unconfirmed_usd:>9.4f}  {integrity}"
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
    for note in result.notes:
        print(f"  note {printable(str(note))}")
    print("ok: every check holds" if result.ok else f"FAILED: {len(result.problems)} problem(s)")
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
