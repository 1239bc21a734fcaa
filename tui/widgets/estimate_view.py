"""The pre-flight estimate as a compact table that fits a dialog in an 80-column terminal.

The command line prints :func:`core.estimate.format_estimate` (89 columns); in the app the
same numbers are a Rich table whose agent column gives way first, so no row wraps at 80 columns.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from core.estimate import Estimate, Span, estimate_notes


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _searches(span: Span) -> str:
    return f"{span.low:.0f}/{span.expected:.0f}/{span.high:.0f}"


def estimate_view(est: Estimate) -> RenderableType:
    """Per layer and agent: low, expected and high dollars and searches; the caps and warnings below."""
    table = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold", expand=False)
    table.add_column("", no_wrap=True, overflow="ellipsis", max_width=24, min_width=8)
    for label in ("low $", "exp. $", "high $"):
        table.add_column(label, justify="right", no_wrap=True)
    table.add_column("searches", justify="right", no_wrap=True)
    for layer in est.layers:
        table.add_row(
            Text(f"L{layer.layer} {layer.name} ({len(layer.agent_ids)})", style="bold"),
            *(_money(v) for v in (layer.usd.low, layer.usd.expected, layer.usd.high)),
            _searches(layer.searches),
        )
        for agent in (a for a in est.agents if a.layer == layer.layer):
            table.add_row(
                f"  {agent.agent_id}",
                *(_money(v) for v in (agent.usd.low, agent.usd.expected, agent.usd.high)),
                _searches(agent.searches),
                style="dim",
            )
    table.add_section()
    table.add_row(
        Text("total", style="bold"),
        *(Text(_money(v), style="bold") for v in (est.usd.low, est.usd.expected, est.usd.high)),
        Text(_searches(est.searches), style="bold"),
    )
    notes = [Text(line, style="bold" if line.startswith("WARNING") else "") for line in estimate_notes(est)]
    return Group(Text(f"Cost estimate for {est.program}", style="bold"), Text(), table, Text(), *notes)
