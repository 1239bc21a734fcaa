"""Decides one assistant turn: its searches, results, cited text, stop reason and usage.

Every choice is drawn from a ``random.Random`` seeded by the simulator seed and a digest of the
request body (without ``stream``), so the streamed and the non-streamed answer to one request are the
same message. The resulting ``Turn`` is rendered by ``sse`` (streaming) or ``Turn.message`` (JSON).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import string
from dataclasses import dataclass, field, replace
from typing import Any

from core.config.simulator import SimulatorSettings
from core.simulator import answers, client_tools, crypto, prose, synthweb
from core.simulator.schema_values import generate
from core.simulator.tokens import count_block, count_text, json_text, truncate_to_tokens
from core.simulator.validation import ParsedRequest, last_user_text, parse_directives

_ID_ALPHABET = string.ascii_letters + string.digits
UNCITED_REPORT_PROBABILITY = 0.5
"""How often a report turn searches nothing and cites nothing, as the real API often answers."""
UNCITED_REPORT_DIRECTIVE = "[sim:uncited_report]"
"""In the last user message: this report turn (and every one sent with it) cites nothing."""
_REPORT = re.compile(r"\breport\b|\bsynthes|\bwrite[- ]up\b", re.IGNORECASE)
_ANGLES = (
    "overview",
    "latest data",
    "outlook",
    "risks and criticism",
    "cost trends",
    "policy",
    "case studies",
    "forecast 2030",
    "comparison",
    "expert analysis",
)


@dataclass(frozen=True, slots=True)
class CacheUsage:
    """Prompt-cache accounting of one request (tokens)."""

    read: int = 0
    write_5m: int = 0
    write_1h: int = 0

    @property
    def write(self) -> int:
        return self.write_5m + self.write_1h


@dataclass(slots=True)
class Block:
    """One content block as it ends up in the final message; ``after_search`` marks a search wait."""

    final: dict[str, Any]
    after_search: bool = False


@dataclass(slots=True)
class Turn:
    """The whole answer to one request, before it is rendered."""

    message_id: str
    model: str
    blocks: list[Block]
    stop_reason: str
    stop_details: dict[str, Any] | None
    usage_start: dict[str, Any]
    usage_delta: dict[str, Any]
    output_tokens: int
    web_search_requests: int
    seed: int = 0
    paused_search_id: str | None = None

    def message(self) -> dict[str, Any]:
        """The non-streaming Message JSON, equal to what the SDK accumulates from the stream."""
        usage = dict(self.usage_start)
        for key in (
            "input_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
            "output_tokens",
            "server_tool_use",
        ):
            if key in self.usage_delta:
                usage[key] = self.usage_delta[key]
        return {
            "model": self.model,
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "content": [b.final for b in self.blocks],
            "stop_reason": self.stop_reason,
            "stop_sequence": None,
            "stop_details": self.stop_details,
            "usage": usage,
        }


def request_digest(body: dict[str, Any]) -> bytes:
    """What makes two requests "the same" for determinism: the body without ``stream``."""
    canonical = {k: v for k, v in body.items() if k != "stream"}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).digest()


def _make_id(rng: random.Random, prefix: str) -> str:
    return prefix + "01" + "".join(rng.choice(_ID_ALPHABET) for _ in range(22))


class _Builder:
    """Appends blocks while counting output tokens against the cap."""

    def __init__(self, cap: int) -> None:
        self.blocks: list[Block] = []
        self.cap = cap
        self.output = 0
        self.truncated = False
        self._search_ran = False

    @property
    def remaining(self) -> int:
        return self.cap - self.output

    def text(self, text: str, citations: list[dict[str, Any]] | None = None) -> bool:
        """Add text (merged into a preceding uncited block when uncited); False once the cap is hit.

        Text that does not fit is cut so that the output reaches the cap exactly, as a real
        ``max_tokens`` stop does.
        """
        if self.truncated or not text:
            return not self.truncated
        last = self.blocks[-1].final if self.blocks else None
        merge = not citations and last is not None and last["type"] == "text" and "citations" not in last
        base = last["text"] if merge and last is not None else ""
        base_tokens = count_text(base)
        tokens = count_text(base + text) - base_tokens
        if tokens > self.remaining:
            text = truncate_to_tokens(base + text, base_tokens + self.remaining)[len(base) :]
            self.truncated = True
            tokens = count_text(base + text) - base_tokens
            if not text:
                return False
        self.output += tokens
        if merge and last is not None:
            last["text"] += text
        elif citations:
            self._add({"citations": list(citations), "type": "text", "text": text})
        else:
            self._add({"type": "text", "text": text})
        return not self.truncated

    def fits(self, text: str) -> bool:
        """Whether ``text`` fits in what is left (a model finishing early stops before the cap)."""
        return not self.truncated and count_text(text) <= self.remaining

    def tool_use(self, block: dict[str, Any]) -> bool:
        """A client ``tool_use`` block; one that does not fit ends the turn at the cap."""
        tokens = count_text(json_text(block["input"])) + 8
        if tokens > self.remaining:
            self.truncated = True
            return False
        self.output += tokens
        self._add(block)
        return True

    def pieces(self, pieces: list[prose.Piece]) -> bool:
        return all(self.text(text, cites) for text, cites in pieces)

    def search(self, search_id: str, query: str) -> bool:
        tokens = count_text(json.dumps({"query": query})) + 1
        if tokens > self.remaining:
            # The search does not fit: spend the rest of the budget announcing it (longer than the call).
            self.text(f" I'll run a search for {query} to check this.")
            self.truncated = True
            return False
        self.output += tokens
        self._add(
            {
                "type": "server_tool_use",
                "id": search_id,
                "name": "web_search",
                "input": {"query": query},
                "caller": {"type": "direct"},
            }
        )
        return True

    def result(self, search_id: str, content: Any) -> int:
        block = {
            "type": "web_search_tool_result",
            "tool_use_id": search_id,
            "content": content,
            "caller": {"type": "direct"},
        }
        self._search_ran = True
        self._add(block)
        return count_block(block)

    def _add(self, block: dict[str, Any]) -> None:
        self.blocks.append(Block(block, after_search=self._search_ran))
        self._search_ran = False


def _result_content(pages: list[synthweb.Page]) -> list[dict[str, Any]]:
    return [
        {
            "type": "web_search_result",
            "title": p.title,
            "url": p.url,
            "encrypted_content": crypto.seal({"u": p.url, "t": p.text}),
            "page_age": p.page_age,
        }
        for p in pages
    ]


def _queries(rng: random.Random, terms: list[str], count: int) -> list[str]:
    core_terms = " ".join(terms[:4]).lower()
    angles = rng.sample(_ANGLES, k=min(count, len(_ANGLES)))
    queries = []
    for i in range(count):
        extra = terms[4 + i] if len(terms) > 4 + i else ""
        queries.append(" ".join(x for x in (core_terms, extra.lower(), angles[i % len(angles)]) if x))
    return queries


@dataclass(slots=True)
class _Searches:
    """What the searches of a turn produced."""

    done: int = 0
    result_tokens: int = 0
    pages: list[synthweb.Page] = field(default_factory=list)
    paused_id: str | None = None


def _rng_for(settings: SimulatorSettings, digest: bytes) -> random.Random:
    seed = hashlib.sha256(settings.seed.to_bytes(8, "big", signed=True) + digest).digest()
    return random.Random(int.from_bytes(seed[:8], "big"))


def _output_cap(
    request: ParsedRequest, prompt_tokens: int, context_window: int, target: int
) -> tuple[int, str]:
    """The output budget and the stop reason when it runs out."""
    cap, reason = request.max_tokens, "max_tokens"
    room = context_window - prompt_tokens
    if room < cap:
        cap, reason = max(room, 1), "model_context_window_exceeded"
    if request.directives.max_tokens:
        cap, reason = min(cap, max(1, target // 3)), "max_tokens"
    return cap, reason


def _plan_searches(
    rng: random.Random, request: ParsedRequest, settings: SimulatorSettings, terms: list[str]
) -> tuple[list[str], int | None]:
    """The queries of the turn (a paused search first) and the index of the search it pauses at.

    Like the API's server-side loop, a turn pauses only when it wants more searches than the loop runs
    in one request (``server_loop_limit``): after at least one search, with the next one dangling.
    ``[sim:max_tokens]`` and ``[sim:refusal]`` win over pausing, so directives never conflict.
    """
    web_tool, pending, directives = request.web_tool, request.pending_search, request.directives
    lo, hi = sorted(settings.searches_per_turn)
    limit = settings.server_loop_limit
    max_uses = web_tool.get("max_uses") if web_tool else None
    pause_at: int | None = None
    no_tools = (request.tool_choice or {}).get("type") == "none"  # the model may call no tool at all
    if web_tool is None or directives.refusal or no_tools:
        planned = 0
    else:
        forced = directives.pause_turn and not request.continuation
        wants_more = forced or rng.random() < settings.pause_turn_probability
        if wants_more and not directives.max_tokens and (max_uses is None or max_uses > limit):
            planned, pause_at = limit + 1, limit
        elif pending is not None:  # the search left dangling, perhaps one more: the rest of the turn
            planned = min(limit, 1 + rng.randint(0, max(0, min(1, hi - 1))))
        else:
            planned = min(limit, rng.randint(lo, hi))
    queries = _queries(rng, terms, planned)
    if pending is not None and queries:
        queries[0] = str((pending.get("input") or {}).get("query", queries[0]))
    return queries, pause_at


def _run_searches(
    out: _Builder,
    rng: random.Random,
    request: ParsedRequest,
    settings: SimulatorSettings,
    queries: list[str],
    pause_at: int | None,
    section_budget: int,
) -> _Searches:
    """Each search: a bridge sentence, the call, its result (or error), and text citing it."""
    web_tool = request.web_tool or {}
    max_uses = web_tool.get("max_uses")
    pending = request.pending_search
    searches = _Searches()
    for i, query in enumerate(queries):
        if out.truncated:
            break
        if i == 0 and pending is not None:
            search_id = str(pending.get("id"))
        else:
            if i > 0 and not out.text(prose.bridge(rng, query)):
                break
            search_id = _make_id(rng, "srvtoolu_")
            if not out.search(search_id, query):
                break
        if pause_at == i:
            searches.paused_id = search_id
            break
        if max_uses is not None and i >= max_uses:
            out.result(search_id, {"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"})
            break
        pages = synthweb.search(
            query,
            settings.seed,
            count=rng.randint(5, 8),
            allowed_domains=web_tool.get("allowed_domains"),
            blocked_domains=web_tool.get("blocked_domains"),
        )
        searches.result_tokens += out.result(search_id, _result_content(pages))
        searches.done += 1
        searches.pages.extend(pages)
        if pages:
            out.pieces(prose.cited_pieces(rng, pages, section_budget))
    return searches


def _usage(
    prompt_tokens: int, cache: CacheUsage, searches: _Searches, output: int, web_search: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``message_start`` usage (initial) and ``message_delta`` usage (cumulative, results included)."""
    uncached = prompt_tokens - cache.read - cache.write
    start: dict[str, Any] = {
        "input_tokens": uncached,
        "cache_creation_input_tokens": cache.write,
        "cache_read_input_tokens": cache.read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": cache.write_5m,
            "ephemeral_1h_input_tokens": cache.write_1h,
        },
        "output_tokens": 1,
        "service_tier": "standard",
        "inference_geo": "not_available",
    }
    delta: dict[str, Any] = {
        "input_tokens": uncached + searches.result_tokens,
        "cache_creation_input_tokens": cache.write,
        "cache_read_input_tokens": cache.read,
        "output_tokens": output,
    }
    if web_search:
        delta["server_tool_use"] = {"web_search_requests": searches.done, "web_fetch_requests": 0}
    return start, delta


