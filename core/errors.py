"""The project's errors under one root, and the exit codes of the command line.

Every exception this project raises on purpose derives from :class:`ResearchOrchestratorError`, so
a caller can tell the project's errors from a library's or a bug. A :class:`UserError` is one the
user can act on (an argument, a config, a run reference, the disk, another process holding the
run): each front end shows it at one place, as :meth:`UserError.describe`, and the command line
exits with its :attr:`~UserError.exit_code`; never with a traceback. Anything else that reaches a
front end is a bug, logged with its traceback.

A plain module at the bottom of ``core``: every layer raises these, so it imports nothing.
"""

from __future__ import annotations

from typing import ClassVar

# The exit codes of the command line (README, "Exit codes"); a run's outcome maps its status to one.
EXIT_COMPLETED = 0
EXIT_INVALID = 2  # invalid config or arguments, or anything else the user must fix first
EXIT_BUDGET_EXHAUSTED = 3  # stopped by a budget cap (partial results saved)
EXIT_FAILED = 4
EXIT_INTERRUPTED = 130  # state saved
EXIT_PIPE_CLOSED = 141  # as a shell reports a process ended by SIGPIPE (`... | head -1`)


class ResearchOrchestratorError(Exception):
    """The root of every error the project raises on purpose."""


class UserError(ResearchOrchestratorError):
    """Something the user can fix: told as a message (and a hint, if any) and an exit code.

    Subclasses set ``exit_code`` when it is not 2; an instance may carry a ``hint``, a line saying
    what to do, shown after the message. An exit code of 0 is an answer, not a failure (a resume of
    a run that already completed): it is printed on standard output, without ``error:``.
    """

    exit_code: ClassVar[int] = EXIT_INVALID
    hint: str | None = None

    def describe(self) -> str:
        """What the front ends show: the message, then the hint on a line of its own."""
        message = str(self) or type(self).__name__
        return f"{message}\n{self.hint}" if self.hint else message


class SetupError(UserError):
    """A problem found before a run starts (no API key, an unsaveable price, a resume that would
    pay for everything again): nothing has been sent."""
