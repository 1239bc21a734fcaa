"""Where log records go: a run's ``run.log`` (0600) and, with ``--verbose``, the terminal.

Modules only call ``logging.getLogger(__name__)``; the front ends (the command line, the app) attach
handlers here, never at import. Each line names the run, agent and request it is about (and, with
telemetry on, the trace and span), from :mod:`core.correlation`. Handlers write from a listener
thread, so logging never blocks the event loop, and every line is masked for secrets (the API key,
bearer tokens) before it is written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from core import correlation
from core.errors import UserError

#: The packages whose INFO records are kept (third parties: WARNING and above).
OWN_LOGGERS = ("core", "tui")
SECRET_VARIABLES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
_KEY_PATTERN = re.compile(r"sk-ant-[A-Za-z0-9_\-]{4,}|(?i:bearer\s+)[A-Za-z0-9._~+/\-]{8,}=*")
_FORMAT = "%(asctime)s %(levelname)s %(name)s%(ids_text)s: %(message)s"
_MASK = "[redacted]"
logger = logging.getLogger(__name__)


class RedactingFormatter(logging.Formatter):
    """Formats a record, then masks secrets anywhere in the line (message, arguments, traceback)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__(_FORMAT)
        self._secrets = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        ids: dict[str, str] = getattr(record, "ids", None) or {}
        record.ids_text = " [" + " ".join(f"{k}={v}" for k, v in ids.items()) + "]" if ids else ""
        return redact(super().format(record), self._secrets)


class _Correlated(logging.Filter):
    """Stamps a record with the run, agent and request ids (and trace ids) of the task that logs it.

    A filter of the queue's feeder, so it runs where the record is made, not in the writer's thread.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "ids"):
            record.ids = correlation.fields()
        return True


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        text = text.replace(secret, _MASK)
    return _KEY_PATTERN.sub(_MASK, text)


def environment_secrets() -> list[str]:
    """The credentials this process holds (values of the SDK's variables), to be masked if logged."""
    return [value for name in SECRET_VARIABLES if (value := os.environ.get(name))]


class _TerminalHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is when a record arrives (the app redirects it while it runs)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


@contextmanager
def _threaded(handler: logging.Handler) -> Iterator[None]:
    """``handler`` on the root logger, fed through a queue by a listener thread."""
    import logging.handlers  # (sockets, threads) only when a handler is attached: not for --help

    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    feeder = logging.handlers.QueueHandler(records)
    feeder.setLevel(handler.level)
    feeder.addFilter(_Correlated())
    listener = logging.handlers.QueueListener(records, handler, respect_handler_level=True)
    listener.start()
    root = logging.getLogger()
    root.addHandler(feeder)
    try:
        yield
    finally:
        root.removeHandler(feeder)
        listener.stop()  # writes what is queued, then joins the thread
        handler.close()


@contextmanager
def command_logging(*, verbose: bool = False) -> Iterator[None]:
    """For one command: keep our INFO records (DEBUG with ``verbose``); with ``verbose``, show them on
    the terminal (standard error). Levels are restored afterwards."""
    loggers = [logging.getLogger(name) for name in OWN_LOGGERS]
    before = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    try:
        if verbose:
            terminal = _TerminalHandler()
            terminal.setLevel(logging.DEBUG)
            terminal.setFormatter(RedactingFormatter(environment_secrets()))
            with _threaded(terminal):
                yield
        else:
            yield
    finally:
        for logger, level in zip(loggers, before, strict=True):
            logger.setLevel(level)


@contextmanager
def run_log(run_dir: Path) -> Iterator[Path]:
    """Append INFO and above to the run's ``run.log`` (created 0600) while the block runs, and the
    traceback of an exception that escapes it.

    A run resumed in the same directory appends to the same file. Raises ``DiskError`` when the file
    cannot be opened, like every other write the run depends on.
    """
    from core.persistence.atomic import PRIVATE_FILE_MODE, as_disk_error, open_in_run
    from core.persistence.rundir import RunDir

    path = RunDir(run_dir).log_path
    fd = open_in_run(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, kind="run log")  # never via a link
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)  # an older file keeps no wider mode
    except OSError as exc:
        os.close(fd)
        raise as_disk_error(exc, path, creating=True) from exc
    handler = logging.StreamHandler(os.fdopen(fd, "a", encoding="utf-8"))
    handler.setLevel(logging.INFO)
    handler.setFormatter(RedactingFormatter(environment_secrets()))
    try:
        with _threaded(handler):
            logger.info("run %s: logging to %s", path.parent.name, path.name)
            try:
                yield path
            except Exception:
                logger.exception("the run failed")  # the traceback belongs in the log file
                raise
    finally:
        handler.stream.close()


@contextmanager
def setup_failures_logged(run_dir: Path) -> Iterator[None]:
    """While a run is being set up (before a front end has opened its :func:`run_log`), write an
    unexpected exception escaping the block, with its traceback, to the run's ``run.log``.

    A user error is not logged: the front end tells it. The exception always propagates; a log
    that cannot be opened does not hide it.
    """
    try:
        yield
    except UserError:
        raise
    except Exception:
        from core.persistence.atomic import DiskError

        with contextlib.suppress(DiskError), run_log(run_dir):
            logger.exception("the run could not start")
        raise