def build_turn(
    request: ParsedRequest,
    settings: SimulatorSettings,
    *,
    prompt_tokens: int,
    cache: CacheUsage,
    context_window: int,
    digest: bytes,
) -> Turn:
    """The assistant's answer to ``request`` (already validated and within the context window)."""
    rng = _rng_for(settings, digest)
    cut = _cut_report(request)  # asked for the rest of a report cut by max_tokens: its request, its text
    basis = cut[0] if cut is not None else request
    terms = synthweb.query_terms(basis.subject or basis.last_user_text)
    if basis.subject:  # the turn's own prompt adds its angle after the subject's terms
        terms += [t for t in synthweb.query_terms(basis.last_user_text) if t not in terms][:2]
    topic = " ".join(terms[:3]).lower()
    report_mode = bool(_REPORT.search(basis.last_user_text))
    target = rng.randint(*sorted(settings.output_tokens_per_turn))
    cap, cap_reason = _output_cap(request, prompt_tokens, context_window, target)
    out = _Builder(cap)
    message_id = _make_id(rng, "msg_")
    queries, pause_at = _plan_searches(rng, request, settings, terms)
    uncited = report_mode and _report_without_sources(rng, basis)
    labels = prose.prior_labels(_first_user_text(request)) if report_mode else []
    subject = prose.subject_phrase(request.subject or topic)

    stop_reason = "end_turn"
    stop_details: dict[str, Any] | None = None
    searches = _Searches()
    if request.directives.refusal:
        out.text(prose.intro(rng, topic))
        out.text(prose.filler(rng))
        stop_reason = "refusal"
        explanation = "The simulator was asked to refuse ([sim:refusal])."
        stop_details = {"type": "refusal", "category": None, "explanation": explanation}
    elif _client_answer(out, request, settings, digest, terms, topic, report_mode):
        stop_reason = "tool_use" if any(b.final["type"] == "tool_use" for b in out.blocks) else stop_reason
    elif uncited:
        report = _report_from_conversation(basis, settings, subject, labels)
        if cut is not None and report.startswith(cut[1]):
            report = report[len(cut[1]) :]  # the rest, from where it was cut (as a model continues)
        out.text(report)
    else:
        if request.pending_search is None:
            out.text(prose.intro(rng, topic))
        section_budget = int(target * (0.45 if report_mode else 0.7)) // max(1, len(queries))
        searches = _run_searches(out, rng, request, settings, queries, pause_at, section_budget)
        if searches.paused_id is not None:
            stop_reason = "pause_turn"
        elif not out.truncated:
            _conclude(out, rng, topic, searches.pages, report_mode, target, labels=labels, subject=subject)
    while request.directives.max_tokens and not out.truncated:
        out.text(prose.filler(rng))  # [sim:max_tokens] always ends in max_tokens, whatever else is asked
    if out.truncated:
        stop_reason = cap_reason
        stop_details = None

    output = max(out.output, 1)
    usage_start, usage_delta = _usage(prompt_tokens, cache, searches, output, request.web_tool is not None)
    return Turn(
        message_id=message_id,
        model=request.snapshot or request.model,
        blocks=out.blocks,
        stop_reason=stop_reason,
        stop_details=stop_details,
        usage_start=usage_start,
        usage_delta=usage_delta,
        output_tokens=output,
        web_search_requests=searches.done,
        seed=rng.getrandbits(32),
        paused_search_id=searches.paused_id,
    )


