"""The terminal app: opens a run (or the runs list), drives it on the app's own event loop.

The run's ``run()`` is an async worker of the app (one event loop, no threads); its events reach
the screen through :class:`~tui.bridge.EventBridge`; keys call the run's control methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import select
import shlex
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from textual.app import App
from textual.binding import Binding
from textual.driver import Driver
from textual.theme import Theme
from textual.worker import Worker, WorkerCancelled, WorkerFailed, WorkerState

from core.control import RunControl, RunOutcome
from core.errors import EXIT_FAILED, UserError
from core.logs import run_log
from core.remote.attached import AttachedRun
from core.safe_text import printable
from core.starting import StartingRun
from tui import data
from tui import messages as msg
from tui.bridge import EventBridge
from tui.commands import ScreenCommands
from tui.data import ControlFactory, DiskRunSource, RunSource
from tui.messages import AttachRequested, NewRunRequested, ResumeRequested, RunEnded
from tui.screens.choice import Choice, ChoiceScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
from tui.screens.runs import RunsScreen
from tui.settings import load_settings, save_settings, user_themes_dir
from tui.themes import BUILTIN_THEMES_DIR, DEFAULT_THEME, load_themes

logger = logging.getLogger(__name__)
ResumeFactory = Callable[[str, str | None], ControlFactory]
StartFactory = Callable[[Path], ControlFactory]


class ResearchApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "research-orchestrator"
    COMMANDS = App.COMMANDS | {ScreenCommands}
    BINDINGS = [
        Binding(
            "ctrl+q",
            "quit",
            "Quit",
            priority=True,
            id="quit",
            show=True,
            tooltip="quit (asks first while a run is active; resume it later)",
        ),
    ]

    def __init__(
        self,
        *,
        control_factory: ControlFactory | None = None,
        runs_dir: Path = Path("runs"),
        config_path: Path | None = None,
        simulate: bool | None = None,
        resume_factory: ResumeFactory | None = None,
        start_factory: StartFactory | None = None,
        run_source: RunSource | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.control_factory = control_factory
        self.runs_dir = Path(runs_dir)
        self.config_path = config_path
        self.simulate = simulate
        self.detached = ""  # set when the user detaches from another process's run: what to print
        self.resume_factory = resume_factory or self._default_resume_factory
        self.start_factory = start_factory or self._default_start_factory
        self.run_source: RunSource = run_source or DiskRunSource()
        self.clock = clock
        self.control: RunControl | None = None
        self.outcome: RunOutcome | None = None
        self.run_error: str | None = None
        self.start_error: str | None = None
        self.start_exit_code = 0  # a user error's exit code, or EXIT_FAILED for a bug
        self.start_traceback: str | None = None  # a bug's, printed once the terminal is restored
        self.theme_errors: list[str] = []
        self._run_worker: Worker[RunOutcome | None] | None = None
        self._stopping = False
        self._stopping_now = False
        self._signalled = False
        self._terminal_gone = False
        self._stopping_unasked = False

    # --- start-up ------------------------------------------------------------------------------

    def on_mount(self) -> None:
        self._load_themes()
        self._handle_hangups()
        if self.control_factory is not None:
            self.open_run(self.control_factory)
        else:
            self.push_screen(RunsScreen(self.runs_dir, self.run_source, config_path=self.config_path))

    def _handle_hangups(self) -> None:
        """``kill -INT``, ``kill`` (SIGTERM) and closing the terminal (SIGHUP) stop the run cleanly, as a
        confirmed quit does and as the headless run does: the calls in flight finish their turn and are
        saved (the API bills a cancelled call anyway); a second signal stops it now. Nobody is left to
        answer a dialog, and a run killed mid-turn would leave its summary saying "running" and its
        lock and socket behind."""
        loop = asyncio.get_running_loop()
        for name in ("SIGHUP", "SIGTERM", "SIGINT"):
            signum = getattr(signal, name, None)
            if signum is not None:
                with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals here
                    loop.add_signal_handler(signum, self._hung_up, name)

    def _hung_up(self, name: str) -> None:
        if name == "SIGHUP" and self._terminal_gone:
            return  # one hang-up, heard again (the kernel and the terminal's server both send it)
        logger.warning("%s: the app stops its run and exits", name)
        self._signalled = True
        if name == "SIGHUP" or not _terminal_answers():  # the terminal is gone
            self._lose_terminal(name)
        if self._stopping and self._stopping_unasked:  # the clean stop the lost terminal began
            self._stopping_unasked = False
            return
        if self._stopping:
            if self.control is not None and self.run_active and not self._stopping_now:
                self._stopping_now = True
                self.control.stop(now=True)  # a second signal: the calls in flight are cancelled
            return
        self._stop_and_leave()

    def terminal_lost(self) -> None:
        """The driver found the terminal gone (a write failed, no hang-up heard): stop as a hang-up
        does, once; a stop already under way goes on as it was asked."""
        if self._terminal_gone:
            return
        logger.warning("the terminal is gone: the app stops its run and exits")
        self._signalled = True
        self._lose_terminal("output failed")
        if not self._stopping:
            self._stopping_unasked = True  # a signal that follows is the first one, not a second
            self._stop_and_leave()

    def _lose_terminal(self, why: str) -> None:
        """Nothing more is drawn or printed (output goes to /dev/null), so no write can block the loop
        while the calls in flight finish (see tui/terminal.py)."""
        self._terminal_gone = True
        _silence_terminal()
        lose = getattr(self._driver, "lose_terminal", None)
        if callable(lose):
            lose(why)

    def _stop_and_leave(self) -> None:
        if self.attached:  # the run is another process's: it goes on
            self._leave(0)
        elif self.run_active:
            self.run_worker(self._stop_and_exit(), group="quit", exit_on_error=False)
        else:
            self._leave(self.exit_code)

    def get_driver_class(self) -> type[Driver]:
        driver = super().get_driver_class()
        if driver.__name__ == "LinuxDriver":  # (Linux and macOS; imported here: termios is POSIX's)
            from tui.terminal import TerminalDriver

            return TerminalDriver
        return driver

    def _leave(self, code: int) -> None:
        """Exit with ``code``. After a signal the terminal may be gone (a hang-up, or a ``kill`` of an
        app whose terminal was closed) and Textual's farewell writes to it can block for ever, so a
        watchdog ends the process once everything of the run is saved."""
        if self._signalled:  # (log records are flushed as they are written)
            watchdog = threading.Timer(LOST_TERMINAL_EXIT_S, os._exit, args=(code,))
            watchdog.daemon = True
            watchdog.start()
        self.exit(code, return_code=code)

    def _load_themes(self) -> None:
        themes, self.theme_errors = load_themes(BUILTIN_THEMES_DIR, user_themes_dir())
        for theme in themes:
            self.register_theme(theme)
        if self.theme_errors:
            self.notify(
                "\n".join(self.theme_errors),
                title="Some themes could not be read",
                severity="warning",
                markup=False,
                timeout=10,
            )
        saved = load_settings().get("theme")
        self._saved_theme = saved if isinstance(saved, str) else None
        wanted = self._saved_theme or DEFAULT_THEME
        self.theme = wanted if wanted in self.available_themes else DEFAULT_THEME
        self.theme_changed_signal.subscribe(self, self._remember_theme)

    def _remember_theme(self, theme: Theme) -> None:
        if theme.name != self._saved_theme:
            self._saved_theme = theme.name
            with contextlib.suppress(OSError):
                save_settings(theme=theme.name)

    # --- the run -------------------------------------------------------------------------------

    @property
    def run_active(self) -> bool:
        worker = self._run_worker
        return worker is not None and worker.state in (WorkerState.PENDING, WorkerState.RUNNING)

    @property
    def exit_code(self) -> int:
        """What the command line returns: the run's exit code, 4 if it crashed, and if it never
        started, its user error's exit code (2, mostly) or 4 for a bug."""
        if self.outcome is not None:
            return self.outcome.exit_code
        if self.run_error is not None:
            return EXIT_FAILED
        if self.start_error is not None and self.control is None:
            return self.start_exit_code
        return 0

    def open_run(self, factory: ControlFactory) -> Worker[RunOutcome | None]:
        """Start ``factory``'s run and show it (the caller makes sure no other run is active)."""
        self._run_worker = self.run_worker(self._drive(factory), name="run", group="run", exit_on_error=False)
        return self._run_worker

    async def _drive(self, factory: ControlFactory) -> RunOutcome | None:
        try:
            control = await factory()
        except Exception as error:
            await self._not_started(error)
            return None
        self.control, self.outcome, self.run_error = control, None, None
        if isinstance(control, AttachedRun):
            control.on_refused = self._owner_refused
        starting = control if isinstance(control, StartingRun) else None
        runs_dir = starting.runs_dir if starting is not None else Path(control.run_dir).parent
        screen = MainScreen(control, runs_dir=runs_dir, source=self.run_source, clock=self.clock)
        while len(self.screen_stack) > 1:
            await self.pop_screen()
        await self.push_screen(screen)
        EventBridge(screen, sink=screen).attach(control.bus)
        if starting is not None:  # shown now, "connecting"; assembled (the SDK imported) meanwhile
            screen.post_message(msg.RunInfoChanged(starting.preview))
            if starting.agents:
                screen.post_message(msg.AgentsListed(starting.agents))
            try:
                await self._first_frame_drawn()
                await starting.assembled()
            except Exception as error:
                self.control = None
                while len(self.screen_stack) > 1:
                    await self.pop_screen()
                await self._not_started(error)
                return None
        _tune_gc_for_streaming()
        try:
            # An attached app leaves run.log to the run's owner (one writer per log).
            attached = isinstance(control, AttachedRun)
            with contextlib.nullcontext() if attached else run_log(Path(control.run_dir)):
                outcome = await control.run()
                logger.info("run ended: %s", outcome.describe())
        except Exception as error:
            self.run_error = _describe(error)
            screen.post_message(RunEnded(None, self.run_error))
            return None
        self.outcome = outcome
        screen.post_message(RunEnded(outcome))
        if isinstance(control, AttachedRun) and control.owner_gone:
            self._offer_resume(control)
        return outcome

    async def _first_frame_drawn(self) -> None:
        """Returns once the screen as it stands has been drawn."""
        drawn = asyncio.Event()
        self.call_after_refresh(drawn.set)
        await drawn.wait()

    async def _not_started(self, error: Exception) -> None:
        """The run could not start: say why (a bug with its traceback kept) and offer the runs list."""
        self.start_error, self.start_exit_code = _describe(error), _exit_code(error)
        if not isinstance(error, UserError):  # a bug: the user is told so, and its traceback kept
            logger.exception("the run could not start")  # (core.runner wrote it to run.log, if any)
            self.start_traceback = "".join(traceback.format_exception(error))
            self.start_error += (
                "\nIts traceback is shown when the app exits (and in run.log if the run was created)."
            )
        self.notify(
            self.start_error, title="Could not start the run", severity="error", markup=False, timeout=20
        )
        if len(self.screen_stack) == 1:
            await self.push_screen(RunsScreen(self.runs_dir, self.run_source, config_path=self.config_path))

    # --- runs owned by another process (attach) -------------------------------------------------

    @property
    def attached(self) -> bool:
        return isinstance(self.control, AttachedRun) and self.run_active

    def _owner_refused(self, message: str) -> None:
        self.notify(message, title="The run's owner refused", severity="warning", markup=False)

    def _offer_resume(self, control: AttachedRun) -> None:
        """The owner died without ending the run: say so, and offer to continue it here."""

        def answered(yes: bool | None) -> None:
            if yes:
                self.post_message(ResumeRequested(control.run_id))

        self.push_screen(
            ConfirmScreen(
                "The process that owned this run is gone",
                f"{self.outcome.message if self.outcome else ''}\n\nResume the run in this app?",
                yes="Resume here",
            ),
            answered,
        )

    def _detach(self) -> None:
        """Stop watching; the run goes on in its owner."""
        if self._run_worker is not None:
            self._run_worker.cancel()

    def on_attach_requested(self, message: AttachRequested) -> None:
        if self.control is not None and self.run_active and self.control.run_id == message.run_id:
            if isinstance(self.screen, RunsScreen):  # this app's own run (or the one it watches)
                self.pop_screen()
            return
        self.request_run(data.attach_factory(self.runs_dir, message.run_id), f"attach to {message.run_id}")

    async def stop_run(self, *, now: bool = False) -> None:
        """Ask the run to stop (cleanly, unless ``now``; state is saved) and wait until its worker
        has returned."""
        worker = self._run_worker
        if self.control is not None and self.run_active:
            self.control.stop(now=now)
        if worker is not None:
            with contextlib.suppress(WorkerFailed, WorkerCancelled):
                await worker.wait()

    def request_run(self, factory: ControlFactory, what: str) -> None:
        """Open another run; an active one is stopped first, after asking (an attached one: detached)."""
        if self.attached:
            self._detach()
        if not self.run_active:
            self.open_run(factory)
            return

        async def switch() -> None:
            await self.stop_run()
            self.open_run(factory)

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(switch(), group="switch", exit_on_error=False)

        self.push_screen(
            ConfirmScreen(
                f"Stop the current run and {what}?",
                "The active run stops cleanly and can be resumed later.",
                yes="Stop it",
            ),
            answered,
        )

    def on_resume_requested(self, message: ResumeRequested) -> None:
        where = f"fork it from {message.checkpoint_id}" if message.checkpoint_id else "resume it"
        self.request_run(
            self.resume_factory(message.run_id, message.checkpoint_id), f"{where} ({message.run_id})"
        )

    def on_new_run_requested(self, message: NewRunRequested) -> None:
        if message.detach:
            simulate = self.simulate if self.simulate is not None else data.simulate_by_default()
            factory = data.detached_start_factory(Path(message.config_path), self.runs_dir, simulate)
            self.request_run(factory, "start a new run")
            return
        self.request_run(self.start_factory(Path(message.config_path)), "start a new run")

    def _default_resume_factory(self, run_id: str, checkpoint_id: str | None) -> ControlFactory:
        return data.resume_factory(self.runs_dir, run_id, checkpoint_id, simulate=self.simulate)

    def _default_start_factory(self, config_path: Path) -> ControlFactory:
        simulate = self.simulate if self.simulate is not None else data.simulate_by_default()
        return data.start_factory(config_path, self.runs_dir, simulate)

    # --- app-wide actions ---------------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    async def action_quit(self) -> None:
        if self._stopping:  # ctrl+q while stopping cleanly: stop now; once more: leave now
            if self.control is not None and self.run_active and not self._stopping_now:
                self._stopping_now = True
                self.control.stop(now=True)
                self.notify("Stopping now: the calls in flight are cancelled (ctrl+q again quits at once)")
                return
            self.exit(self.exit_code, return_code=self.exit_code)
            return
        if not self.run_active:
            self.exit(self.exit_code, return_code=self.exit_code)
            return
        if isinstance(self.screen, ConfirmScreen | ChoiceScreen):
            return
        run_id = self.control.run_id if self.control else ""
        if self.attached:
            self._ask_detach_or_stop(run_id)
            return

        def answered(choice: str | None) -> None:
            if choice in ("stop", "now"):
                self.run_worker(self._stop_and_exit(now=choice == "now"), group="quit", exit_on_error=False)

        worst = self.control.in_flight_usd() if self.control is not None else None
        self.push_screen(
            ChoiceScreen(
                "The run is still active. Stop it and quit?",
                f"{stop_choices(worst)}\nContinue later with: research-orchestrator resume {run_id}",
                [
                    Choice("y", "Stop and quit", "stop", "primary"),
                    Choice("x", "Stop now", "now", "error"),
                    Choice("n", "Keep running", "cancel"),
                ],
                focus="cancel",
            ),
            answered,
        )

    def detached_note(self) -> str:
        """What a detaching app leaves on the terminal: where the run goes on, and how to come back."""
        control = self.control
        if not isinstance(control, AttachedRun):
            return ""
        owner = f"process {control.owner_pid}" if control.owner_pid else "its own process"
        again = f"research-orchestrator attach {shlex.quote(control.run_id)}"
        if Path(control.run_dir).parent.resolve() != Path("runs").resolve():
            again += f" --runs-dir {shlex.quote(str(Path(control.run_dir).parent))}"
        return f"detached: run {control.run_id} goes on in {owner} ({control.run_dir})\nattach again: {again}"

    def _ask_detach_or_stop(self, run_id: str) -> None:
        def answered(choice: str | None) -> None:
            if choice == "detach":
                self.detached = self.detached_note()
                self.exit(0, return_code=0)
            elif choice == "stop":
                self.run_worker(self._stop_and_exit(), group="quit", exit_on_error=False)

        self.push_screen(
            ChoiceScreen(
                "Leave the run?",
                f"Detach: the run goes on in its own process; come back with "
                f"`research-orchestrator attach {run_id}`.\n"
                "Stop: no new call starts; the calls in flight finish their turn and are saved, then "
                "the run stops (a second stop cancels them).",
                [
                    Choice("d", "Detach", "detach", "primary"),
                    Choice("s", "Stop the run", "stop", "error"),
                    Choice("escape", "Cancel", "cancel"),
                ],
                focus="detach",
            ),
            answered,
        )

    async def _stop_and_exit(self, *, now: bool = False) -> None:
        self._stopping = True
        self._stopping_now = now
        if now:
            self.notify("Stopping the run now… (ctrl+q again quits at once)", timeout=30)
        else:
            self.notify(
                "Stopping the run: the calls in flight finish their turn and are saved… "
                "(ctrl+q again stops now)",
                timeout=30,
            )
        await self.stop_run(now=now)
        self._leave(self.exit_code)


