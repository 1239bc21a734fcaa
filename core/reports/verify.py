"""``verify RUN``: check that a run's files agree with each other and its reports cite what it found.

Four checks, each reading only the run directory:

- every checkpoint verifies (checksum, chain, fingerprint), every checkpoint the journal says was
  saved is there, and every checkpoint there is one the journal recorded (same checksum) for an
  agent of the run: a checkpoint copied from another run or forged with recomputed hashes is named,
  and its search results are not trusted;
- ``summary.json`` agrees with the checkpoints (each agent's turns, searches and cost) and with the
  journal (searches made; dollars billed, from the usage the API reported, and unconfirmed, the
  bounds charged for attempts whose usage never arrived), and its totals are the sums of its agents;
- every link a Markdown viewer would render in every report (any scheme, any case, bare ``www.``,
  ``//host``, autolinks, raw HTML) is a URL that a search in this run returned, from the search
  results stored in the trusted checkpoints;
- every numbered citation resolves: ``[[n]](url)`` is source ``n`` of the report's Sources list,
  and no ``[n]`` or ``[agent:n]`` marker is left unresolved. Findings paragraphs that cite nothing
  are noted (a note, not a problem: a report may rightly cite nothing).

The journal is read once, as a stream, so memory stays bounded whatever its size. Each problem
names its place (a file, with a line or an agent where it helps).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.persistence.atomic import DiskError, UnsafePathError, read_regular
from core.persistence.checkpoints import (
    CheckpointCorrupt,
    CheckpointInfo,
    CheckpointStore,
    decode_checkpoint,
    read_checkpoint_file,
)
from core.persistence.journal_read import iter_journal
from core.persistence.jsontext import parse_json
from core.persistence.rundir import SUMMARY_MAX_BYTES, RunDir
from core.reports.citethrough import LABELS
from core.reports.findings import CITATION, body_start, findings_paragraphs
from core.reports.links import rendered_links
from core.reports.numbered import MARKERS
from core.reports.parse import parse_report
from core.reports.sources import search_results

REPORT_MAX_BYTES = 64 * 1024 * 1024
COST_TOLERANCE = 1e-5  # summary.json rounds each figure to 6 decimals
_JOURNALED = ("checkpoint_saved", "turn_completed", "attempt_charged", "context_compacted")


@dataclass(frozen=True, slots=True)
class Problem:
    place: str
    message: str

    def __str__(self) -> str:
        return f"{self.place}: {self.message}"


@dataclass(slots=True)
class Verification:
    """What was checked (lines for the user), every problem found, and notes that are not problems."""

    checked: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, place: str, message: str) -> None:
        self.problems.append(Problem(place, message))


@dataclass(slots=True)
class JournalFacts:
    """What ``events.jsonl`` says, from one streamed pass: the checkpoints it recorded (id ->
    agent and checksum) and what was charged (billed and unconfirmed dollars and searches)."""

    recorded: dict[str, tuple[str, str]] = field(default_factory=dict)
    money: _Journaled = field(default_factory=lambda: _Journaled())

    @classmethod
    def read(cls, run: RunDir) -> JournalFacts:
        facts = cls()
        for event in iter_journal(run.events_path, _JOURNALED):
            if event.get("kind") == "checkpoint_saved":
                facts.recorded[str(event.get("checkpoint_id"))] = (
                    str(event.get("agent_id")),
                    str(event.get("sha256") or ""),
                )
            else:
                facts.money.read(event)
        return facts


def verify_run(run: RunDir) -> Verification:
    """Every check, reading only the run's own files: a tampered directory is one problem, not read."""
    result = Verification()
    try:
        run.check_sandbox()  # a link where the run keeps a file would make the checks read elsewhere
    except UnsafePathError as error:
        result.problem(_rel(run, error.path), error.message)
        return result
    journal = JournalFacts.read(run)
    summary = _read_summary(run, result)
    infos = CheckpointStore(run.path).list()
    trusted = _check_checkpoints(run, infos, journal, result)
    latest = _latest_states(trusted)
    if summary is not None:
        _check_summary(summary, latest, result)
        _check_journal(summary, journal, result)
    returned = _returned(trusted)
    _check_reports(run, returned, bool(trusted), result)
    return result


# --- checkpoints -------------------------------------------------------------------------------


