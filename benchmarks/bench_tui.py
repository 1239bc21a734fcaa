"""The terminal app under load: key press to screen update, and event-loop lag.

20 agents stream 200 tokens a second each (simulator in its own process: 100 ms to the first
byte, ``--tokens-per-second 200``, 250-700 output tokens and one search a turn, 30 turns so
nobody finishes inside the window) while the real app (:class:`tui.app.ResearchApp`, the real
orchestrator through ``start_run``) runs headless under ``App.run_test()`` at 160x48, on one event
loop with the run, as in production.

* ``event_loop_lag_p99_ms``: a task sleeps 20 ms in a loop; lag = actual wake-up - expected,
  sampled over the whole window.
* ``tui_input_latency_p95_ms``: the agent table has focus; ``down`` / ``up`` are pressed in turn
  (150-250 ms apart). Latency = from just before the key is posted to the first time the app hands
  a rendered frame to its display (``App._display``, wrapped) with the table's cursor on the new
  row: key handling, the cursor move, layout and compositing of the update. (Headless, the final
  write of the frame's escape codes to a terminal is the only step left out.)

The same two figures are measured again with a layer of 100 agents (``..._100_agents``) streaming
40 tokens a second each (the same 4,000 tokens a second in all, so the figure is about what 100
agents cost the app: 100 rows, 100 panes kept current of which only those that fit are shown).

Quick: a 4 s warm-up, then 10 s (about 50 presses). Full: 60 s (about 280 presses). If the TUI cannot be
imported the figures are null with the reason.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    SimulatorProcess,
    bench_main,
    flat_program,
    scratch_dir,
    simulator_args,
    write_program,
)

AGENTS = 20
MANY_AGENTS = 100  # a layer of 100 agents: ``tui_input_latency_p95_ms_100_agents`` (same goal, 100 ms)
MANY_TOKENS_PER_SECOND = 40  # each of the 100: the same 4,000 tokens a second in all as 20 x 200
TOKENS_PER_SECOND = 200


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


async def _measure(
    program: Path,
    runs: Path,
    base_url: str,
    window_s: float,
    presses: int,
    agents_n: int = AGENTS,
    tokens_per_second: int = TOKENS_PER_SECOND,
) -> dict[str, Any]:
    from textual import events

    from core.runner import start_run
    from tui.app import ResearchApp
    from tui.screens.main import MainScreen
    from tui.widgets.agent_table import AgentTable

    async def factory() -> Any:
        return await start_run(program, runs, simulate=True, base_url=base_url)

    app = ResearchApp(control_factory=factory, runs_dir=runs)
    frames: list[tuple[float, int]] = []  # (time, cursor row) of each frame handed to the display
    original_display = app._display
    table_ref: list[AgentTable] = []

    def display(screen: Any, renderable: Any) -> None:
        original_display(screen, renderable)
        if renderable is not None and table_ref:
            frames.append((time.perf_counter(), table_ref[0].cursor_row))

    app._display = display  # type: ignore[method-assign]
    lags: list[float] = []
    latencies: list[float] = []
    async with app.run_test(size=(160, 48)) as pilot:
        deadline = time.monotonic() + 30
        while not isinstance(app.screen, MainScreen) or app.screen.table.row_count < agents_n:
            if time.monotonic() > deadline:
                raise RuntimeError("the main screen did not show the agents")
            await pilot.pause(0.1)
        screen = app.screen
        table = screen.table
        table_ref.append(table)
        table.focus()
        await asyncio.sleep(4.0)  # every agent streaming

        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        async def monitor() -> None:
            interval = 0.02
            while not stop.is_set():
                expected = loop.time() + interval
                await asyncio.sleep(interval)
                lags.append(max(0.0, loop.time() - expected) * 1000)

        def send_key(key: str) -> None:
            """As a terminal would: the driver hands the app a key event (``Pilot.press`` would
            then also wait for the whole process to go idle, which it never does under load)."""
            event = events.Key(key, None)
            event.set_sender(app)
            assert app._driver is not None
            app._driver.send_message(event)

        monitor_task = asyncio.create_task(monitor())
        started = time.monotonic()
        direction = "down"
        for index in range(presses):
            row = table.cursor_row
            if row >= agents_n - 1:
                direction = "up"
            elif row <= 0:
                direction = "down"
            target = row + (1 if direction == "down" else -1)
            seen = len(frames)
            t0 = time.perf_counter()
            send_key(direction)
            while True:
                hit = next((t for t, r in frames[seen:] if r == target), None)
                if hit is not None:
                    latencies.append((hit - t0) * 1000)
                    break
                if time.perf_counter() - t0 > 5:
                    latencies.append(float("inf"))  # never painted: counts as a miss
                    break
                await asyncio.sleep(0.002)
            if time.monotonic() - started >= window_s and index >= 10:
                break
            await asyncio.sleep(random.uniform(0.15, 0.25))
        stop.set()
        await monitor_task
        measured_s = time.monotonic() - started
        control = app.control
        agents = getattr(control, "agents", ())
        streaming = sum(
            1 for a in agents if control is not None and control.agent_status(a.id).value == "running"
        )
        await app.stop_run()
    return {
        "tui_input_latency_p95_ms": percentile(latencies, 0.95),
        "event_loop_lag_p99_ms": percentile(lags, 0.99),
        "tui.agents": agents_n,
        "tui.tokens_per_second_each": tokens_per_second,
        "tui.window_s": measured_s,
        "tui.key_presses": len(latencies),
        "tui.input_latency_p50_ms": percentile(latencies, 0.5),
        "tui.input_latency_max_ms": max(latencies) if latencies else None,
        "tui.loop_lag_samples": len(lags),
        "tui.loop_lag_p50_ms": percentile(lags, 0.5),
        "tui.loop_lag_max_ms": max(lags) if lags else None,
        "tui.frames": len(frames),
        "tui.frames_per_s": len(frames) / measured_s if measured_s else None,
        "tui.agents_running_at_end": streaming,
    }


def run(quick: bool) -> dict[str, Any]:
    window_s, presses = (10.0, 1000) if quick else (60.0, 1000)
    with scratch_dir() as tmp:
        os.environ["XDG_CONFIG_HOME"] = str(tmp / "xdg-config")  # the app's settings stay out of ~/.config
        try:
            import tui.app  # noqa: F401
        except Exception as error:  # the TUI is another engineer's work: report, do not fail
            return {"tui_input_latency_p95_ms": None, "event_loop_lag_p99_ms": None,
                    "tui.note": f"tui not importable: {error!r}"}  # fmt: skip
        figures: dict[str, Any] = {}
        cases = (
            (AGENTS, TOKENS_PER_SECOND, ""),
            (MANY_AGENTS, MANY_TOKENS_PER_SECOND, f"_{MANY_AGENTS}_agents"),
        )
        for agents_n, rate, suffix in cases:
            args = simulator_args(latency_ms=100, tokens_per_second=rate)
            with SimulatorProcess(*args) as sim:
                program = write_program(tmp / f"tui{agents_n}", flat_program(agents_n, max_turns=30))
                try:
                    measured = asyncio.run(
                        _measure(
                            program, tmp / f"runs{agents_n}", sim.base_url, window_s, presses, agents_n, rate
                        )
                    )
                except Exception as error:
                    figures |= {f"tui_input_latency_p95_ms{suffix}": None,
                                f"tui{suffix}.note": f"benchmark failed: {error!r}",
                                f"tui{suffix}.traceback": traceback.format_exc(limit=5)}  # fmt: skip
                    if not suffix:
                        figures["event_loop_lag_p99_ms"] = None
                    continue
            if suffix:  # the same figures for a layer of 100 agents, under their own names
                measured = {
                    (
                        f"{key}{suffix}"
                        if key.endswith("_ms") and "." not in key
                        else f"tui{suffix}.{key[4:]}"
                    ): value
                    for key, value in measured.items()
                }
            figures |= measured
    figures["tui.latency_note"] = "key posted -> first frame composed with the cursor on the new row"
    return figures


if __name__ == "__main__":
    bench_main(run)