def stop_choices(worst_usd: float | None) -> str:
    """What the two ways of stopping cost: said before the user picks one."""
    amount = "their worst case" if worst_usd is None else f"their worst case, up to ${worst_usd:.2f} in all"
    return (
        "Stop and quit: no new call starts; the calls in flight finish their turn and are saved "
        "(within the grace period, execution_settings.stop_grace_s, 60 s by default), then the run "
        "stops. Nothing paid for is thrown away.\n"
        "Stop now: the calls in flight are cancelled. The API bills them anyway, so they are "
        f"charged {amount}, and a resume asks for them again."
    )


LOST_TERMINAL_EXIT_S = 3.0  # after a hang-up, the longest the app waits for its own exit


def _terminal_answers() -> bool:
    """The terminal the app draws on (stderr: Textual's Linux driver writes there) still has a
    session and room for output (a hung-up one has neither: a write to it fails, or blocks when
    nobody reads it any more)."""
    drawn_on = 2
    if not os.isatty(drawn_on):  # a pipe or a file is not a terminal to lose
        return True
    try:
        os.tcgetpgrp(drawn_on)
        _readable, writable, _errors = select.select([], [drawn_on], [], 0)
    except (OSError, ValueError):
        return False
    return bool(writable)


def _silence_terminal() -> None:
    """The terminal is gone: output goes to /dev/null instead of failing (input is left alone)."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)


GC_THRESHOLDS = (700, 50, 10)  # CPython's default is (700, 10, 10)
_gc_tuned = False


def _tune_gc_for_streaming() -> None:
    """Keep the garbage collector from freezing the screen, once per process.

    Textual makes every rendered line cyclic garbage (a ``Strip`` caches itself), so a screen of
    streaming panes feeds the collector thousands of objects a second. With the default settings
    they reached the oldest generation, and each full collection walked the whole heap (~300k
    objects, the SDK's and Textual's included): 100-220 ms pauses several times a minute, the
    app's worst input latencies. Start-up objects are frozen (never scanned again; only what
    exists now, and only once, so no run's objects are kept alive by it), and a young collection
    of the middle generation runs every 50 young collections instead of 10, so short-lived
    garbage dies there (≤ ~20 ms) instead of piling up for a full collection.
    """
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _describe(error: BaseException) -> str:
    """A user error as the command line tells it; anything else as the bug it is."""
    if isinstance(error, UserError):
        return error.describe()
    return f"unexpected error: {type(error).__name__}: {error}"


def _exit_code(error: BaseException) -> int:
    return error.exit_code if isinstance(error, UserError) else EXIT_FAILED


def run_app(
    *,
    control_factory: ControlFactory | None = None,
    runs_dir: Path = Path("runs"),
    config_path: Path | None = None,
    simulate: bool | None = None,
) -> int:
    """Run the terminal app until the user quits; returns the process exit code
    (docs/ARCHITECTURE.md, "Contracts")."""
    app = ResearchApp(
        control_factory=control_factory, runs_dir=runs_dir, config_path=config_path, simulate=simulate
    )
    app.run()
    if app.start_traceback is not None:  # a bug stopped a run from starting: say where, for a report
        with contextlib.suppress(OSError):
            print(app.start_traceback, file=sys.stderr, end="", flush=True)
    try:  # the terminal is restored: leave a line saying where the run is
        if app.outcome is not None:
            print(app.outcome.describe(), flush=True)
            if app.outcome.message:
                print(app.outcome.message, file=sys.stderr, flush=True)
        elif app.detached:
            print(printable(app.detached, keep_newlines=True), flush=True)
    except OSError:  # the terminal is gone (window closed, SSH dropped): the run's files say it
        _silence_terminal()
    return app.exit_code
