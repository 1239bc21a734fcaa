"""A command's standard output and error: a reader that went away never raises into the program.

``... | head -1``, a terminal closed under a run, ``> /dev/full``, ``>&-``: writing the output can
fail at any moment, from any writer (``print``, Rich, a log handler's thread). Such a failure is not
the command's failure: the stream goes quiet (later writes go to ``/dev/null``), the error is kept,
and whoever registered with :func:`on_lost` is told (a headless run stops with its state saved, as
when its terminal closes). The command line turns the kept error into its exit code at the end.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TextIO

_lost_hooks: list[Callable[[], object]] = []


class GuardedStream:
    """A text stream whose writes and flushes never raise ``OSError``; the first failure is kept."""

    def __init__(self, stream: TextIO, name: str) -> None:
        self.stream = stream
        self.name = name  # "standard output" or "standard error", for the message
        self.lost: OSError | None = None
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        if self.lost is None:
            try:
                return self.stream.write(text)
            except OSError as error:
                self._lose(error)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self.lost is None:
            try:
                self.stream.flush()
            except OSError as error:
                self._lose(error)

    def _lose(self, error: OSError) -> None:
        with self._lock:
            if self.lost is not None:
                return
            self.lost = error
        _silence(self.stream)
        for hook in list(_lost_hooks):
            hook()

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding... as the stream has them
        return getattr(self.stream, name)


def _silence(stream: TextIO) -> None:
    """Point the stream's descriptor at /dev/null, so what it still holds is flushed nowhere."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def _open_standard_descriptors() -> None:
    """Open /dev/null on 0, 1 and 2 if they are closed (``>&-``): a file the command opens must
    never get one of them and receive its output."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != fd:
                os.dup2(opened, fd)
                os.close(opened)


def _standard(stream: TextIO | None, fd: int) -> TextIO:
    if stream is not None:
        return stream
    return open(fd, "w", encoding="utf-8", errors="backslashreplace", closefd=False)


@contextlib.contextmanager
def guarded_output() -> Iterator[tuple[GuardedStream, GuardedStream]]:
    """``sys.stdout`` and ``sys.stderr`` guarded while the block runs; restored afterwards."""
    _open_standard_descriptors()
    before = sys.stdout, sys.stderr
    out = GuardedStream(_standard(sys.stdout, 1), "standard output")
    err = GuardedStream(_standard(sys.stderr, 2), "standard error")
    sys.stdout, sys.stderr = out, err
    try:
        yield out, err
    finally:
        out.flush()
        err.flush()
        sys.stdout, sys.stderr = before


@contextlib.contextmanager
def on_lost(hook: Callable[[], object]) -> Iterator[None]:
    """Call ``hook`` (from the writing thread) when the output is lost, while the block runs."""
    _lost_hooks.append(hook)
    try:
        yield
    finally:
        _lost_hooks.remove(hook)


def pipe_closed(error: OSError | None) -> bool:
    """The reader went away (``| head -1``): the shell's convention is a quiet exit 141."""
    return error is not None and error.errno == errno.EPIPE
