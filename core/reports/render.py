"""An agent's report as Markdown: one title, a header, the findings, one Sources list.

The findings are the text of the turn that writes the report, without the narration that only
announced searches. The Sources are the whole conversation's: every page cited in any turn,
numbered once in order of first use in the text (then in order of citation), with the title the
search gave; pages returned but never cited follow as "also consulted". Labels that cite an
earlier report's sources (``[market:3]``) resolve to the original URLs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.reports import numbered
from core.reports.citethrough import LABELS, PriorSources, label, split_labels
from core.reports.narration import strip_narration
from core.reports.sources import ConversationSources, Numbering, Source, link, sources_section
from core.usage import ALL_BILLED, Unconfirmed, money_text

NO_FINDINGS = "_No findings were written._"
CONTINUE_PROMPT = (
    "You reached the output limit. Continue exactly where you stopped, without repeating yourself."
)
"""What asks for the rest of an answer cut by ``max_tokens``: a report joins the text that follows
it to the cut text exactly where it was cut (no break that would split a word or a table row)."""
_TOKEN = "\x00cite:{url}\x00"
_CITE_TOKEN = re.compile(r"\x00cite:([^\x00]+)\x00")
_TOKEN_OR_LABEL = re.compile(_CITE_TOKEN.pattern + "|" + LABELS.pattern)
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_OWN_SOURCES = re.compile(
    r"^(?:#{1,6}\s*|\*\*)(?:sources|references|bibliography|works cited|citations)(?::\*\*|\*\*:?|:)?\s*$",
    re.IGNORECASE,
)
_URL = re.compile(r"https?://[^\s<>()\[\]\"'`]+")


@dataclass(frozen=True, slots=True)
class AgentMeta:
    """What the header of an agent's report says about the agent."""

    id: str
    title: str
    layer: int = 0
    model: str = ""
    turns: int = 0
    searches: int = 0
    cost_usd: float = 0.0
    unconfirmed: Unconfirmed = ALL_BILLED  # of cost_usd: bounds for attempts whose usage never arrived


def render_blocks(
    blocks: Sequence[Mapping[str, Any]], numbering: dict[str, int], titles: dict[str, str]
) -> str:
    """Text of the assistant's text blocks, each cited block followed by numbered links.

    The plain form used where no report is built (compaction notes keep the links).
    """
    for block in blocks:
        if block.get("type") != "text":
            continue
        for citation in block.get("citations") or []:
            if isinstance(citation, Mapping) and citation.get("url"):
                titles.setdefault(citation["url"], citation.get("title") or citation["url"])

    def number(match: re.Match[str]) -> str:
        url = match.group(1)
        return link(numbering.setdefault(url, len(numbering) + 1), url)

    return _CITE_TOKEN.sub(number, _tokenised(blocks))


@dataclass(frozen=True, slots=True)
class _Turn:
    """One answer of the assistant (a paused or cut answer with its continuations), and the
    numbered sources its prompt gave it (what its ``[n]`` markers cite)."""

    blocks: list[Mapping[str, Any]]
    given: Mapping[int, Source]


def _turns(messages: Iterable[Mapping[str, Any]]) -> list[_Turn]:
    """Assistant content grouped by answer: a paused turn's continuations, and the rest of an answer
    cut by ``max_tokens``, belong to it."""
    turns: list[_Turn] = []
    given: Mapping[int, Source] = {}
    open_turn = False
    for message in messages:
        role = message.get("role")
        content = message.get("content")
        if role == "user":
            text = _text_of(content)
            if text == CONTINUE_PROMPT:
                continue  # the answer goes on where it was cut
            open_turn = False
            given = numbered.given(text) or given
        elif role == "assistant" and isinstance(content, list):
            if not open_turn:
                turns.append(_Turn([], given))
                open_turn = True
            turns[-1].blocks.extend(b for b in content if isinstance(b, Mapping))
    return turns


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(b.get("text", "")) for b in content if isinstance(b, Mapping))
    return ""


def _cite_given(text: str, given: Mapping[int, Source]) -> str:
    """``[n]`` markers for the numbered sources the turn was given, as citation placeholders (a
    number it was not given stays as written, visibly unresolved)."""
    if not given:
        return text

    def replace(match: re.Match[str]) -> str:
        numbers = numbered.marker_numbers(match.group(1))
        known = [given[n].url for n in numbers if n in given]
        unknown = [n for n in numbers if n not in given]
        tokens = "".join(_TOKEN.format(url=url) for url in dict.fromkeys(known))
        return tokens + (f"[{', '.join(map(str, unknown))}]" if unknown else "")

    parts = _CITE_TOKEN.split(text)  # (text, url, text, url, …): never look inside a placeholder
    for index in range(0, len(parts), 2):
        parts[index] = numbered.MARKERS.sub(replace, parts[index])
    return "".join(part if index % 2 == 0 else _TOKEN.format(url=part) for index, part in enumerate(parts))


def _tokenised(blocks: Sequence[Mapping[str, Any]]) -> str:
    """Text blocks with each citation as a placeholder, numbered later in reading order."""
    out: list[str] = []
    for block in blocks:
        if block.get("type") != "text":
            continue
        urls: list[str] = []
        for citation in block.get("citations") or []:
            url = citation.get("url") if isinstance(citation, Mapping) else None
            if isinstance(url, str) and url and url not in urls:
                urls.append(url)
        tokens = "".join(_TOKEN.format(url=u) for u in urls)
        out.append(f"{block.get('text', '')}{' ' + tokens if tokens else ''}")
    return "".join(out)


