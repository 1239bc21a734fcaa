"""The sample program's run as core events, with frozen timestamps: one script for core and tui tests.

:func:`sodium_script` is layer 1 of ``sodium-ion-2026`` mid-flight (agents streaming, one done,
one failed, retries). The core's fold (``core.view``) and the app's screens are both tested on it,
so it lives here, beside neither.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from core import events as ev
from core.usage import TokenUsage

T0 = datetime(2026, 11, 24, 10, 2, 12).timestamp()  # local time, so clock strings are stable in any TZ
NOW = T0 + 41 * 60 + 12  # the frozen "now" of the header: 00:41:12 elapsed
RUN_ID = "20261124-100212-sodium-ion-2026-3f2a"
AGENTS = (
    ("market", 1, "Market and costs"),
    ("chemistry", 1, "Cell chemistry"),
    ("supply-chain", 1, "Supply chain"),
    ("policy", 1, "Policy and procurement"),
    ("patents", 1, "Patents"),
    ("cross-tech", 2, "Cross-analysis: technology"),
    ("cross-market", 2, "Cross-analysis: market"),
    ("synthesis", 3, "Synthesis"),
)

MARKET_TEXT = (
    "Stationary storage tenders in 2026 show sodium-ion winning on price in cold climates. "
    "Cell prices fell 18% year on year [1], while the cathode share of cell cost dropped below a third. "
    "LFP still leads on energy density, but the gap matters less for grid storage.\n\n"
    "Three markets stand out: China, India and the Nordics. "
)
CHEMISTRY_TEXT = (
    "Hard-carbon anodes now reach 350 mAh/g [2] in commercial cells, and Prussian white cathodes "
    "are in volume production. Cycle life above 6,000 cycles is reported for layered oxides. "
)
SUPPLY_TEXT = "Precursor supply is concentrated in two provinces; hard-carbon feedstock is the bottleneck. "


def at(seconds: float) -> float:
    return T0 + seconds


def words(text: str) -> Iterator[str]:
    """Split like a token stream: small fragments that often end mid-word."""
    piece = ""
    for index, char in enumerate(text):
        piece += char
        if len(piece) >= 7 or char == "\n" or index == len(text) - 1:
            yield piece
            piece = ""


def budget(
    seconds: float,
    spent: float,
    reserved: float,
    searches: int,
    tokens: int,
    burn: float,
    unconfirmed: float = 0.0,
    attempts: int = 0,
) -> ev.BudgetUpdated:
    """The ledger at ``seconds``; ``unconfirmed`` of ``spent`` charged as a bound for ``attempts``."""
    return ev.BudgetUpdated(
        run_id=RUN_ID,
        at=at(seconds),
        spent_usd=spent,
        reserved_usd=reserved,
        cap_usd=40.0,
        searches=searches,
        reserved_searches=5,
        search_cap=500,
        tokens=tokens,
        token_cap=5_000_000,
        burn_usd_per_min=burn,
        seconds_to_cap=(40.0 - spent) / burn * 60 if burn else None,
        unconfirmed_usd=unconfirmed,
        unconfirmed_attempts=attempts,
    )


def sodium_script() -> list[ev.Event]:
    """Layer 1 of the sample program mid-flight: three agents streaming, one done, one failed, a retry."""
    e: list[ev.Event] = [
        ev.RunStarted(
            run_id=RUN_ID,
            at=at(0),
            program="sodium-ion-2026",
            run_dir=f"runs/{RUN_ID}",
            agents=AGENTS,
            simulated=True,
        ),
        ev.LayerStarted(
            run_id=RUN_ID, at=at(0), layer=1, agent_ids=tuple(a for a, layer, _ in AGENTS if layer == 1)
        ),
    ]
    for agent, layer, title in AGENTS[:5]:
        e.append(ev.AgentStarted(run_id=RUN_ID, agent_id=agent, layer=1, turn=1, at=at(1), title=title))
        del layer
    burns = [0.05, 0.09, 0.12, 0.18, 0.15, 0.2, 0.18]
    for n, burn in enumerate(burns):
        cut = (0.31, 1) if n >= 5 else (0.0, 0)  # a stream cut off, charged as a bound
        e.append(budget(60 * (n + 1), 0.9 * (n + 1), 0.9, 6 * (n + 1), 260_000 * (n + 1), burn, *cut))
    e += [
        ev.SearchIssued(
            run_id=RUN_ID,
            agent_id="market",
            layer=1,
            turn=4,
            at=at(2300),
            query="sodium-ion grid storage tenders 2026",
            tool_use_id="srv_1",
        ),
        ev.SearchResultsReceived(
            run_id=RUN_ID,
            agent_id="market",
            layer=1,
            turn=4,
            at=at(2301),
            tool_use_id="srv_1",
            count=10,
            domains=("energy-storage.example", "grid-news.example", "tenders.example", "ieso.example"),
        ),
    ]
    e += [
        ev.TextStreamed(run_id=RUN_ID, agent_id="market", layer=1, turn=4, at=at(2302), text=w)
        for w in words(MARKET_TEXT)
    ]
    e += [
        ev.TextStreamed(run_id=RUN_ID, agent_id="chemistry", layer=1, turn=3, at=at(2302), text=w)
        for w in words(CHEMISTRY_TEXT)
    ]
    e += [
        ev.SearchIssued(
            run_id=RUN_ID,
            agent_id="chemistry",
            layer=1,
            turn=3,
            at=at(2303),
            query="layered oxide cathode cycle life 2026",
            tool_use_id="srv_2",
        ),
        ev.SearchResultsReceived(
            run_id=RUN_ID,
            agent_id="chemistry",
            layer=1,
            turn=3,
            at=at(2304),
            tool_use_id="srv_2",
            count=8,
            domains=("batteries.example",),
        ),
    ]
    e += [
        ev.TextStreamed(run_id=RUN_ID, agent_id="supply-chain", layer=1, turn=5, at=at(2302), text=w)
        for w in words(SUPPLY_TEXT)
    ]
    for agent, turn, cost, searches in (
        ("market", 4, 1.84, 12),
        ("chemistry", 3, 1.21, 9),
        ("supply-chain", 5, 2.02, 14),
        ("policy", 6, 1.77, 11),
        ("patents", 2, 0.40, 4),
    ):
        e.append(
            ev.TurnCompleted(
                run_id=RUN_ID,
                agent_id=agent,
                layer=1,
                turn=turn,
                at=at(2305),
                stop_reason="end_turn",
                cost_usd=cost,
                model="claude-sonnet-5",
                usage=TokenUsage(input_tokens=9000, output_tokens=1500, web_search_requests=searches),
            )
        )
    e += [
        ev.AgentFinished(
            run_id=RUN_ID,
            agent_id="policy",
            layer=1,
            turn=6,
            at=at(2306),
            status="completed",
            report_path=f"runs/{RUN_ID}/reports/policy.md",
            turns=6,
            searches=11,
            cost_usd=1.77,
        ),
        ev.RetryScheduled(
            run_id=RUN_ID,
            agent_id="patents",
            layer=1,
            turn=2,
            at=at(1742),
            request_id="req_01HX9ZPATENTS",
            error_kind="rate_limit",
            status_code=429,
            attempt=2,
            wait_s=12.0,
        ),
        ev.AttemptAbandoned(run_id=RUN_ID, agent_id="patents", layer=1, turn=2, at=at(1742), chars=312),
        ev.RetryScheduled(
            run_id=RUN_ID,
            agent_id="patents",
            layer=1,
            turn=2,
            at=at(1900),
            request_id="req_01HX9ZOVERLD",
            error_kind="overloaded",
            status_code=529,
            attempt=3,
            wait_s=20.0,
        ),
        ev.RetryScheduled(
            run_id=RUN_ID,
            agent_id="chemistry",
            layer=1,
            turn=3,
            at=at(2000),
            error_kind="connection",
            status_code=None,
            attempt=1,
            wait_s=1.5,
        ),
        ev.AgentFailed(
            run_id=RUN_ID,
            agent_id="patents",
            layer=1,
            turn=2,
            at=at(2100),
            error="500 api_error",
            status_code=500,
            error_type="api_error",
            request_id="req_01HX9Z500",
        ),
    ]
    return e
