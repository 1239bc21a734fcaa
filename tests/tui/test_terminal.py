"""The driver's output once the terminal is gone: nothing more written, the app told once."""

from __future__ import annotations

import errno
import io

import pytest

from tui.terminal import LossTolerantOutput


class DeadTerminal(io.StringIO):
    """A terminal that answers writes with EIO once ``gone`` (as a hung-up pty does)."""

    gone = False

    def write(self, text: str) -> int:
        if self.gone:
            raise OSError(errno.EIO, "Input/output error")
        return super().write(text)


def test_a_failed_write_drops_all_later_output_and_reports_the_loss_once() -> None:
    terminal, losses = DeadTerminal(), []
    output = LossTolerantOutput(terminal, lambda: losses.append(1))
    output.write("frame 1")
    terminal.gone = True
    assert output.write("frame 2") == len("frame 2")  # no error reaches Textual's writer thread
    terminal.gone = False
    output.write("frame 3")  # dropped: a terminal that failed once is not trusted again
    output.flush()
    assert terminal.getvalue() == "frame 1"
    assert losses == [1] and output.lost.is_set()


def test_a_loss_the_app_heard_of_first_stops_output_without_a_failed_write() -> None:
    terminal, losses = DeadTerminal(), []
    output = LossTolerantOutput(terminal, lambda: losses.append(1))
    output.lose("SIGHUP")
    output.lose("output failed")
    output.write("frame")
    assert terminal.getvalue() == "" and losses == [1]


@pytest.mark.parametrize("error", [OSError(errno.EIO, "gone"), ValueError("I/O operation on closed file")])
def test_a_flush_that_fails_is_a_loss_too(error: Exception) -> None:
    class Failing(io.StringIO):
        def flush(self) -> None:
            raise error

    losses: list[int] = []
    output = LossTolerantOutput(Failing(), lambda: losses.append(1))
    output.flush()
    assert losses == [1]
