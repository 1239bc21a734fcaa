"""The cap-stop headline: which cap bound, how much of it is left, and why no agent could go on.

It is what a user reads first when a capped run ends (``summary.json``'s ``reason``, the app's
notice and pane, the headless run's last lines), so it must answer "why did it stop with money
left?" without the log: requests shrink to fit (:mod:`core.budget.sizing`), so an agent stops
only when even its smallest call (one search, a short answer, its report held) would cross a
cap, and that call's worst case is what the headline names against what was left.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

CAP_LABELS = {
    "usd": "the run dollar cap",
    "searches": "the run search cap",
    "tokens": "the run token cap",
    "agent_usd": "the per-agent dollar cap",
    "agent_searches": "the per-agent search cap",
}


@dataclass(frozen=True, slots=True)
class Stop:
    """Why one agent stopped: the cap its smallest next call would cross, by how much."""

    cap: str
    reason: str  # "spent", or "reserved" (other agents' reservations left no room)
    needed: float | None = None  # that call's worst case (with its report held), in the cap's unit
    left: float | None = None  # what the cap had left for it then, in the same unit


@dataclass(frozen=True, slots=True)
class Spend:
    """The run's totals against its caps when it ended."""

    spent_usd: float
    searches: int
    tokens: int
    cap_usd: float | None
    search_cap: int | None
    token_cap: int | None


def amount(cap: str, value: float) -> str:
    """``value`` in the unit of ``cap``: dollars, searches or tokens."""
    if cap in ("usd", "agent_usd"):
        return f"${value:,.2f}"
    noun = "tokens" if cap == "tokens" else "searches"
    return f"{value:,.0f} {noun}"


def stop_message(stops: Mapping[str, Stop], spend: Spend) -> str:
    """One paragraph: the caps reached with what is left of each, then per binding cap the
    agents it stopped and the smallest call that no longer fitted against what was left."""
    totals, left = [], ""
    if spend.cap_usd is not None:
        totals.append(f"${spend.spent_usd:.2f} of ${spend.cap_usd:.2f} spent")
        left = f", ${max(0.0, spend.cap_usd - spend.spent_usd):.2f} of it left"
    if spend.search_cap is not None:
        totals.append(f"{spend.searches} of {spend.search_cap} searches")
    if spend.token_cap is not None:
        totals.append(f"{spend.tokens:,} of {spend.token_cap:,} tokens")
    by_cap: dict[str, list[str]] = {}
    for agent_id, stop in stops.items():
        by_cap.setdefault(stop.cap, []).append(agent_id)
    parts = []
    for cap, agents in sorted(by_cap.items()):
        waited = sum(1 for a in agents if stops[a].reason == "reserved")
        why = f", {waited} of them for lack of room beside others' reservations" if waited else ""
        names = ", ".join(agents[:5]) + (f" and {len(agents) - 5} more" if len(agents) > 5 else "")
        last = _why_none_went_on(cap, agents, stops)
        parts.append(f"{CAP_LABELS.get(cap, cap)} stopped {names}{why}{last}")
    lead = "a budget cap was reached" + (f" ({'; '.join(totals)}){left}" if totals else "")
    return f"{lead}: {'; '.join(parts) or 'no agent could start'}; results saved"


def _why_none_went_on(cap: str, agents: list[str], stops: Mapping[str, Stop]) -> str:
    """The last agent's smallest call against what was left to it: why nobody could go on."""
    last = stops[agents[-1]]
    if last.needed is None or last.left is None:
        return ""
    return (
        f" (no agent could go on: the smallest call left, one search and a short answer with its "
        f"report held, could cost up to {amount(cap, last.needed)} and {amount(cap, last.left)} "
        f"was left to it)"
    )
