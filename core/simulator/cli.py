"""Command line of the standalone simulator (``research-orchestrator simulator`` and
``python -m core.simulator``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pydantic import ValidationError

from core.config.simulator import FAULT_KINDS, RateLimits, SimulatorSettings


def _fault(text: str) -> tuple[str, float]:
    kind, sep, prob = text.partition("=")
    if not sep or kind not in FAULT_KINDS:
        raise argparse.ArgumentTypeError(f"expected KIND=PROB with KIND one of {', '.join(FAULT_KINDS)}")
    try:
        value = float(prob)
    except ValueError:
        raise argparse.ArgumentTypeError(f"probability must be a number, got {prob!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("probability must be between 0 and 1")
    return kind, value


def _range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        return int(low), int(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or MIN-MAX, got {text!r}") from None


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to ``parser`` (every one documented in ``--help``)."""
    defaults = SimulatorSettings()
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8765, help="TCP port; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        help="seed of every random choice: same seed and request, same answer (default: %(default)s)",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=defaults.latency_ms,
        help="wait before the first byte of each response, in ms (default: %(default)s)",
    )
    parser.add_argument(
        "--tokens-per-second",
        type=float,
        default=defaults.tokens_per_second,
        help="streaming pace of output tokens; 0 sends as fast as possible (default: %(default)s)",
    )
    parser.add_argument(
        "--search-latency-ms",
        type=float,
        default=defaults.search_latency_ms,
        help="wait while each streamed search runs, in ms (default: %(default)s)",
    )
    parser.add_argument(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        metavar="KIND=PROB",
        help="inject a fault with a probability per request; KIND is one of "
        f"{', '.join(FAULT_KINDS)}; repeatable, e.g. --fault overloaded=0.1",
    )
    parser.add_argument(
        "--slow-first-byte-s",
        type=float,
        default=defaults.slow_first_byte_s,
        help="extra wait of the `slow` fault, in seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--pause-turn-probability",
        type=float,
        default=defaults.pause_turn_probability,
        help="chance that a turn with web search wants more searches than the server loop runs, so it "
        "ends in pause_turn (default: %(default)s)",
    )
    parser.add_argument(
        "--server-loop-limit",
        type=int,
        default=defaults.server_loop_limit,
        help="searches the server-side loop runs per request before a turn that wants more pauses "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--searches-per-turn",
        type=_range,
        default=defaults.searches_per_turn,
        metavar="MIN-MAX",
        help="searches in a turn, bounded by the tool's max_uses (default: 1-3)",
    )
    parser.add_argument(
        "--output-tokens-per-turn",
        type=_range,
        default=defaults.output_tokens_per_turn,
        metavar="MIN-MAX",
        help="output tokens of a turn, capped by max_tokens (default: 250-700)",
    )
    parser.add_argument(
        "--context-window",
        type=int,
        default=None,
        help="context window of every model in tokens (default: per model, 200K or 1M)",
    )
    parser.add_argument(
        "--cache-min-tokens",
        type=int,
        default=None,
        help="minimum cacheable prefix of every model (default: per model)",
    )
    parser.add_argument(
        "--requests-per-minute",
        type=int,
        default=None,
        help="organisation request rate limit; 429 beyond it (default: unlimited)",
    )
    parser.add_argument(
        "--input-tokens-per-minute",
        type=int,
        default=None,
        help="organisation input-token rate limit (default: unlimited)",
    )
    parser.add_argument(
        "--output-tokens-per-minute",
        type=int,
        default=None,
        help="organisation output-token rate limit (default: unlimited)",
    )
    parser.add_argument(
        "--retry-after-s",
        type=float,
        default=1.0,
        help="retry-after sent with injected rate_limit faults, in seconds (default: 1.0)",
    )
    parser.add_argument(
        "--thread-expiry-s",
        type=float,
        default=defaults.thread_expiry_s,
        help="seconds after its last request that a message thread expires (default: 300)",
    )
    parser.add_argument(
        "--validation-ms-per-1k-tokens",
        type=float,
        default=defaults.validation_ms_per_1k_tokens,
        help="wait before the first byte per 1000 prompt tokens a request carries (default: 0)",
    )
    parser.add_argument(
        "--batch-processing-s",
        type=float,
        default=defaults.batch_processing_s,
        help="seconds a Message Batch takes until its last request ends (default: 3)",
    )
    parser.add_argument(
        "--batch-expiry-s",
        type=float,
        default=defaults.batch_expiry_s,
        help="seconds after creation that a Message Batch expires; requests not done end expired "
        "(default: 86400, the API's 24 hours)",
    )
    parser.add_argument(
        "--batch-server-loop-limit",
        type=int,
        default=None,
        help="searches a batch request runs before pause_turn (default: twice --server-loop-limit)",
    )
    parser.add_argument(
        "--batch-max-requests",
        type=int,
        default=defaults.batch_max_requests,
        help="requests one Message Batch may hold (default: 100000, the API's limit)",
    )
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        default=None,
        help="accept only this API key (repeatable); others get 401 (default: any non-empty key)",
    )


def settings_from_args(args: argparse.Namespace) -> SimulatorSettings:
    """Settings from parsed arguments; raises ``ValueError`` (pydantic) on invalid values."""
    return SimulatorSettings(
        seed=args.seed,
        latency_ms=args.latency_ms,
        tokens_per_second=args.tokens_per_second,
        search_latency_ms=args.search_latency_ms,
        faults=dict(args.fault),
        slow_first_byte_s=args.slow_first_byte_s,
        pause_turn_probability=args.pause_turn_probability,
        server_loop_limit=args.server_loop_limit,
        searches_per_turn=args.searches_per_turn,
        output_tokens_per_turn=args.output_tokens_per_turn,
        context_window=args.context_window,
        cache_min_tokens=args.cache_min_tokens,
        retry_after_s=args.retry_after_s,
        thread_expiry_s=args.thread_expiry_s,
        validation_ms_per_1k_tokens=args.validation_ms_per_1k_tokens,
        batch_processing_s=args.batch_processing_s,
        batch_expiry_s=args.batch_expiry_s,
        batch_server_loop_limit=args.batch_server_loop_limit,
        batch_max_requests=args.batch_max_requests,
        api_keys=args.api_keys,
        rate_limits=RateLimits(
            requests_per_minute=args.requests_per_minute,
            input_tokens_per_minute=args.input_tokens_per_minute,
            output_tokens_per_minute=args.output_tokens_per_minute,
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the simulator until interrupted; exit code 2 on invalid arguments."""
    from core.simulator import run_standalone

    parser = argparse.ArgumentParser(
        prog="research-orchestrator simulator",
        description="Serve the offline Anthropic Messages API simulator (HTTP + SSE) on loopback. "
        "Point the SDK at it with AsyncAnthropic(base_url=URL, api_key='anything').",
    )
    add_cli_arguments(parser)
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        parser.print_usage()
        print(f"invalid simulator settings: {exc}")
        return 2
    run_standalone(settings, args.host, args.port)
    return 0