def _check_checkpoints(
    run: RunDir,
    infos: list[CheckpointInfo],
    journal: JournalFacts,
    result: Verification,
) -> list[CheckpointInfo]:
    """Problems with the checkpoints; the ones to trust: they verify, and the journal recorded
    exactly them, for the agent they hold (an agent since removed from the config still counts:
    its turns were paid for in this run)."""
    trusted = []
    for info in infos:
        place = _rel(run, info.path)
        record = journal.recorded.get(info.id)
        if not info.ok:
            result.problem(place, f"checkpoint {info.id} does not verify: {info.problem}")
        elif record is None:
            result.problem(
                place,
                "not recorded in events.jsonl: not a checkpoint this run saved (copied from another run, "
                "or forged); its search results are not trusted",
            )
        elif record[1] and record[1] != info.sha256:
            result.problem(
                place,
                f"differs from the checkpoint events.jsonl recorded (checksum {info.sha256[:12]}…, "
                f"recorded {record[1][:12]}…): replaced after it was saved; not trusted",
            )
        elif record[0] != info.agent_id:
            result.problem(
                place,
                f"holds agent {info.agent_id}, but events.jsonl recorded it for {record[0]}; not trusted",
            )
        else:
            trusted.append(info)
    present = {info.id for info in infos}
    missing = [(cid, agent) for cid, (agent, _) in journal.recorded.items() if cid not in present]
    for checkpoint_id, agent_id in missing:
        result.problem(
            f"checkpoints/{checkpoint_id}.json",
            f"missing: events.jsonl records it saved for agent {agent_id}",
        )
    good = sum(1 for i in infos if i.ok)
    saved = len(journal.recorded)
    result.checked.append(
        f"checkpoints: {good} of {len(infos)} verify, {len(trusted)} recorded in events.jsonl for this "
        f"run's agents; {saved - len(missing)} of {saved} recorded are present"
    )
    return trusted


def _bodies(infos: Iterable[CheckpointInfo]) -> Iterator[tuple[CheckpointInfo, dict[str, Any]]]:
    for info in infos:
        try:
            yield info, decode_checkpoint(read_checkpoint_file(info.path, info.id), info.id)
        except CheckpointCorrupt:
            continue


def _latest_states(infos: list[CheckpointInfo]) -> dict[str, dict[str, Any]]:
    """Each agent's counters at its newest trusted checkpoint."""
    latest: dict[str, dict[str, Any]] = {}
    for info, body in _bodies(infos):
        state = body.get("agent_state")
        if isinstance(state, dict):
            latest[info.agent_id] = state
    return latest


# --- summary.json and the journal -------------------------------------------------------------


def _read_summary(run: RunDir, result: Verification) -> dict[str, Any] | None:
    try:
        summary = parse_json(read_regular(run.summary_path, limit=SUMMARY_MAX_BYTES, kind="summary"))
    except FileNotFoundError:
        result.problem("summary.json", "missing")
        return None
    except DiskError as error:
        result.problem("summary.json", error.message)
        return None
    except (OSError, ValueError, RecursionError) as error:
        result.problem("summary.json", f"unreadable: {error}")
        return None
    if not isinstance(summary, dict) or not isinstance(summary.get("agents"), list):
        result.problem("summary.json", "not a run summary (no agents list)")
        return None
    return summary


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else float("nan")


def _check_summary(
    summary: dict[str, Any], latest: Mapping[str, dict[str, Any]], result: Verification
) -> None:
    agents = [a for a in summary["agents"] if isinstance(a, dict)]
    total_cost = sum(_number(a.get("cost_usd")) for a in agents)
    cost = _number(summary.get("cost_usd"))
    if not abs(cost - total_cost) <= COST_TOLERANCE * max(1, len(agents)):
        result.problem(
            "summary.json: cost_usd", f"{cost} is not the sum of its agents' cost_usd ({total_cost:.6f})"
        )
    total_searches = sum(
        int(_number(a.get("searches")) or 0) for a in agents if a.get("searches") is not None
    )
    if summary.get("searches") != total_searches:
        result.problem(
            "summary.json: searches",
            f"{summary.get('searches')} is not the sum of its agents' searches ({total_searches})",
        )
    compared = 0
    for agent in agents:
        agent_id = str(agent.get("id"))
        state = latest.get(agent_id)
        if state is None:
            if _number(agent.get("cost_usd")) or agent.get("turns"):
                result.problem(f"summary.json: agent {agent_id}", "has turns and cost but no checkpoint")
            continue
        compared += 1
        figures = [("turns", "api_turns", True), ("searches", "searches", True)]
        figures.append(("cost_usd", "cost_usd", False))
        if "unconfirmed_usd" in state and "unconfirmed_usd" in agent:  # (both written since the split)
            figures.append(("unconfirmed_usd", "unconfirmed_usd", False))
        for key, field_name, exact in figures:
            said, saved = _number(agent.get(key)), _number(state.get(field_name))
            same = said == saved if exact else abs(said - saved) <= COST_TOLERANCE
            if not same:
                result.problem(
                    f"summary.json: agent {agent_id} {key}",
                    f"{agent.get(key)} but its latest checkpoint says {state.get(field_name)}",
                )
    result.checked.append(
        f"summary.json: cost ${cost:.4f} and {summary.get('searches')} searches against "
        f"{len(agents)} agents; {compared} agents compared with their latest checkpoint"
    )


