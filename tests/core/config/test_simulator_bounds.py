"""The simulator block has bounds: nothing in a config can make ``run --simulate`` hang.

Before, a seed of 10^170 kept the run busy for good, and a latency of ``.inf`` slept forever.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.cli import main
from core.config.simulator import MAX_SEED, SimulatorSettings
from tests.core import programs

OUT_OF_BOUNDS: dict[str, tuple[str, Any]] = {
    "a seed of 10^170": ("seed", 10**170),
    "a negative seed": ("seed", -1),
    "an endless latency": ("latency_ms", float("inf")),
    "an hour's latency": ("latency_ms", 3_600_000),
    "a pace that never ends a token": ("tokens_per_second", 1e-300),
    "an endless search": ("search_latency_ms", 1e12),
    "a probability above 1": ("faults", {"overloaded": 2.0}),
    "a billion searches a turn": ("searches_per_turn", [1, 10**9]),
    "10^170 tokens a turn": ("output_tokens_per_turn", [1, 10**170]),
    "a server loop of 10^9 searches": ("server_loop_limit", 10**9),
    "a retry-after of a year": ("retry_after_s", 3.2e7),
    "a batch processing for ten days": ("batch_processing_s", 864_000),
    "a batch that expires after a year": ("batch_expiry_s", 3.2e7),
    "a batch of a million requests": ("batch_max_requests", 10**6),
    "a batch server loop of 10^9 searches": ("batch_server_loop_limit", 10**9),
}


@pytest.mark.parametrize("case", list(OUT_OF_BOUNDS))
def test_a_value_out_of_bounds_is_refused_with_its_key_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    key, value = OUT_OF_BOUNDS[case]
    config = programs.write(tmp_path, programs.program([programs.agent("a")], simulator={key: value}))
    assert main(["validate", str(config)]) == 2
    text = capsys.readouterr()
    assert f"simulator.{key}" in text.out + text.err
    assert "Traceback" not in text.out + text.err


def test_a_batch_server_loop_shorter_than_the_synchronous_one_is_refused() -> None:
    with pytest.raises(ValueError, match="must be at least server_loop_limit"):
        SimulatorSettings(server_loop_limit=5, batch_server_loop_limit=4)
    assert SimulatorSettings(server_loop_limit=5).batch_loop_limit == 10  # default: twice
    assert SimulatorSettings(server_loop_limit=5, batch_server_loop_limit=5).batch_loop_limit == 5


def test_the_largest_seed_is_accepted_and_answers_alike() -> None:
    assert SimulatorSettings(seed=MAX_SEED).seed == MAX_SEED


def test_run_with_a_seed_of_10_to_the_170_exits_2_at_once_naming_the_key(tmp_path: Path) -> None:
    config = programs.write(tmp_path, programs.program([programs.agent("a")], simulator={"seed": 10**170}))
    runs = tmp_path / "runs"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tui.launch",
            "run",
            str(config),
            "--simulate",
            "--headless",
            "--runs-dir",
            str(runs),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "simulator.seed" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert not runs.exists()
