"""Dollars, searches and tokens against their caps, spent versus reserved, burn rate and projection.

Spent dollars are of two kinds, told apart in the words and the bar: billed (the usage the API
reported: what the bill will say) and unconfirmed (the bound charged for attempts whose usage
never arrived); the caps count both, and what calls in flight and reports hold is reserved.

Budget events are "latest value wins": the meter keeps the newest and repaints at most four
times a second, whatever the event rate. A repaint touches only the parts whose text changed, and
asks for a layout of the screen only when one changed size (a layout is the costly part).
"""

from __future__ import annotations

from collections import deque

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Sparkline, Static

from core.events import BudgetUpdated
from tui.coalesce import Throttle
from tui.format import approx_duration, count, money
from tui.widgets.colors import style

BAR_FULL, BAR_UNCONFIRMED, BAR_RESERVED, BAR_FREE = "█", "▓", "▒", "░"


def bar(spent: float, reserved: float, cap: float | None, width: int) -> tuple[int, int]:
    """Cells of the bar for spent and for reserved (the rest is free)."""
    if not cap or width <= 0:
        return 0, 0
    spent_cells = min(width, round(width * spent / cap))
    reserved_cells = min(width - spent_cells, round(width * (spent + reserved) / cap) - spent_cells)
    return spent_cells, max(0, reserved_cells)


def split_cells(spent_cells: int, spent: float, unconfirmed: float) -> tuple[int, int]:
    """The spent cells as billed and unconfirmed ones (in proportion; a nonzero part shows)."""
    if spent <= 0 or unconfirmed <= 0 or spent_cells == 0:
        return spent_cells, 0
    cells = min(spent_cells, max(1, round(spent_cells * unconfirmed / spent)))
    return spent_cells - cells, cells


