"""Citing an earlier report's sources through their numbers, so URLs are carried, never re-typed.

A later agent reads each earlier report with its sources labelled ``[market:3]`` (agent id and
the number in that report). When its own report uses a label, the label resolves to the original
URL and title, which are numbered in the new report like any other source. A model never has to
copy a URL, so it cannot mistype or invent one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from core.reports.parse import parse_report
from core.reports.sources import Source

_ONE = r"[a-z0-9][a-z0-9_-]{0,63}:\d+"
LABELS = re.compile(rf"\[\s*({_ONE}(?:\s*[,;]\s*{_ONE})*)\s*\]")
"""One bracket holding one or more labels: ``[market:3]``, ``[market:3, policy:1]``."""
_LINK = re.compile(r"\[\[(\d+)\]\]\((?:[^()\s]|\([^()\s]*\))+\)")


def label(agent_id: str, number: int) -> str:
    return f"[{agent_id}:{number}]"


@dataclass(frozen=True, slots=True)
class PriorSources:
    """Every labelled source of the reports an agent read: ``(agent id, number)`` -> source."""

    by_label: Mapping[tuple[str, int], Source]

    @classmethod
    def of(cls, reports: Mapping[str, str]) -> PriorSources:
        found: dict[tuple[str, int], Source] = {}
        for agent_id, text in reports.items():
            for source in parse_report(text).sources:
                found[(agent_id, source.number)] = source
        return cls(found)

    def resolve(self, agent_id: str, number: int) -> Source | None:
        return self.by_label.get((agent_id, number))


def split_labels(inner: str) -> list[tuple[str, int]]:
    """``"market:3, policy:1"`` -> ``[("market", 3), ("policy", 1)]``."""
    out = []
    for part in re.split(r"\s*[,;]\s*", inner.strip()):
        agent_id, _, number = part.partition(":")
        out.append((agent_id, int(number)))
    return out


def labelled_for_prompt(agent_id: str, report: str) -> str:
    """An earlier report as a later agent reads it: its citations and Sources carry labels.

    ``[[3]](url)`` in the text becomes ``[market:3]``; the Sources list gives each label with its
    title and URL; the "also consulted" list is left out (it was not cited, and it is long).
    """
    parsed = parse_report(report)
    body = _LINK.sub(lambda m: label(agent_id, int(m.group(1))), parsed.body)
    lines = [f"# {parsed.title}", ""] if parsed.title else []
    if parsed.header:
        lines += [parsed.header, ""]
    lines += [body.strip(), ""]
    if parsed.sources:
        lines += ["Sources (cite them by label):", ""]
        lines += [f"{label(agent_id, s.number)} {s.title} <{s.url}>" for s in parsed.sources]
    return "\n".join(lines).strip()