def _client_answer(
    out: _Builder,
    request: ParsedRequest,
    settings: SimulatorSettings,
    digest: bytes,
    terms: list[str],
    topic: str,
    report_mode: bool,
) -> bool:
    """Answers that are not research: client tool calls, structured output, answers to tool results
    and plain answers sized to the prompt. False when the turn is a research turn instead.

    Draws from its own generator, so research turns stay what they were for a seed.
    """
    if request.pending_search is not None:
        return False
    rng = _rng_for(settings, digest + b"client")
    words = [t.lower() for t in terms]
    calls = client_tools.plan_calls(request, rng, words)
    if calls:
        for call in calls:
            if not out.tool_use(call):
                break
        return True
    schema = client_tools.output_schema(request)
    if schema is not None:
        out.text(json_text(generate(schema, rng, words)))
        return True
    results = client_tools.answers_tool_results(request)
    if results:
        out.text(answers.from_tool_results(rng, results, _tool_names(request)))
        return True
    if request.web_tool is not None or report_mode or request.continuation:
        return False
    target = answers.target_tokens(request.last_user_text, rng, settings.output_tokens_per_turn)
    early = out.cap == request.max_tokens  # the model sees its max_tokens, not the context window
    for i, part in enumerate(answers.plain(rng, topic, target)):
        if i > 0 and early and not out.fits(part):
            break
        out.text(part)
    return True


