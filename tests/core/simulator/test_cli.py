"""The standalone simulator's command line: flags, settings, and a real served instance."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from pathlib import Path

import pytest
from anthropic import AsyncAnthropic

from core.simulator.cli import add_cli_arguments, main, settings_from_args
from tests.core.simulator.conftest import request

ROOT = Path(__file__).resolve().parents[3]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    return parser.parse_args(argv)


def test_every_flag_becomes_a_setting() -> None:
    args = parse(
        "--seed", "9", "--latency-ms", "20", "--tokens-per-second", "300", "--fault", "overloaded=0.2",
        "--fault", "disconnect=0.05", "--pause-turn-probability", "0.5", "--searches-per-turn", "2-4",
        "--output-tokens-per-turn", "100-200", "--context-window", "50000", "--cache-min-tokens", "0",
        "--requests-per-minute", "60", "--input-tokens-per-minute", "10000",
        "--output-tokens-per-minute", "2000",
        "--search-latency-ms", "50", "--slow-first-byte-s", "2", "--server-loop-limit", "5",
        "--batch-processing-s", "0.5", "--batch-expiry-s", "30", "--batch-server-loop-limit", "12",
        "--batch-max-requests", "1000",
    )  # fmt: skip
    settings = settings_from_args(args)

    assert settings.seed == 9 and settings.latency_ms == 20 and settings.tokens_per_second == 300
    assert settings.faults == {"overloaded": 0.2, "disconnect": 0.05}
    assert settings.searches_per_turn == (2, 4) and settings.output_tokens_per_turn == (100, 200)
    assert settings.context_window == 50_000 and settings.cache_min_tokens == 0
    assert settings.rate_limits.requests_per_minute == 60
    assert settings.rate_limits.input_tokens_per_minute == 10_000
    assert settings.rate_limits.output_tokens_per_minute == 2_000
    assert settings.search_latency_ms == 50 and settings.slow_first_byte_s == 2
    assert settings.server_loop_limit == 5
    assert settings.batch_processing_s == 0.5 and settings.batch_expiry_s == 30
    assert settings.batch_server_loop_limit == settings.batch_loop_limit == 12
    assert settings.batch_max_requests == 1000


def test_defaults_are_the_settings_defaults() -> None:
    settings = settings_from_args(parse())
    assert settings.faults == {} and settings.rate_limits.requests_per_minute is None


@pytest.mark.parametrize("bad", ["overloaded", "nonsense=0.1", "overloaded=2", "overloaded=x"])
def test_a_malformed_fault_is_a_usage_error(bad: str) -> None:
    with pytest.raises(SystemExit) as caught:
        parse("--fault", bad)
    assert caught.value.code == 2


def test_help_documents_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    flags = ["--host", "--port", "--seed", "--latency-ms", "--tokens-per-second", "--fault",
             "--pause-turn-probability", "--context-window", "--requests-per-minute",
             "--input-tokens-per-minute", "--output-tokens-per-minute", "--batch-processing-s",
             "--batch-expiry-s", "--batch-server-loop-limit", "--batch-max-requests"]  # fmt: skip
    for flag in flags:
        assert re.search(rf"{flag}\b[^\n]*\n?\s+\S", text), flag


async def test_python_m_core_simulator_serves_the_sdk() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core.simulator", "--port", "0", "--seed", "4",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        first_line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        match = re.search(r"http://127\.0\.0\.1:\d+", first_line)
        assert match, "the simulator prints its URL first"
        client = AsyncAnthropic(base_url=match.group(0), api_key="test", max_retries=0)
        message = await client.messages.create(**request())
        assert message.stop_reason == "end_turn"
    finally:
        process.terminate()
        await process.wait()
