"""``verify RUN``: check that a run's files agree with each other and its reports cite what it found.

Three checks, each reading only the run directory:

- every checkpoint verifies (checksum, chain, fingerprint), and every checkpoint the journal says
  was saved is there;
- ``summary.json`` agrees with the checkpoints (each agent's turns, searches and cost) and with the
  journal (searches made), and its totals are the sums of its agents;
- every link in every report is a URL that a search in this run returned (from the search
  results stored in the checkpoints, which hold every turn of every agent).

Each problem names its place (a file, with a line or an agent where it helps).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
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
from core.persistence.journal import read_journal
from core.persistence.jsontext import parse_json
from core.persistence.rundir import SUMMARY_MAX_BYTES, RunDir
from core.reports.sources import search_results

REPORT_MAX_BYTES = 64 * 1024 * 1024
COST_TOLERANCE = 1e-5  # summary.json rounds each figure to 6 decimals
_URL = re.compile(r"https?://[^\s<>()\[\]\"'`]+(?:\([^\s<>()]*\)[^\s<>()\[\]\"'`]*)*")


@dataclass(frozen=True, slots=True)
class Problem:
    place: str
    message: str

    def __str__(self) -> str:
        return f"{self.place}: {self.message}"


@dataclass(slots=True)
class Verification:
    """What was checked (lines for the user) and every problem found."""

    checked: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, place: str, message: str) -> None:
        self.problems.append(Problem(place, message))


def verify_run(run: RunDir) -> Verification:
    """Every check, reading only the run's own files: a tampered directory is one problem, not read."""
    result = Verification()
    try:
        run.check_sandbox()  # a link where the run keeps a file would make the checks read elsewhere
    except UnsafePathError as error:
        result.problem(_rel(run, error.path), error.message)
        return result
    store = CheckpointStore(run.path)
    infos = store.list()
    _check_checkpoints(run, infos, result)
    summary = _read_summary(run, result)
    latest = _latest_states(store, infos)
    if summary is not None:
        _check_summary(summary, latest, result)
        _check_journal(run, summary, result)
    returned = returned_urls(run, infos)
    _check_links(run, returned, bool(infos), result)
    return result


# --- checkpoints -------------------------------------------------------------------------------


def _check_checkpoints(run: RunDir, infos: list[CheckpointInfo], result: Verification) -> None:
    for info in infos:
        if not info.ok:
            result.problem(_rel(run, info.path), f"checkpoint {info.id} does not verify: {info.problem}")
    present = {info.id for info in infos}
    saved = [e for e in read_journal(run.events_path) if e.get("kind") == "checkpoint_saved"]
    missing = [e for e in saved if e.get("checkpoint_id") not in present]
    for event in missing:
        result.problem(
            f"checkpoints/{event.get('checkpoint_id')}.json",
            f"missing: events.jsonl records it saved for agent {event.get('agent_id')} "
            f"turn {event.get('turn')}",
        )
    good = sum(1 for i in infos if i.ok)
    result.checked.append(
        f"checkpoints: {good} of {len(infos)} verify; {len(saved) - len(missing)} of {len(saved)} "
        "recorded in events.jsonl are present"
    )


def _latest_states(store: CheckpointStore, infos: list[CheckpointInfo]) -> dict[str, dict[str, Any]]:
    """Each agent's counters at its newest checkpoint (whatever its integrity: the summary is
    compared with what the run last wrote, and a corrupt file is reported on its own)."""
    latest: dict[str, dict[str, Any]] = {}
    for info in infos:
        if info.seq < 0:
            continue
        try:
            body = decode_checkpoint(read_checkpoint_file(info.path, info.id), info.id)
        except CheckpointCorrupt:
            continue
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
        for key, field_name, exact in (("turns", "api_turns", True), ("searches", "searches", True),
                                       ("cost_usd", "cost_usd", False)):  # fmt: skip
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


def _check_journal(run: RunDir, summary: dict[str, Any], result: Verification) -> None:
    """Searches made (per the journal's completed turns and charged failed attempts) equal the
    searches the summary counts."""
    turns: dict[tuple[str, int], int] = {}
    charged = 0
    for event in read_journal(run.events_path):
        kind = event.get("kind")
        if kind not in ("turn_completed", "attempt_charged"):
            continue
        usage = event.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        searches = int(_number(usage.get("web_search_requests", 0)) or 0)
        if kind == "attempt_charged":
            charged += searches  # each failed attempt is its own request
            continue
        turns[(str(event.get("agent_id")), int(_number(event.get("turn")) or 0))] = (
            searches  # a resumed turn counts once
        )
    made = sum(turns.values()) + charged
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
    result.checked.append(f"events.jsonl: {made} searches made in {len(turns)} completed turns")


# --- links -------------------------------------------------------------------------------------


def returned_urls(run: RunDir, infos: Iterable[CheckpointInfo] | None = None) -> set[str]:
    """Every URL a search of this run returned, from every checkpoint that can be read."""
    urls: set[str] = set()
    for info in CheckpointStore(run.path).list() if infos is None else infos:
        try:
            body = decode_checkpoint(read_checkpoint_file(info.path, info.id), info.id)
        except CheckpointCorrupt:
            continue
        for message in body.get("messages") or []:
            if not isinstance(message, dict) or message.get("role") != "assistant":
                continue
            for block in message.get("content") or []:
                if isinstance(block, dict):
                    urls.update(r["url"] for r in search_results(block))
    return urls


def report_links(text: str) -> list[tuple[int, str]]:
    """``(line number, URL)`` of every web link in a Markdown text."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for url in _URL.findall(line):
            found.append((number, url.rstrip(".,;:!?*_")))
    return found


def report_files(run: RunDir) -> list[Path]:
    files = sorted(run.reports_dir.glob("*.md")) if run.reports_dir.is_dir() else []
    if os.path.lexists(run.final_report_path):
        files.append(run.final_report_path)
    return files


def _check_links(run: RunDir, returned: set[str], have_checkpoints: bool, result: Verification) -> None:
    files = report_files(run)
    links = 0
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
        for line, url in report_links(text):
            links += 1
            if url not in returned:
                result.problem(f"{place}:{line}", f"links {url}, which no search in this run returned")
    if links and not have_checkpoints:
        result.problem("checkpoints/", "none to read search results from: links cannot be checked")
    result.checked.append(
        f"links: {links} in {len(files)} reports against {len(returned)} URLs returned by this run's searches"
    )


def _rel(run: RunDir, path: Path) -> str:
    try:
        return str(path.relative_to(run.path))
    except ValueError:
        return str(path)
