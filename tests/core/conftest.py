"""Fixtures shared by core's tests."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

import pytest


@pytest.fixture
def owners() -> Iterator[list[int]]:
    """Detached owners a test started: killed at the end if still there, so no test leaves one behind."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
