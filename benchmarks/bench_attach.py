"""An app attached to another process's run: how late it shows what the owner publishes.

The owner is a process of its own (the real orchestrator through ``start_run``) running 20 agents
that stream 200 tokens a second each from the simulator process (100 ms to the first byte, 30
turns, so nobody finishes inside the window). This process runs the real app attached to it
(:class:`tui.app.ResearchApp` on ``tui.data.attach_factory``: the owner's snapshot, then
``events.jsonl`` followed from its offset, commands over the control socket) headless at 160x48.

* ``attach_lag_p95_ms``: for every stream fragment the owner writes to its journal (a
  ``text_streamed`` line; its ``at`` is when the owner published the line's first fragment), the
  time from that moment to the first frame the app hands to its display (``App._display``,
  wrapped) after the fragment is in the agent's pane. It includes the journal's own coalescing
  (a line waits up to 100 ms for more text), the owner's notice on the socket, the read of the new
  bytes, the fold, the pane's 100 ms coalescing and the frame. Both processes read the same wall
  clock. A fragment whose last word is still held back by the pane (it waits for the word to end)
  is matched on the text before that word. Only fragments of agents with a pane on screen when
  the fragment reaches the app count (at 160x48 the panes that fit, about half of the 20;
  ``attach.fragments_off_screen`` counts the others: an agent given a pane later shows its text
  at once, which is the app's choice of whom to show, not a lag), and
  ``attach.fragments_never_shown`` those on screen that no frame showed before the end.
* ``attach.received_p95_ms``: the same, up to the moment the attached process folds the fragment
  (before the pane and the frame): the part of the lag the journal and the socket account for.
* ``attach.path_p95_ms``: publish -> folded by an ``AttachedRun`` with no app (the journal, the
  socket and the read alone), measured before the app attaches.
* ``attach.hosted_lag_p95_ms``: the same figure for the app hosting the same run itself (the
  default mode), measured right after: what attaching adds is the difference, whatever the load.
* ``attach.owner_cpu_share_*``: the owner's CPU seconds per second over a window with no app
  attached and over the measured window with the app attached (an attached app should add
  nothing measurable to the owner's work).

Quick: 3 s warm-up, a 4 s window unattached, then (after the app's own 3 s warm-up) 10 s attached,
then the hosted baseline (3 s warm-up, 10 s). Full: 5 s warm-ups, 20 s windows.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.bench_tui import percentile
from benchmarks.harness import (
    ROOT,
    SimulatorProcess,
    bench_main,
    flat_program,
    process_cpu_seconds,
    scratch_dir,
    simulator_args,
    write_program,
)

AGENTS = 20
TOKENS_PER_SECOND = 200
MARKER_CHARS = 30


def start_owner(program: Path, runs: Path, base_url: str) -> tuple[subprocess.Popen[str], str]:
    """The owner in a process of its own; returns it and its run id (printed once it serves)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_attach", "--owner", str(program), str(runs), base_url],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    run_id = process.stdout.readline().strip()
    if not run_id:
        process.kill()
        raise RuntimeError("the owner process did not start")
    return process, run_id


def owner_main(program: str, runs: str, base_url: str) -> None:
    from core.remote.owner import wait_until_serving
    from core.runner import start_run

    async def main() -> None:
        owner = await start_run(Path(program), Path(runs), simulate=True, base_url=base_url)
        task = asyncio.create_task(owner.run())
        await wait_until_serving(owner.run_dir)
        print(owner.run_id, flush=True)
        await task

    asyncio.run(main())


def marker_of(text: str) -> str | None:
    """What of a fragment the pane shows at once: up to its last whitespace (then maybe half a word)."""
    shown = text[: max(text.rfind(" "), text.rfind("\n"))].rstrip()
    marker = shown[-MARKER_CHARS:]
    return marker if len(marker) >= 8 else None