@dataclass(slots=True)
class _Journaled:
    """What the journal says was charged: billed (the usage the API reported: completed turns,
    compactions, failed attempts whose usage arrived) and unconfirmed (bounds for attempts whose
    usage never arrived)."""

    turns: int = 0  # every completed call: a turn done again after its checkpoint was lost was
    # billed again, and the resumed ledger counts both (core/engine/recovery.py)
    billed_usd: float = 0.0
    billed_searches: int = 0
    unconfirmed_usd: float = 0.0
    unconfirmed_searches: int = 0
    unconfirmed_attempts: int = 0

    def read(self, event: Mapping[str, Any]) -> None:
        kind = event.get("kind")
        if kind not in ("turn_completed", "attempt_charged", "context_compacted"):
            return
        usage = event.get("usage")
        searches = int(_number((usage if isinstance(usage, dict) else {}).get("web_search_requests", 0)) or 0)
        cost = _number(event.get("cost_usd", 0.0))
        if kind == "turn_completed":
            self.turns += 1
        if kind in ("turn_completed", "context_compacted") or event.get("basis") == "reported":
            self.billed_usd += cost
            self.billed_searches += searches
        else:  # each failed attempt is its own request
            self.unconfirmed_usd += cost
            self.unconfirmed_searches += searches
            self.unconfirmed_attempts += 1


def _check_journal(summary: dict[str, Any], facts: JournalFacts, result: Verification) -> None:
    """Searches made (per the journal's completed turns and charged failed attempts) equal the
    searches the summary counts, and its dollars reconcile: billed with the usage the API reported,
    unconfirmed with the bounds charged for attempts whose usage never arrived."""
    journal = facts.money
    billed_usd, billed_searches = journal.billed_usd, journal.billed_searches
    made = billed_searches + journal.unconfirmed_searches
    counted = summary.get("searches")
    if summary.get("parent"):
        result.checked.append(
            f"events.jsonl: {made} searches made since the fork (the parent run's are in its own journal)"
        )
        if isinstance(counted, int) and made > counted:
            result.problem("events.jsonl", f"{made} searches made but summary.json counts {counted}")
        return
    if made != counted:
        result.problem(
            "events.jsonl",
            f"{made} searches made (turn_completed and attempt_charged events) but summary.json "
            f"counts {counted}",
        )
    result.checked.append(f"events.jsonl: {made} searches made in {journal.turns} completed turns")
    if "billed_usd" not in summary:
        result.checked.append("summary.json: written before billed and unconfirmed dollars were told apart")
        return
    tolerance = COST_TOLERANCE * max(1, len(summary["agents"]))
    pairs = (
        ("billed_usd", billed_usd, "the usage the API reported (turn_completed, context_compacted and "
         "attempt_charged events with basis reported)"),
        ("unconfirmed_usd", journal.unconfirmed_usd, "the bounds charged for attempts whose usage never "
         "arrived (attempt_charged events with basis received or worst_case)"),
    )  # fmt: skip
    for key, journaled, what in pairs:
        said = _number(summary.get(key))
        if not abs(said - journaled) <= tolerance:
            result.problem(
                f"summary.json: {key}", f"{summary.get(key)} but events.jsonl has ${journaled:.6f}: {what}"
            )
    for key, journaled_count in (
        ("unconfirmed_attempts", journal.unconfirmed_attempts),
        ("billed_searches", billed_searches),
        ("unconfirmed_searches", journal.unconfirmed_searches),
    ):
        if summary.get(key) != journaled_count:
            result.problem(
                f"summary.json: {key}", f"{summary.get(key)} but events.jsonl has {journaled_count}"
            )
    result.checked.append(
        f"events.jsonl: ${billed_usd:.4f} billed (the usage the API reported) and "
        f"${journal.unconfirmed_usd:.4f} unconfirmed ({journal.unconfirmed_attempts} attempts whose usage "
        "never arrived, charged at a bound)"
    )