class BudgetMeter(Widget):
    DEFAULT_CSS = """
    BudgetMeter { border: round $panel-lighten-2; border-title-color: $text; height: auto; padding: 0 1;
                  background: $surface; }
    BudgetMeter #meter-lines { height: auto; text-wrap: nowrap; text-overflow: ellipsis; }
    BudgetMeter #burn-row { height: 1; }
    BudgetMeter #burn { width: auto; }
    BudgetMeter #projection { width: auto; }
    BudgetMeter Sparkline { width: 1fr; height: 1; margin: 0 1; }
    BudgetMeter Sparkline > .sparkline--max-color { color: $warning; }
    BudgetMeter Sparkline > .sparkline--min-color { color: $success 60%; }
    """
    REPAINT_INTERVAL = 0.25
    HISTORY = 60

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.budget: BudgetUpdated | None = None
        self._shown: dict[str, tuple[str, int, int]] = {}  # part id -> (text, lines, widest line)
        self.burn_history: deque[float] = deque(maxlen=self.HISTORY)
        self.ended = False
        self._repaints = Throttle(self, self.REPAINT_INTERVAL, self.repaint)
        self.paints = 0

    def compose(self) -> ComposeResult:
        yield Static(id="meter-lines")
        with Horizontal(id="burn-row"):
            yield Static(id="burn")
            yield Sparkline([], id="burn-spark")
            yield Static(id="projection")

    def on_mount(self) -> None:
        self.border_title = "Budget"
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.repaint())
        self.repaint()

    def run_ended(self) -> None:
        """Nothing is burning any more: the rate and the projection give way to the final figures."""
        self.ended = True
        self.repaint()

    def update_budget(self, budget: BudgetUpdated) -> None:
        self.budget = budget
        self.burn_history.append(budget.burn_usd_per_min)
        self._repaints.poke()

    def on_resize(self) -> None:
        self.repaint()

    def repaint(self) -> None:
        self.paints += 1
        b = self.budget
        width = max(10, self.content_region.width)
        if b is None:
            self._show("meter-lines", Text("waiting for the first budget update…", style="dim"))
            self._show("burn", "")
            self._show("projection", "")
            return
        self._show("meter-lines", self._lines(b, width))
        self._show_split(b, width)
        if self.ended:
            self._show("burn", "run ended")
            self.query_one("#burn-spark", Sparkline).display = False
            self._show("projection", "")
            return
        self._show("burn", f"burn {money(b.burn_usd_per_min)}/min")
        history = list(self.burn_history)
        self.query_one("#burn-spark", Sparkline).data = history if max(history, default=0) > 0 else []
        projection = "no cap" if b.seconds_to_cap is None else f"cap in {approx_duration(b.seconds_to_cap)}"
        self._show("projection", projection)

    def _show_split(self, b: BudgetUpdated, width: int) -> None:
        """Of the dollars spent, billed and unconfirmed, on the meter's lower border (no line more)."""
        attempts = b.unconfirmed_attempts
        if width >= 46:
            split = f"{money(b.billed_usd)} billed · {money(b.unconfirmed_usd)} unconfirmed"
            split += f" ({attempts} attempt{'s' if attempts != 1 else ''})" if attempts else ""
        else:
            split = f"{money(b.billed_usd)} billed · {money(b.unconfirmed_usd)} unconf."
        if self.border_subtitle != split:
            self.border_subtitle = split

    def _show(self, part: str, content: Text | str) -> None:
        """Update the Static ``part`` if its text changed; lay out again only if its size did."""
        text = content if isinstance(content, Text) else Text(content)
        lines = text.plain.split("\n")
        key = (text.markup, len(lines), max(cell_len(line) for line in lines))
        shown = self._shown.get(part)
        if shown == key:
            return
        self._shown[part] = key
        self.query_one(f"#{part}", Static).update(content, layout=shown is None or shown[1:] != key[1:])

    def _lines(self, b: BudgetUpdated, width: int) -> Text:
        """Four lines: dollars spent (what the caps count) and reserved, their bar (billed, unconfirmed,
        reserved), searches and tokens, their bars; shorter words when narrow."""
        wide = width >= 46
        muted = style(self.app, "foreground", dim=True)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{money(b.spent_usd)} spent", style=style(self.app, "foreground", bold=True))
        text.append(
            f"  {money(b.reserved_usd)} reserved" if wide else f" +{b.reserved_usd:,.2f} reserved",
            style=style(self.app, "warning"),
        )
        cap = f"of {money(b.cap_usd)}" if b.cap_usd else "no $ cap"
        text.append(f"  {cap}" if wide else f" {cap}", style=muted)
        text.append("\n")
        self._bar(text, b.spent_usd, b.reserved_usd, b.cap_usd, width, unconfirmed=b.unconfirmed_usd)
        text.append("\n")
        half = max(4, (width - 2) // 2)
        searches = f"searches {b.searches}" if wide else f"srch {b.searches}"
        if b.reserved_searches:
            searches += f" +{b.reserved_searches}"
        searches += f" of {b.search_cap}" if b.search_cap else ""
        tokens = (
            ("tokens " if wide else "tok ")
            + count(b.tokens)
            + (f" of {count(b.token_cap)}" if b.token_cap else "")
        )
        text.append(f"{searches:<{half}}  {tokens}")
        text.append("\n")
        self._bar(text, b.searches, b.reserved_searches, b.search_cap, half)
        text.append("  ")
        self._bar(text, b.tokens, 0, b.token_cap, half)
        return text

    def _bar(
        self,
        text: Text,
        spent: float,
        reserved: float,
        cap: float | None,
        width: int,
        unconfirmed: float = 0.0,
    ) -> None:
        if not cap:
            text.append("·" * width, style="dim")
            return
        full, held = bar(spent, reserved, cap, width)
        billed, bound = split_cells(full, spent, unconfirmed)
        text.append(BAR_FULL * billed, style=style(self.app, "primary"))
        text.append(BAR_UNCONFIRMED * bound, style=style(self.app, "error"))
        text.append(BAR_RESERVED * held, style=style(self.app, "warning"))
        text.append(BAR_FREE * (width - full - held), style=style(self.app, "foreground", dim=True))
