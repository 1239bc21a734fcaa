"""What a resumed run has already spent: the largest figure any of its records accounts for.

Three records say what a run spent, and each can fall short. Its checkpoints: the newest may be
damaged or deleted, and the ledger the older ones hold then misses the turns after them. Its
journal (``events.jsonl``): a crash can lose its last lines, and a fork's holds only its own
charges over the spend it was seeded with. Its write-ahead of calls in flight: the calls a crash
left unsettled, which neither of the others knows were billed. A resume believing only one of them
could spend again money already billed, and across attempts cross a cap.

So the restored ledger gives each agent the largest of what the sources account for (every usage
field, the dollars and the calls: never less than any), then every call the write-ahead has in
flight that neither a checkpoint nor the journal saw end is charged its worst case at the prices
recorded when it was sent, whatever the config says now. Any gap is named: which checkpoints are
missing or damaged and how much they held.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from core.budget.ledger import BudgetLedger
from core.budget.pricing import PriceTable, cost_at
from core.persistence.atomic import DiskError
from core.persistence.batchlog import BatchLog, BatchRecords
from core.persistence.checkpoints import CheckpointInfo, RestorePoint
from core.persistence.inflight import InFlightLog
from core.persistence.journal_read import read_journal
from core.persistence.rundir import RunDir
from core.usage import ALL_BILLED, TokenUsage, Unconfirmed

log = logging.getLogger(__name__)

CHARGE_KINDS = frozenset({"turn_completed", "attempt_charged", "context_compacted"})
"""The journal's events that each close one call with a charge (as the ledger records it)."""
JOURNAL_KINDS = CHARGE_KINDS | {"run_started", "checkpoint_saved"}
CENT = 0.005
"""A gap smaller than half a cent is float noise between two sums of the same charges: not named."""

Priced = Literal["recorded", "catalogue", "dearest"]


@dataclass(slots=True)
class Account:
    """One agent's spend as one record accounts for it."""

    layer: int
    usage: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: float = 0.0
    calls: int = 0
    last_charge_at: float = -math.inf  # when the journal saw its latest charge
    unconfirmed: Unconfirmed = ALL_BILLED  # of cost_usd: bounds for attempts whose usage never arrived


@dataclass(slots=True)
class JournalAccount:
    """The spend ``events.jsonl`` accounts for: what its first ``run_started`` seeded each agent
    with (a fork's, or a resume's whose journal was lost) plus every charge after it."""

    agents: dict[str, Account] = field(default_factory=dict)
    saved: dict[str, float] = field(default_factory=dict)  # checkpoint id -> run spend then

    @property
    def spent_usd(self) -> float:
        return sum(a.cost_usd for a in self.agents.values())


def account_journal(events: Iterable[Mapping[str, Any]]) -> JournalAccount:
    """Fold the journal's charge events (and its checkpoints) into per-agent accounts."""
    account = JournalAccount()
    seeded = False
    total = 0.0
    for event in events:
        kind = event.get("kind")
        agent_id = event.get("agent_id")
        if kind == "run_started":
            if not seeded:
                seeded = True
                total = _seed(account, event)
        elif kind == "checkpoint_saved":
            checkpoint_id = event.get("checkpoint_id")
            if isinstance(checkpoint_id, str):
                account.saved[checkpoint_id] = total
        elif kind in CHARGE_KINDS and isinstance(agent_id, str):
            cost, usage = _number(event.get("cost_usd")), _usage(event.get("usage"))
            agent = account.agents.setdefault(agent_id, Account(layer=int(_number(event.get("layer")))))
            agent.usage += usage
            agent.cost_usd += cost
            agent.calls += 1
            agent.last_charge_at = max(agent.last_charge_at, _number(event.get("at")))
            if kind == "attempt_charged" and event.get("basis") != "reported":
                agent.unconfirmed = agent.unconfirmed.plus(cost, usage.web_search_requests)
            total += cost
    return account


def _seed(account: JournalAccount, started: Mapping[str, Any]) -> float:
    """The spend a journal starts from: its first ``run_started``'s seeds (a fork's parent's)."""
    layers = {a[0]: a[1] for a in started.get("agents") or () if isinstance(a, list | tuple) and len(a) >= 2}
    seeds = started.get("seeds")
    for agent_id, seed in (seeds if isinstance(seeds, dict) else {}).items():
        if not isinstance(seed, dict) or not isinstance(agent_id, str):
            continue
        searches = int(_number(seed.get("searches")))
        account.agents[agent_id] = Account(
            layer=int(_number(layers.get(agent_id))),
            usage=TokenUsage(web_search_requests=searches),
            cost_usd=_number(seed.get("cost_usd")),
            unconfirmed=Unconfirmed(
                _number(seed.get("unconfirmed_usd")),
                int(_number(seed.get("unconfirmed_attempts"))),
                int(_number(seed.get("unconfirmed_searches"))),
            ),
        )
    return account.spent_usd