# --- links -------------------------------------------------------------------------------------


def returned_urls(run: RunDir, infos: Iterable[CheckpointInfo] | None = None) -> set[str]:
    """Every URL a search of this run returned, from the given checkpoints (default: the ones the
    journal recorded, as ``verify`` trusts them)."""
    if infos is None:
        infos = _check_checkpoints(
            run, CheckpointStore(run.path).list(), JournalFacts.read(run), Verification()
        )
    return _returned(infos)


def _returned(infos: Iterable[CheckpointInfo]) -> set[str]:
    urls: set[str] = set()
    for _, body in _bodies(infos):
        for message in body.get("messages") or []:
            if not isinstance(message, dict) or message.get("role") != "assistant":
                continue
            for block in message.get("content") or []:
                if isinstance(block, dict):
                    urls.update(r["url"] for r in search_results(block))
    return urls


def report_links(text: str) -> list[tuple[int, str]]:
    """``(line number, URL)`` of every link a Markdown viewer renders in a text."""
    return [(link.line, link.url) for link in rendered_links(text)]


def report_files(run: RunDir) -> list[Path]:
    files = sorted(run.reports_dir.glob("*.md")) if run.reports_dir.is_dir() else []
    if os.path.lexists(run.final_report_path):
        files.append(run.final_report_path)
    return files


def _check_reports(run: RunDir, returned: set[str], have_checkpoints: bool, result: Verification) -> None:
    files = report_files(run)
    links = citations = uncited = 0
    for path in files:
        place = _rel(run, path)
        try:
            text = read_regular(path, limit=REPORT_MAX_BYTES, kind="reports").decode("utf-8")
        except DiskError as error:
            result.problem(place, error.message)
            continue
        except (OSError, UnicodeDecodeError) as error:
            result.problem(place, f"unreadable: {error}")
            continue
        for link in rendered_links(text):
            if link.url.startswith("#"):
                continue  # a place in the document itself
            links += 1
            if link.url not in returned:
                shown = link.written if link.written == link.url else f"{link.written} ({link.url})"
                result.problem(f"{place}:{link.line}", f"links {shown}, which no search in this run returned")
        citations += _check_citations(text, place, result)
        for paragraph in findings_paragraphs(text):
            if not paragraph.cites:
                uncited += 1
                note = Problem(f"{place}:{paragraph.line}", "a findings paragraph cites no source")
                result.notes.append(note)
    if links and not have_checkpoints:
        result.problem("checkpoints/", "none to read search results from: links cannot be checked")
    result.checked.append(
        f"links: {links} in {len(files)} reports against {len(returned)} URLs returned by this run's searches"
    )
    result.checked.append(
        f"citations: {citations} numbered citations resolve to their Sources entries; "
        f"{uncited} findings paragraphs cite nothing"
    )


def _check_citations(text: str, place: str, result: Verification) -> int:
    """Every ``[[n]](url)`` in the findings is Sources entry ``n``; no marker is left unresolved."""
    sources = {s.number: s.url for s in parse_report(text).sources}
    body, offset = body_start(text)
    count = 0
    for number, line in enumerate(body.splitlines(), start=offset + 1):
        for match in CITATION.finditer(line):
            count += 1
            cited, url = int(match.group(1)), match.group(2)
            listed = sources.get(cited)
            if listed is None:
                result.problem(f"{place}:{number}", f"cites [{cited}], which its Sources list does not have")
            elif listed != url:
                result.problem(
                    f"{place}:{number}", f"cites [{cited}] as {url}, but Sources entry {cited} is {listed}"
                )
        rest = CITATION.sub("", line)
        for match in [*MARKERS.finditer(rest), *LABELS.finditer(rest)]:
            result.problem(
                f"{place}:{number}",
                f"{match.group(0)} points to no source (a citation the report turn was not given)",
            )
    return count


def _rel(run: RunDir, path: Path) -> str:
    try:
        return str(path.relative_to(run.path))
    except ValueError:
        return str(path)
