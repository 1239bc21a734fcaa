"""The meter tells billed dollars (the usage the API reported) from unconfirmed ones (bounds for
attempts whose usage never arrived) and from what calls in flight hold, in words and in the bar."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Static

from core.events import BudgetUpdated
from tests.waits import until
from tui.themes import BUILTIN_THEMES_DIR, load_themes
from tui.widgets.budget_meter import (
    BAR_FREE,
    BAR_FULL,
    BAR_RESERVED,
    BAR_UNCONFIRMED,
    BudgetMeter,
    split_cells,
)


class MeterApp(App[None]):
    def compose(self) -> ComposeResult:
        yield BudgetMeter(id="meter")

    def on_mount(self) -> None:
        for theme in load_themes(BUILTIN_THEMES_DIR)[0]:
            self.register_theme(theme)
        self.theme = "research-night"


def budget(**overrides: float | int) -> BudgetUpdated:
    values: dict[str, float | int | None] = {
        "spent_usd": 4.0, "unconfirmed_usd": 1.0, "unconfirmed_attempts": 3, "reserved_usd": 2.0,
        "cap_usd": 10.0, "searches": 12, "reserved_searches": 2, "search_cap": 100, "tokens": 1000,
        "token_cap": None, "burn_usd_per_min": 0.5, "seconds_to_cap": 600.0,
    }  # fmt: skip
    values.update(overrides)
    return BudgetUpdated(run_id="r", **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(("width", "split"), [(80, "$3.00 billed · $1.00 unconfirmed (3 attempts)"),
                                              (40, "$3.00 billed · $1.00 unconf.")])  # fmt: skip
async def test_billed_unconfirmed_and_reserved_are_told_apart(width: int, split: str) -> None:
    app = MeterApp()
    async with app.run_test(size=(width, 12)) as pilot:
        meter = app.query_one(BudgetMeter)
        meter.update_budget(budget())
        lines = meter.query_one("#meter-lines", Static)
        await until(pilot, lambda: meter.border_subtitle == split, "the meter's split on its border")
        first, dollars, *_ = str(lines.render()).splitlines()
        assert "$4.00 spent" in first and "reserved" in first and "2.00" in first and "$10.00" in first
        # the bar: billed, then unconfirmed, then reserved, then free, in proportion to the cap
        cells = dollars.strip()
        runs = [glyph for i, glyph in enumerate(cells) if i == 0 or cells[i - 1] != glyph]
        assert runs == [BAR_FULL, BAR_UNCONFIRMED, BAR_RESERVED, BAR_FREE], cells


def test_the_spent_cells_split_in_proportion_and_a_small_unconfirmed_part_still_shows() -> None:
    assert split_cells(20, 4.0, 1.0) == (15, 5)
    assert split_cells(20, 4.0, 0.0) == (20, 0)
    assert split_cells(20, 100.0, 0.01) == (19, 1)
    assert split_cells(0, 0.0, 0.0) == (0, 0)