def split_own_sources(text: str) -> tuple[str, str]:
    """The text without a sources list the model wrote itself, and that list (ours replaces it)."""
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if not _OWN_SOURCES.match(line.strip()):
            continue
        level = len(line) - len(line.lstrip("#")) if line.startswith("#") else 7
        end = len(lines)
        for later in range(index + 1, len(lines)):
            heading = _HEADING.match(lines[later])
            if heading and len(heading.group(1)) <= level:
                end = later
                break
        rest, own = lines[:index] + lines[end:], lines[index:end]
        body, more = split_own_sources("\n".join(rest))
        return body, "\n".join(own) + ("\n" + more if more else "")
    return text, ""


def under_our_title(text: str) -> str:
    """Findings to go under the report's own title: a model that gave its text one ``#`` title
    ("# Report: Sodium-ion batteries") loses it, so the report keeps one title and its sections stay
    ``##``; one that wrote several ``#`` headings has them all demoted."""
    lines = text.split("\n")
    titles = [i for i, line in enumerate(lines) if line.startswith("# ") and _HEADING.match(line)]
    if len(titles) != 1:
        return demote_headings(text)
    del lines[titles[0] : titles[0] + (2 if titles[0] + 1 < len(lines) and not lines[titles[0] + 1] else 1)]
    return "\n".join(lines).strip()


def demote_headings(text: str) -> str:
    """One level down when the text has a ``#`` title of its own: the report has one title."""
    lines = text.split("\n")
    if not any(line.startswith("# ") for line in lines):
        return text
    demoted = []
    for line in lines:
        heading = _HEADING.match(line)
        demoted.append("#" + line if heading and len(heading.group(1)) < 6 else line)
    return "\n".join(demoted)


class _Resolver:
    """Turns placeholders and labels into numbered links, numbering in reading order."""

    def __init__(self, found: ConversationSources, prior: PriorSources, numbering: Numbering) -> None:
        self.found = found
        self.prior = prior
        self.numbering = numbering

    def __call__(self, text: str) -> str:
        return _TOKEN_OR_LABEL.sub(self._replace, text)

    def _replace(self, match: re.Match[str]) -> str:
        if match.group(1) is not None:
            url = match.group(1)
            return link(self.numbering.number(url, self.found.title(url)), url)
        links = []
        for agent_id, number in split_labels(match.group(2)):
            source = self.prior.resolve(agent_id, number)
            if source is None:
                links.append(label(agent_id, number))  # unknown: stays as written, visibly unresolved
            else:
                links.append(link(self.numbering.number(source.url, source.title), source.url))
        return "".join(dict.fromkeys(links))

    def keep_known(self, own_list: str) -> None:
        """Number the pages of the model's own list that a search returned or a report gave."""
        for match in _TOKEN_OR_LABEL.finditer(own_list):
            self._replace(match)
        prior_urls = {s.url: s.title for s in self.prior.by_label.values()}
        for url in _URL.findall(own_list):
            url = url.rstrip(".,;:")
            if url in self.found.titles or url in self.found.cited:
                self.numbering.number(url, self.found.title(url))
            elif url in prior_urls:
                self.numbering.number(url, prior_urls[url])


def report_body(
    messages: Sequence[Mapping[str, Any]],
    body_messages: Sequence[Mapping[str, Any]],
    prior: PriorSources | None = None,
) -> tuple[str, Numbering, ConversationSources]:
    """The findings of ``body_messages`` with numbered links, and the numbering of the whole report."""
    found = ConversationSources.of(messages)
    numbering = Numbering()
    resolve = _Resolver(found, prior or PriorSources({}), numbering)
    texts = (
        _cite_given(_tokenised(strip_narration(turn.blocks)), turn.given) for turn in _turns(body_messages)
    )
    raw = "\n\n".join(text for text in (t.strip() for t in texts) if text)
    body, own_list = split_own_sources(raw)
    body = under_our_title(resolve(body).strip())
    resolve.keep_known(own_list)
    for url in found.cited:  # cited in an earlier turn: still a source of this report
        numbering.number(url, found.title(url))
    return body, numbering, found


def build_report(
    *,
    agent: AgentMeta,
    messages: Sequence[Mapping[str, Any]],
    body_messages: Sequence[Mapping[str, Any]] | None = None,
    partial_note: str | None = None,
    prior: PriorSources | None = None,
) -> str:
    """The report: title, header, findings of ``body_messages`` (default: all), Sources, also consulted."""
    body, numbering, found = report_body(
        messages, messages if body_messages is None else body_messages, prior
    )
    facts = [f"Agent `{agent.id}`"]
    if agent.layer:
        facts.append(f"layer {agent.layer}")
    if agent.model:
        facts.append(agent.model)
    cost = f"${agent.cost_usd:.4f}"
    if agent.unconfirmed.attempts:
        cost += f" ({money_text(agent.cost_usd, agent.unconfirmed)})"
    facts += [f"{agent.turns} turns", f"{agent.searches} searches", cost]
    lines = [f"# {agent.title}", "", f"*{' · '.join(facts)}*", ""]
    if partial_note:
        lines += [f"> {partial_note}", ""]
    lines += [body or NO_FINDINGS, ""]
    also = [(url, title) for url, title in found.titles.items() if url not in numbering]
    lines += sources_section(numbering.sources(), also)
    return "\n".join(lines).rstrip("\n") + "\n"
