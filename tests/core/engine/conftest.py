"""Fixtures the engine's crash tests share."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.core.engine.test_crash import free_port, serving
from tests.waits import wait_until

ROOT = Path(__file__).resolve().parents[3]


@contextmanager
def simulator_process(*options: str) -> Iterator[str]:
    """A simulator in its own process (it outlives a killed run), started with ``options``; its URL
    once it answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "core.simulator", "--port", str(port), *options],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: serving(url), "the simulator to answer")
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def slow_simulator() -> Iterator[str]:
    """A simulator slow enough to catch calls in flight."""
    with simulator_process("--seed", "5", "--latency-ms", "50", "--tokens-per-second", "150") as url:
        yield url
