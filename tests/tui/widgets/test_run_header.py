"""The header's clock: how long the run has been running."""

from __future__ import annotations

from core.view import RunInfo
from tui.widgets.run_header import RunHeader


def test_the_clock_of_a_resumed_run_leaves_out_the_time_it_was_stopped() -> None:
    # first started at 1,000 s, ran 600 s, stopped for hours, resumed at 10,000 s; now 10,005 s
    info = RunInfo(run_id="r", started_at=1_000.0, running_since=10_000.0, active_before_s=600.0)
    assert RunHeader(info, clock=lambda: 10_005.0).elapsed_s == 605.0
    fresh = RunInfo(run_id="r", started_at=1_000.0)
    assert RunHeader(fresh, clock=lambda: 1_005.0).elapsed_s == 5.0