class FrameLag:
    """Publish -> first frame showing it, for the stream fragments an app's run publishes."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.measuring = False
        self.pending: list[tuple[str, str, float]] = []  # (agent, marker, published at)
        self.received: list[float] = []
        self.lags: list[float] = []
        self.frames = 0
        self.off_screen = 0  # fragments of agents without a pane when they arrived: not measured
        self._display = app._display
        app._display = self.display

    def on_event(self, event: Any) -> None:
        from core import events as ev
        from tui.screens.main import MainScreen

        if self.measuring and isinstance(event, ev.TextStreamed) and event.agent_id:
            marker = marker_of(event.text)
            screen = self.app.screen
            if not isinstance(screen, MainScreen) or screen.pane(event.agent_id) is None:
                # no pane shows the agent now: when one does later, it shows this text at once,
                # but that is a choice of what to show (the busiest agents), not a lag
                self.off_screen += 1
            elif marker is not None:
                self.pending.append((event.agent_id, marker, event.at))
                self.received.append((time.time() - event.at) * 1000)

    def display(self, screen: Any, renderable: Any) -> None:
        from tui.screens.main import MainScreen

        self._display(screen, renderable)
        main = self.app.screen
        if renderable is None or not self.pending or not isinstance(main, MainScreen):
            return
        self.frames += 1
        now = time.time()
        keep = []
        for agent, marker, at in self.pending:
            pane = main.pane(agent)
            if pane is not None and marker in pane.text:
                self.lags.append((now - at) * 1000)
            else:
                keep.append((agent, marker, at))
        self.pending[:] = keep

    async def window(self, pilot: Any, warmup_s: float, window_s: float) -> float:
        """Wait for every agent's row, warm up, then measure for ``window_s``; the seconds measured."""
        from tui.screens.main import MainScreen

        deadline = time.monotonic() + 60
        while not isinstance(self.app.screen, MainScreen) or self.app.screen.table.row_count < AGENTS:
            if time.monotonic() > deadline:
                raise RuntimeError("the app did not show the agents")
            await pilot.pause(0.1)
        await asyncio.sleep(warmup_s)
        self.measuring = True
        started = time.monotonic()
        await asyncio.sleep(window_s)
        self.measuring = False
        measured = time.monotonic() - started
        await asyncio.sleep(1.0)  # the window's last fragments reach a frame
        return measured


async def _path_only(runs: Path, run_id: str, window_s: float) -> dict[str, Any]:
    """Publish -> folded by an AttachedRun with no app around it: the journal and the socket alone."""
    from core import events as ev
    from core.remote.attached import attach_run

    attached = await attach_run(runs, run_id)
    lags: list[float] = []
    measuring = [False]

    def on_event(event: ev.Event) -> None:
        if measuring[0] and isinstance(event, ev.TextStreamed):
            lags.append((time.time() - event.at) * 1000)

    attached.bus.listen(on_event)
    task = asyncio.create_task(attached.run())
    await asyncio.sleep(2.0)
    measuring[0] = True
    await asyncio.sleep(window_s)
    measuring[0] = False
    task.cancel()  # detach
    await asyncio.gather(task, return_exceptions=True)
    return {"attach.path_p50_ms": percentile(lags, 0.5), "attach.path_p95_ms": percentile(lags, 0.95)}