def _tool_names(request: ParsedRequest) -> dict[str, str]:
    """``tool_use`` id -> tool name over the conversation (to name the tools whose results came back)."""
    names: dict[str, str] = {}
    for message in request.messages:
        content = message.get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_use":
                names[str(block.get("id"))] = str(block.get("name"))
    return names


def _conclude(
    out: _Builder,
    rng: random.Random,
    topic: str,
    pages: list[synthweb.Page],
    report_mode: bool,
    target: int,
    *,
    labels: list[tuple[str, str]] | None = None,
    subject: str = "",
) -> None:
    """The closing text: a Markdown report when asked for one, else a summary paragraph."""
    if report_mode:
        out.text("\n\n" + prose.report_heading(topic))
        for title in ("Findings", "Evidence and disagreements", "Outlook"):
            if not out.text(prose.report_section(title)):
                return
            if pages:
                if not out.pieces(prose.cited_pieces(rng, pages, max(40, target // 8))[1:]):
                    return
            else:
                out.text(prose.filler(rng).lstrip() + prose.filler(rng))
        if labels:
            through = prose.label_sentences(rng, labels, subject or topic, 6)
            if not out.text(prose.report_section("What the earlier reports show") + through):
                return
        if pages:
            out.text(prose.sources_section(pages[:8]))
        return
    out.text(prose.closer(rng, topic))
    while out.output < target and not out.truncated:
        out.text(prose.filler(rng))


def _report_without_sources(rng: random.Random, request: ParsedRequest) -> bool:
    """Whether a report turn answers from what the conversation holds: no search, no citation.

    Always when the request lets it search nothing (no search tool, or ``tool_choice`` none, as the
    product's report turns are sent); with the tool, only after earlier turns (there is something to
    write from), often, and never when a directive asks for a search-dependent behaviour.
    """
    directives = request.directives
    if request.continuation or request.pending_search is not None or directives.refusal:
        return False
    if request.web_tool is None or (request.tool_choice or {}).get("type") == "none":
        return True  # it cannot search: it writes from what it has
    if not _has_earlier_turns(request) or directives.pause_turn or directives.max_tokens:
        return False
    return UNCITED_REPORT_DIRECTIVE in request.last_user_text or rng.random() < UNCITED_REPORT_PROBABILITY


def _report_from_conversation(
    request: ParsedRequest, settings: SimulatorSettings, subject: str, labels: list[tuple[str, str]]
) -> str:
    """The whole report a report turn writes from what its conversation holds, citing the numbered
    sources its prompt lists unless told not to cite. Drawn from the conversation's content (not the
    request's bytes), so asking for the rest of a cut report regenerates the same report."""
    rng = _rng_for(settings, _content_digest(request.messages) + b"report")
    numbers = (
        None
        if UNCITED_REPORT_DIRECTIVE in request.last_user_text
        else prose.numbered_sources(request.last_user_text)
    )
    return prose.uncited_report(rng, subject, labels, earlier=_earlier_findings(request), numbers=numbers)


def _content_digest(messages: list[dict[str, Any]]) -> bytes:
    """The conversation's content, without its cache breakpoints (which move from call to call)."""

    def bare(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: bare(v) for k, v in value.items() if k != "cache_control"}
        if isinstance(value, list):
            return [bare(v) for v in value]
        return value

    return hashlib.sha256(json.dumps(bare(messages), sort_keys=True).encode()).digest()


_CONTINUE = re.compile(r"\bcontinue\b[^.?!]*\bwhere you (?:stopped|left off)\b", re.IGNORECASE)


def _cut_report(request: ParsedRequest) -> tuple[ParsedRequest, str] | None:
    """For "continue where you stopped" after a report cut by ``max_tokens``: the request the report
    answered and the text written so far (None for anything else)."""
    if request.continuation or not _CONTINUE.search(request.last_user_text):
        return None
    messages = request.messages
    written: list[str] = []
    index = len(messages) - 2
    while index >= 1 and messages[index].get("role") == "assistant":
        content = messages[index].get("content")
        blocks = content if isinstance(content, list) else []
        written.insert(0, "".join(str(b.get("text", "")) for b in blocks if isinstance(b, dict)))
        prompt = last_user_text(messages[index - 1 : index])
        if not _CONTINUE.search(prompt):
            if not _REPORT.search(prompt):
                return None
            original = replace(
                request,
                messages=messages[:index],
                last_user_text=prompt,
                directives=parse_directives(prompt),
                continuation=False,
                pending_search=None,
            )
            return original, "".join(written)
        index -= 2
    return None


def _earlier_findings(request: ParsedRequest) -> list[tuple[str, str]]:
    """The cited sentences of the conversation's earlier answers, each with the URL it cited: what a
    report repeats (and, given numbered sources, cites again by number)."""
    found: dict[str, str] = {}
    for message in request.messages:
        content = message.get("content")
        if message.get("role") != "assistant" or not isinstance(content, list):
            continue
        for block in content:
            if isinstance(block, dict) and block.get("citations") and str(block.get("text", "")).strip():
                citation = block["citations"][0]
                url = str(citation.get("url", "")) if isinstance(citation, dict) else ""
                found.setdefault(str(block["text"]).strip(), url)
    return list(found.items())


def _has_earlier_turns(request: ParsedRequest) -> bool:
    return any(m.get("role") == "assistant" for m in request.messages[:-1])


def _first_user_text(request: ParsedRequest) -> str:
    """The brief: where a later layer's prompt quotes the earlier reports and their labelled sources."""
    for message in request.messages:
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return "\n".join(str(b.get("text", "")) for b in content or [] if isinstance(b, dict))
    return ""