def _number(value: object) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else 0.0  # type: ignore[arg-type]


def _usage(value: object) -> TokenUsage:
    try:
        return TokenUsage.from_dict(value) if isinstance(value, dict) else TokenUsage()
    except (TypeError, ValueError):
        return TokenUsage()


@dataclass(frozen=True, slots=True)
class RunRecords:
    """What a resume reads besides the checkpoints it restores."""

    journal: JournalAccount
    in_flight: dict[str, dict[str, Any]]
    restored_from: CheckpointInfo | None  # the checkpoint whose ledger is restored
    damaged: tuple[CheckpointInfo, ...]  # newer than what their agents restore, failing verification
    missing: tuple[str, ...]  # saved by the journal's account, gone from checkpoints/
    unrecorded: tuple[CheckpointInfo, ...] = ()  # saved after the journal's last record (a crash)
    batches: BatchRecords = field(default_factory=BatchRecords)  # requests submitted in Message Batches


def read_records(run: RunDir, point: RestorePoint, listed: Iterable[CheckpointInfo]) -> RunRecords:
    """Read the journal and the write-ahead of ``run`` (blocking: call it in a thread)."""
    try:
        journal = account_journal(read_journal(run.events_path, JOURNAL_KINDS))
    except (OSError, DiskError) as error:
        log.warning("events.jsonl of %s unreadable (%s): the spend is restored without it", run.run_id, error)
        journal = JournalAccount()
    listed = list(listed)
    present = {info.id for info in listed}
    missing = tuple(checkpoint_id for checkpoint_id in journal.saved if checkpoint_id not in present)
    return RunRecords(
        journal=journal,
        batches=BatchLog(run.inflight_dir).read(),
        in_flight=InFlightLog(run.inflight_dir).read_all(),
        restored_from=point.ledger_checkpoint,
        damaged=tuple(point.skipped),
        missing=missing,
        unrecorded=_crash_tail(listed, journal.saved),
    )


def _crash_tail(listed: list[CheckpointInfo], recorded: Mapping[str, float]) -> tuple[CheckpointInfo, ...]:
    """The good checkpoints saved after the journal's last record of one: a crash (kill -9) can
    land a checkpoint and lose the record written after it, and the journal is written in order,
    so only the newest can be unrecorded. The resume restores from them, so it records them;
    ``verify`` goes on naming any other checkpoint the journal never recorded."""
    last = max((info.seq for info in listed if info.id in recorded), default=-1)
    return tuple(info for info in listed if info.ok and info.seq > last and info.id not in recorded)


@dataclass(frozen=True, slots=True)
class LostCall:
    """A call in flight when the run's process ended, to be charged its worst case on resume."""

    agent_id: str
    layer: int
    model: str
    turn: int | None
    usage: TokenUsage
    cost_usd: float
    priced: Priced  # at the prices recorded when it was sent, the catalogue's, or the dearest known
    in_config: bool


@dataclass(frozen=True, slots=True)
class Recovery:
    """What :func:`reconcile` found: the calls to charge, and what to tell the user (or None)."""

    lost_calls: tuple[LostCall, ...] = ()
    notice: str | None = None
    unrecorded: tuple[CheckpointInfo, ...] = ()  # checkpoints the resume records in the journal


def reconcile(ledger: BudgetLedger, records: RunRecords, agents: Mapping[str, int]) -> Recovery:
    """Raise the restored ``ledger`` to the largest spend any record accounts for, and find the
    calls in flight at the crash (``agents``: the config's agents and their layers).

    Call it on the ledger just restored from the checkpoint, before any reservation.
    """
    saved_usd = ledger.spent_usd
    raised: dict[str, float] = {}
    for agent_id, account in records.journal.agents.items():
        layer = agents.get(agent_id, account.layer)
        added = ledger.raise_agent(
            agent_id, layer, account.usage, account.cost_usd, account.calls, account.unconfirmed
        )
        if added > 0:
            raised[agent_id] = raised.get(agent_id, 0.0) + added
    lost: list[LostCall] = []
    unreadable: list[str] = []
    for agent_id, entry in sorted(records.in_flight.items()):
        if entry.get("batched") is True and not records.batches.may_have_sent(agent_id, entry.get("turn")):
            continue  # queued for a batch that never went out: nothing was sent, nothing billed
        if records.batches.in_batch(agent_id, entry.get("turn")):
            continue  # its request is in a Message Batch: the resume collects its result and settles it
        try:
            call = _lost_call(ledger, records.journal, agent_id, entry, agents)
        except (KeyError, TypeError, ValueError):
            log.warning("in-flight record of %s unreadable: not charged", agent_id)
            unreadable.append(agent_id)
            continue
        spent_before = _number(entry.get("spent_before"))
        added = ledger.raise_agent(agent_id, _layer(entry, agents), TokenUsage(), spent_before, 0)
        if added > 0:
            raised[agent_id] = raised.get(agent_id, 0.0) + added
        if call is not None:
            lost.append(call)
    notice = _notice(records, saved_usd, ledger.spent_usd, raised, lost, unreadable)
    return Recovery(tuple(lost), notice, records.unrecorded)