async def _attached(
    runs: Path, run_id: str, owner_pid: int, warmup_s: float, unattached_s: float, window_s: float
) -> dict[str, Any]:
    from core.remote.attached import attach_run
    from core.remote.channel import call
    from tui.app import ResearchApp

    await asyncio.sleep(warmup_s)  # every agent streaming, nobody attached
    cpu_before = process_cpu_seconds(owner_pid)
    await asyncio.sleep(unattached_s)
    cpu_unattached = (process_cpu_seconds(owner_pid) or 0.0) - (cpu_before or 0.0)
    path = await _path_only(runs, run_id, unattached_s)

    async def factory() -> Any:
        control = await attach_run(runs, run_id)
        control.bus.listen(meter.on_event)
        return control

    app = ResearchApp(control_factory=factory, runs_dir=runs)
    meter = FrameLag(app)
    async with app.run_test(size=(160, 48)) as pilot:
        cpu_start = process_cpu_seconds(owner_pid)
        measured_s = await meter.window(pilot, warmup_s, window_s)
        cpu_attached = (process_cpu_seconds(owner_pid) or 0.0) - (cpu_start or 0.0)
        await call(runs / run_id / "control.sock", {"op": "stop"})
        await app.stop_run()
    lags = meter.lags
    return {
        "attach_lag_p95_ms": percentile(lags, 0.95),
        "attach.lag_p50_ms": percentile(lags, 0.5),
        "attach.lag_p99_ms": percentile(lags, 0.99),
        "attach.lag_max_ms": max(lags) if lags else None,
        "attach.received_p50_ms": percentile(meter.received, 0.5),
        "attach.received_p95_ms": percentile(meter.received, 0.95),
        "attach.fragments_measured": len(lags),
        "attach.fragments_never_shown": len(meter.pending),
        "attach.fragments_off_screen": meter.off_screen,
        "attach.agents": AGENTS,
        "attach.tokens_per_second_each": TOKENS_PER_SECOND,
        "attach.window_s": measured_s,
        "attach.frames_checked": meter.frames,
        "attach.owner_cpu_share_unattached": cpu_unattached / unattached_s,
        "attach.owner_cpu_share_attached": cpu_attached / (measured_s + 1.0),
        **path,
    }


async def _hosted(
    program: Path, runs: Path, base_url: str, warmup_s: float, window_s: float
) -> dict[str, Any]:
    """The same figure for an app that hosts the run itself (the default): the baseline."""
    from core.runner import start_run
    from tui.app import ResearchApp

    async def factory() -> Any:
        control = await start_run(program, runs, simulate=True, base_url=base_url)
        control.bus.listen(meter.on_event)
        return control

    app = ResearchApp(control_factory=factory, runs_dir=runs)
    meter = FrameLag(app)
    async with app.run_test(size=(160, 48)) as pilot:
        await meter.window(pilot, warmup_s, window_s)
        await app.stop_run()
    return {
        "attach.hosted_lag_p50_ms": percentile(meter.lags, 0.5),
        "attach.hosted_lag_p95_ms": percentile(meter.lags, 0.95),
        "attach.hosted_fragments_measured": len(meter.lags),
        "attach.hosted_fragments_never_shown": len(meter.pending),
        "attach.hosted_fragments_off_screen": meter.off_screen,
    }


def run(quick: bool) -> dict[str, Any]:
    warmup_s, unattached_s, window_s = (3.0, 4.0, 10.0) if quick else (5.0, 20.0, 20.0)
    args = simulator_args(latency_ms=100, tokens_per_second=TOKENS_PER_SECOND)
    with scratch_dir() as tmp:
        os.environ["XDG_CONFIG_HOME"] = str(tmp / "xdg-config")
        with SimulatorProcess(*args) as sim:
            program = write_program(tmp / "attach", flat_program(AGENTS, max_turns=30))
            owner, run_id = start_owner(program, tmp / "runs", sim.base_url)
            try:
                figures = asyncio.run(
                    _attached(tmp / "runs", run_id, owner.pid, warmup_s, unattached_s, window_s)
                )
            except Exception as error:
                return {"attach_lag_p95_ms": None, "attach.note": f"benchmark failed: {error!r}",
                        "attach.traceback": traceback.format_exc(limit=5)}  # fmt: skip
            finally:
                try:
                    owner.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    owner.kill()
            try:  # the baseline: the same run hosted by the app itself
                figures.update(
                    asyncio.run(_hosted(program, tmp / "hosted-runs", sim.base_url, warmup_s, window_s))
                )
            except Exception as error:
                figures["attach.hosted_note"] = f"baseline failed: {error!r}"
    figures["attach.lag_note"] = (
        "owner publishes a stream fragment -> first frame with it in the attached pane"
    )
    return figures


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--owner":
        owner_main(*sys.argv[2:])
    else:
        bench_main(run)
