"""The app's terminal driver: Textual's Linux driver, made to survive losing its terminal.

Textual writes each frame from a thread through a queue of 30 writes. When the terminal goes away
(the window closed, SSH dropped, a ``kill`` of an app whose terminal a shell had already lost) a
write raises ``EIO`` in that thread, the thread dies, and the 31st frame blocks the event loop for
ever: a run with calls in flight would neither save nor exit. Its input thread meanwhile spins on a
stdin that only answers end-of-file. This driver's output drops everything once a write fails, or
once the app says the terminal is gone; the input thread is stopped; and the app is told once
(:meth:`tui.app.ResearchApp.terminal_lost`), from the loop, so it can stop its run cleanly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

from textual.drivers.linux_driver import LinuxDriver

if TYPE_CHECKING:
    from textual.app import App

logger = logging.getLogger(__name__)


class LossTolerantOutput:
    """A text file that stops writing, and calls ``on_lost`` once, when a write to it fails."""

    def __init__(self, file: IO[str], on_lost: Callable[[], None]) -> None:
        self._file = file
        self._on_lost = on_lost
        self.lost = threading.Event()

    def write(self, text: str) -> int:
        if not self.lost.is_set():
            try:
                self._file.write(text)
            except (OSError, ValueError) as error:  # EIO: the terminal is gone; ValueError: closed
                self.lose(f"writing to the terminal failed: {error}")
        return len(text)

    def flush(self) -> None:
        if not self.lost.is_set():
            try:
                self._file.flush()
            except (OSError, ValueError) as error:
                self.lose(f"writing to the terminal failed: {error}")

    def fileno(self) -> int:
        return self._file.fileno()

    def isatty(self) -> bool:
        return True

    def lose(self, why: str) -> None:
        if not self.lost.is_set():
            self.lost.set()
            logger.warning("the terminal is gone (%s): the app draws nothing more", why)
            self._on_lost()


class TerminalDriver(LinuxDriver):
    """``LinuxDriver`` whose frames are dropped, never queued, once the terminal is lost."""

    def __init__(
        self,
        app: App[object],
        *,
        debug: bool = False,
        mouse: bool = True,
        size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(app, debug=debug, mouse=mouse, size=size)
        self.output = LossTolerantOutput(self._file, self._report_loss)  # type: ignore[arg-type]
        self._file = self.output  # type: ignore[assignment]  # what the writer thread writes to

    def write(self, data: str) -> None:
        if not self.output.lost.is_set():  # once lost, never wait on a queue nobody drains
            super().write(data)

    def lose_terminal(self, why: str) -> None:
        """The app learnt the terminal is gone (a hang-up): draw nothing more."""
        self.output.lose(why)

    def _report_loss(self) -> None:
        self.exit_event.set()  # the input thread stops instead of spinning on end-of-file
        notice = getattr(self._app, "terminal_lost", None)
        if callable(notice):
            self._loop.call_soon_threadsafe(notice)