def _layer(entry: Mapping[str, Any], agents: Mapping[str, int]) -> int:
    agent_id = entry.get("agent_id")
    if isinstance(agent_id, str) and agent_id in agents:
        return agents[agent_id]
    return max(1, int(_number(entry.get("layer"))))


def _lost_call(
    ledger: BudgetLedger,
    journal: JournalAccount,
    agent_id: str,
    entry: Mapping[str, Any],
    agents: Mapping[str, int],
) -> LostCall | None:
    """The entry's call if no record saw it end (its charge then is the caller's), else None."""
    closed_before = int(entry["closed_before"])
    usage = TokenUsage.from_dict(entry["worst_usage"])
    model = str(entry["model"])
    if ledger.closed(agent_id) > closed_before:
        return None  # a checkpoint saved after it ended
    if entry.get("released") is True:
        return None  # it failed billed nothing (never sent, or refused before it ran)
    written_at = entry.get("written_at")
    seen = journal.agents.get(agent_id)
    if isinstance(written_at, int | float) and seen is not None and seen.last_charge_at >= written_at:
        return None  # the journal saw it charged
    cost, priced = price_lost_call(ledger.prices, entry.get("prices"), model, usage)
    turn = entry.get("turn")
    return LostCall(
        agent_id=agent_id, layer=_layer(entry, agents), model=model,
        turn=turn if isinstance(turn, int) and not isinstance(turn, bool) else None,
        usage=usage, cost_usd=cost, priced=priced, in_config=agent_id in agents,
    )  # fmt: skip


def price_lost_call(
    prices: PriceTable, recorded: object, model: str, usage: TokenUsage
) -> tuple[float, Priced]:
    """A lost call's dollars: at the rates its entry recorded when it was sent; an older entry
    without them at the catalogue's (config over shipped) price of its model; a model no longer
    priced at all at the dearest rates known, so it is never charged less than it may have cost."""
    if isinstance(recorded, Mapping) and (cost := cost_at(recorded, usage)) is not None:
        return cost, "recorded"
    if prices.has_price(model):
        return prices.cost(model, usage), "catalogue"
    dearest = cost_at(prices.dearest_rates(), usage)
    assert dearest is not None  # the table's own rates are finite
    return dearest, "dearest"


_PRICED = {
    "recorded": "at the prices recorded when it was sent",
    "catalogue": "at the price list's rates for {model} (its record predates recorded prices)",
    "dearest": "at the dearest rates known (no price is known for {model} any more and its record kept none)",
}


def _notice(
    records: RunRecords,
    saved_usd: float,
    spent_usd: float,
    raised: Mapping[str, float],
    lost: Iterable[LostCall],
    unreadable: Iterable[str],
) -> str | None:
    """One message for every view: what the checkpoints lost, and the calls charged for the crash."""
    parts: list[str] = []
    if spent_usd - saved_usd >= CENT or records.missing or records.damaged:
        parts.append(_gap(records, saved_usd, spent_usd, raised))
    for call in lost:
        where = "" if call.in_config else " (an agent no longer in the config)"
        parts.append(
            f"a call of {call.agent_id}{where} in flight when the run's process ended is charged its worst "
            f"case, ${call.cost_usd:.4f}, {_PRICED[call.priced].format(model=call.model)}"
        )
    for agent_id in unreadable:
        parts.append(f"the in-flight record of {agent_id} is unreadable: a call it may name is not charged")
    return "; ".join(parts) if parts else None


def _gap(records: RunRecords, saved_usd: float, spent_usd: float, raised: Mapping[str, float]) -> str:
    lost: list[str] = []
    journal = records.journal.saved
    for info in records.damaged:
        held = journal.get(info.id)
        at = f", held ${held:.4f} of spend by events.jsonl" if held is not None else ""
        lost.append(f"{info.id} (damaged: {info.problem}{at})")
    for checkpoint_id in records.missing:
        lost.append(f"{checkpoint_id} (deleted, held ${journal[checkpoint_id]:.4f} of spend by events.jsonl)")
    newest = records.restored_from
    base = f"its newest good checkpoint ({newest.id})" if newest is not None else "its checkpoints"
    what = f"checkpoints lost: {', '.join(lost)}; " if lost else ""
    if spent_usd - saved_usd < CENT:
        return f"{what}the spend {base} holds, ${saved_usd:.4f}, is all the other records account for"
    by_agent = ", ".join(f"{agent_id} +${usd:.4f}" for agent_id, usd in sorted(raised.items()))
    return (
        f"{what}the run's spend is restored as ${spent_usd:.4f}, not the ${saved_usd:.4f} {base} holds: "
        f"events.jsonl and the in-flight records account for ${spent_usd - saved_usd:.4f} more ({by_agent}); "
        f"the caps count it"
    )
