"""One agent's conversation: the turn loop over streamed calls, with budget, retries and saves.

A *user turn* is one prompt of the agent's plan; answering it may take several API calls
(``pause_turn`` continuations, ``max_tokens`` continuations). Every completed API call is
settled against the ledger and checkpointed before the next one starts, so nothing paid for is
lost and a resumed agent continues from its last completed call.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from anthropic import AsyncAnthropic
from anthropic.types import Message

from core.api.attempt import AttemptProgress, Outcome
from core.api.retry import (
    ONE_REQUEST,
    ErrorInfo,
    NonRetryableError,
    RequestCost,
    RequestGate,
    RetryPolicy,
    call_with_retries,
    first_call_refusal,
)
from core.api.streaming import AgentContext, CallResult, stream_call
from core.api.usage import TokenUsage
from core.budget.bounds import (
    SEAM_TOKENS,
    conversation_bound,
    counted_bound,
    grown_bound,
    tools_bound,
    utf8_bytes,
)
from core.budget.charges import Charge
from core.budget.ledger import BudgetExhausted, BudgetLedger, CacheWrite, CallRequest, Reservation
from core.config.model import ResearchConfig, ResolvedAgent
from core.control import AgentStatus
from core.engine.billing import AttemptBudget
from core.engine.compaction import (
    SizeCache,
    compacted,
    estimate_tokens,
    is_prompt_too_long,
    plan_compaction,
    summary_request,
)
from core.engine.turn_plan import CONTINUE_PROMPT, REPORT_NOW_PROMPT, build_plan
from core.events import (
    ApiErrorRaised,
    AttemptAbandoned,
    AttemptCharged,
    BudgetCapReached,
    ContextCompacted,
    RetryScheduled,
    StopReasonUnhandled,
    TurnCompleted,
)
from core.reports.citethrough import PriorSources
from core.reports.render import AgentMeta, build_report
from core.reports.sources import carried_sources_note

T = TypeVar("T")


@dataclass(slots=True)
class SessionState:
    """Everything needed to continue an agent after a crash (saved with each checkpoint)."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    plan_index: int = 0  # next prompt of the plan to send
    pending: str | None = None  # "pause_turn" | "max_tokens": the next call continues the answer
    api_turns: int = 0
    searches: int = 0
    retries: int = 0
    cost_usd: float = 0.0
    continuations: int = 0  # within the current user turn
    tools: list[dict[str, Any]] | None = None  # frozen per user turn: continuations resend the same
    report_from: int | None = None  # index of the first message of the report turn
    input_bound: int | None = None  # tokens of the system prompt + messages, at most (None: measure)
    status: str = AgentStatus.PENDING.value

    def counters(self) -> dict[str, Any]:
        """Everything but the conversation (saved as a delta by the checkpoint store)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "messages"}

    @classmethod
    def restore(cls, messages: list[dict[str, Any]], counters: dict[str, Any]) -> SessionState:
        known = {k: v for k, v in counters.items() if k in cls.__dataclass_fields__ and k != "messages"}
        return cls(messages=list(messages), **known)

    def pop_user(self) -> None:
        """Drop the last (user) message, keeping the input bound true."""
        message = self.messages.pop()
        if self.input_bound is not None:
            self.input_bound -= utf8_bytes(message)

    def unsend_prompt(self) -> None:
        """Take back the prompt that no call answered yet: a resume sends the plan's again (a
        "write it now" prompt is the budget stop's, which a resume decides afresh)."""
        if self.pending or not self.messages or self.messages[-1]["role"] != "user":
            return
        report_now = self.messages[-1]["content"] == _user_message(REPORT_NOW_PROMPT)["content"]
        self.pop_user()
        if not report_now:
            self.plan_index -= 1
        if self.report_from == len(self.messages):
            self.report_from = None

    def resumable(self) -> SessionState:
        """A copy as a resume must find it mid-call: at the turn boundary before the call."""
        copied = copy.copy(self)
        copied.messages = list(self.messages)
        copied.unsend_prompt()
        return copied


@dataclass(frozen=True, slots=True)
class SessionResult:
    status: AgentStatus
    report: str
    state: SessionState
    error: str | None = None
    fatal_for_run: bool = False  # the error ends the whole run (a rejected API key)


class TurnBoundary(Protocol):
    """Where a session hands control back to its agent's handle, which owns the agent's status.

    A session never publishes status events itself: it tells the handle, which changes the
    status and publishes the event (so the run's view and ``agent_status`` always agree).
    """

    async def at_turn_boundary(self) -> None:
        """Before each API call: a requested pause takes hold here."""

    def waiting_for_budget(self, cap: str, message: str) -> None:
        """The next call does not fit the caps now but will once calls in flight settle."""

    def budget_wait_over(self) -> None:
        """The call fits again (or the wait ended): the agent is running."""


class AgentSession:
    def __init__(
        self,
        *,
        agent: ResolvedAgent,
        config: ResearchConfig,
        client: AsyncAnthropic,
        context: AgentContext,
        ledger: BudgetLedger,
        policy: RetryPolicy,
        gate: RequestGate,
        control: TurnBoundary,
        prior_reports: dict[str, str],
        save: Callable[[ResolvedAgent, SessionState], Awaitable[None]] | None = None,
        write_ahead: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None,
        state: SessionState | None = None,
        context_window: int | None = None,
    ) -> None:
        self.agent = agent
        self.config = config
        self.client = client
        self.context = context
        self.ledger = ledger
        self.policy = policy
        self.gate = gate
        self.control = control
        self.save = save
        self.write_ahead = write_ahead
        self.state = state or SessionState()
        self.context_window = context_window
        self._sizes = SizeCache()
        self.unsaved_charge = False  # a failed attempt was charged since the last checkpoint
        self.plan = build_plan(agent, config.program, config.defaults, prior_reports)
        self.prior_sources = PriorSources.of(prior_reports)  # what its report's labels resolve to

    # --- the loop ---------------------------------------------------------------------------

    async def run(self) -> SessionResult:
        """Turns until the plan is done or a cap binds. API errors propagate (see :meth:`fail`);
        so does cancellation (a kill or a stop), which the agent's handle turns into an outcome."""
        state = self.state
        state.status = AgentStatus.RUNNING.value
        try:
            while True:
                if not state.pending and state.plan_index >= len(self.plan):
                    return self._finish(AgentStatus.COMPLETED)
                await self.control.at_turn_boundary()
                if not state.pending:
                    self._begin_user_turn(self.plan[state.plan_index])
                try:
                    result = await self._call_within_window()
                except BudgetExhausted as exhausted:
                    return await self._finish_on_budget(exhausted)
                outcome = self._absorb(result)
                await self._checkpoint(state)
                if outcome is not None:
                    return self._finish(outcome)
        finally:
            self.ledger.end_agent(self.agent.id)  # its report hold goes back to the others
            self.context.bus.publish(self.ledger.to_event(self.context.run_id))

    async def _checkpoint(self, state: SessionState) -> None:
        """Save ``state`` with the run's ledger (what every call so far was charged)."""
        if self.save is not None:
            await self.save(self.agent, state)
        self.unsaved_charge = False

    def _begin_user_turn(self, prompt: str) -> None:
        state = self.state
        # Only the plan's last turn is its report; a research turn after a "write it now" report
        # (a budget-stopped agent resumed with a raised cap) searches again.
        state.report_from = len(state.messages) if state.plan_index == len(self.plan) - 1 else None
        self._append_user(prompt)
        state.plan_index += 1
        state.continuations = 0
        state.tools = None  # chosen by the first call's reservation, then kept for continuations

    def _absorb(self, result: CallResult) -> AgentStatus | None:
        """Fold a completed call into the conversation; a status when the agent is done."""
        state = self.state
        state.messages.append({"role": "assistant", "content": result.content})
        stop = result.stop_reason
        if stop == "pause_turn":
            state.continuations += 1
            searches_left = self.agent.max_searches is None or state.searches < self.agent.max_searches
            if searches_left and state.continuations <= self.config.defaults.max_pause_continuations:
                state.pending = "pause_turn"
                return None
            state.pending = None  # cap reached: treat what we have as the answer
            return None
        if stop == "max_tokens":
            state.continuations += 1
            if state.continuations <= self.config.defaults.max_tokens_continuations:
                state.pending = "max_tokens"
                self._append_user(CONTINUE_PROMPT)
                return None
            state.pending = None
            return None
        state.pending = None
        if stop == "refusal":
            return AgentStatus.REFUSED
        if stop == "model_context_window_exceeded":
            # The answer is valid but the window is full: no further turn can fit. Keep it.
            return AgentStatus.COMPLETED
        if stop not in ("end_turn", "stop_sequence", "tool_use"):
            self.context.publish(StopReasonUnhandled, turn=state.api_turns, stop_reason=str(stop))
        return None

    # --- one API call, budgeted and retried -------------------------------------------------

    def request_params(self) -> dict[str, Any]:
        """The request for the next call; its ``tools`` are settled by :meth:`_reserve`."""
        defaults = self.config.defaults
        caching = defaults.caching
        cache_control: dict[str, Any] = {"type": "ephemeral"}
        if caching.ttl == "1h":
            cache_control["ttl"] = "1h"
        # The API refuses an empty text block (400), so an empty system prompt sends no block.
        prompt = defaults.system_prompt
        system: list[dict[str, Any]] = [{"type": "text", "text": prompt}] if prompt else []
        messages = wire_messages(self.state.messages)
        if caching.enabled and system:
            system[0]["cache_control"] = cache_control
            messages = _with_breakpoints(messages, cache_control)
        params: dict[str, Any] = {
            "model": self.agent.model,
            "max_tokens": self.agent.max_tokens,
            "system": system,
            "messages": messages,
        }
        if not defaults.system_prompt.strip():
            del params["system"]  # the API rejects an empty text block: no system prompt at all
        tools = self.state.tools
        if tools is None:
            wanted = self._searches_wanted()
            tools = [self._search_tool(wanted)] if wanted else []
        if tools:
            params["tools"] = tools
        return params

    def _searches_wanted(self) -> int:
        """The search allowance a new research turn asks for: ``max_uses`` (its default when the
        config gives none), no more than the agent has left; none for a report."""
        if self._writing_report:
            return 0  # the report turn sends no search allowance: a search cap never blocks it
        wanted = self.config.defaults.web_search.per_request
        if self.agent.max_searches is not None:
            wanted = min(wanted, self.agent.max_searches - self.state.searches)
        return max(0, wanted)

    def _search_tool(self, max_uses: int) -> dict[str, Any]:
        search = self.config.defaults.web_search
        tool: dict[str, Any] = {"type": search.version, "name": "web_search", "max_uses": max(1, max_uses)}
        if search.allowed_domains:
            tool["allowed_domains"] = list(search.allowed_domains)
        if search.blocked_domains:
            tool["blocked_domains"] = list(search.blocked_domains)
        if search.user_location is not None:
            tool["user_location"] = search.user_location.model_dump(exclude_none=True)
        if search.version != "web_search_20250305":
            tool["allowed_callers"] = ["direct"]
        return tool

    @property
    def _writing_report(self) -> bool:
        """In the report turn (a one-turn plan's only turn is research as well)."""
        start = self.state.report_from
        return start is not None and (len(self.plan) > 1 or start > 0)

    @property
    def _cache_write(self) -> CacheWrite:
        caching = self.config.defaults.caching
        return caching.ttl if caching.enabled else "none"

    async def _history_bound(self) -> int:
        """Tokens of the system prompt and messages, at most: kept up to date from each call's
        usage; measured (bytes, or the API's count when that is much tighter) when unknown."""
        state = self.state
        if state.input_bound is None:
            system = self.config.defaults.system_prompt
            wire = wire_messages(state.messages)
            bound = conversation_bound(system, state.messages)
            state.input_bound = await counted_bound(self.client, self.agent.model, system, wire, bound)
        return state.input_bound

    def _append_user(self, text: str) -> None:
        message = _user_message(text)
        if self.state.input_bound is not None:
            self.state.input_bound += utf8_bytes(message)
        self.state.messages.append(message)

    def _pop_user(self) -> None:
        self.state.pop_user()

    def _report_prompt_bound(self) -> int:
        """Tokens the report's prompt may add (the plan's report turn, or "write it now")."""
        prompts = (self.plan[-1], REPORT_NOW_PROMPT)
        return max(utf8_bytes(_user_message(p)) for p in prompts) + SEAM_TOKENS

    async def _reserve(self, params: dict[str, Any]) -> tuple[Reservation, int]:
        """Hold the call's worst case (waiting for room while others' calls hold it); return it
        with the call's input bound.

        The search allowance asked for is the turn's ``max_uses``, no more than the agent has left;
        the ledger may shrink it to fit (to one search at least), and the request then carries
        exactly what was granted. A call granted no search (a report, an agent whose searches are
        spent) sends no tool, or, when the conversation already holds searches (the API wants the
        tool defined then), the tool with ``tool_choice: none``, under which no search can run. A
        continuation resends the turn's tool with the allowance granted to it.
        """
        state = self.state
        tools: list[dict[str, Any]] = params.get("tools", [])
        wanted = int(tools[0].get("max_uses") or 0) if tools else 0
        if self.agent.max_searches is not None:
            wanted = min(wanted, self.agent.max_searches - state.searches)
        wanted = max(0, wanted)
        restricted = [] if tools or not _holds_searches(state.messages) else [self._search_tool(1)]
        call_input = await self._history_bound() + tools_bound(tools or restricted)
        report = self._writing_report
        request = CallRequest(
            agent_id=self.agent.id,
            layer=self.agent.layer,
            model=self.agent.model,
            input_tokens=call_input,
            max_tokens=self.agent.max_tokens,
            max_searches=wanted,
            min_searches=min(1, wanted),
            agent_search_cap=self.agent.max_searches,
            cache_write=self._cache_write,
            report_input_tokens=None if report else call_input + self._report_prompt_bound(),
            report=report,
            purpose="report" if report else "turn",
        )
        reservation = await self._acquire(request)
        if state.tools is None:
            state.tools = tools[:1]  # the turn's tool: its continuations resend it
        granted = reservation.max_searches
        params.pop("tool_choice", None)
        if granted and tools:
            params["tools"] = [{**tools[0], "max_uses": granted}]
        elif tools or restricted:
            params["tools"] = [{**(tools or restricted)[0], "max_uses": 1}]
            params["tool_choice"] = {"type": "none"}
        else:
            params.pop("tools", None)
        return reservation, call_input

    async def _acquire(self, request: CallRequest) -> Reservation:
        """The ledger's reservation; while it waits for budget, the agent's handle says so."""
        waited = False

        def on_wait(problem: BudgetExhausted) -> None:
            nonlocal waited
            waited = True
            self.control.waiting_for_budget(problem.cap, str(problem))

        try:
            return await self.ledger.acquire(request, on_wait=on_wait)
        finally:
            if waited:
                self.control.budget_wait_over()

    async def _call(self) -> CallResult:
        base = self.request_params()
        params = dict(base)
        reservation, call_input = await self._reserve(params)

        async def again() -> Reservation:
            """A retry's reservation: the same request, its searches as the agent has them left."""
            nonlocal params
            params = dict(base)
            return (await self._reserve(params))[0]

        turn = self.state.api_turns + 1
        size = RequestCost(input_tokens=reservation.input_tokens)  # paces the gate near token limits
        result, cost = await self._retried(
            reservation,
            again,
            lambda progress: self._attempt(params, turn, progress),
            lambda result: result.usage,
            turn,
            size,
        )
        self.state.input_bound = grown_bound(call_input, result.usage, self.ledger.search_input_tokens)
        self.state.api_turns = turn
        self.state.cost_usd += cost
        self.state.searches += result.usage.web_search_requests
        self.context.publish(
            TurnCompleted,
            turn=turn,
            request_id=result.request_id,
            stop_reason=result.stop_reason,
            usage=result.usage,
            cost_usd=cost,
            model=self.agent.model,
            paused_continuation=self.state.pending == "pause_turn",
        )
        self.context.bus.publish(self.ledger.to_event(self.context.run_id))
        return result

    async def _call_within_window(self) -> CallResult:
        """Compact before a call that would not fit; a 400 "prompt is too long" compacts once more."""
        settings = self.config.execution_settings.context
        if self.context_window and (
            estimate_tokens(self.state.messages, self._sizes) + self.agent.max_tokens
            > settings.compact_at_fraction * self.context_window
        ):
            await self._compact()
        try:
            return await self._call()
        except NonRetryableError as error:
            if not is_prompt_too_long(error.info.message) or not await self._compact():
                raise
            return await self._call()

    async def _compact(self) -> bool:
        """Summarise the oldest turns into a note (a budgeted call) and drop them whole."""
        state = self.state
        plan = plan_compaction(state.messages, self.config.execution_settings.context.keep_recent_turns)
        if plan is None:
            return False
        before = estimate_tokens(state.messages)
        params = summary_request(self.agent.model, plan.notes)
        request = CallRequest(
            agent_id=self.agent.id, layer=self.agent.layer, model=self.agent.model,
            input_tokens=conversation_bound(params["system"], params["messages"]),
            max_tokens=params["max_tokens"], max_searches=0, purpose="compaction", cache_write="none",
        )  # fmt: skip

        async def create(progress: AttemptProgress) -> Message:
            progress.sent = True
            message: Message = await self.client.messages.create(**params)
            return message

        message, cost = await self._retried(
            await self._acquire(request),
            lambda: self._acquire(request),
            create,
            lambda message: TokenUsage.from_api(message.usage),
            state.api_turns,
        )
        usage = TokenUsage.from_api(message.usage)
        state.cost_usd += cost
        summary = "".join(block.text for block in message.content if block.type == "text")
        summary += carried_sources_note(state.messages[1 : plan.keep_from])  # the report still lists them
        dropped = plan.keep_from - 1
        state.messages = compacted(state.messages, plan, summary)
        state.input_bound = None  # measured again from the compacted conversation
        if state.report_from is not None:
            state.report_from = max(2, state.report_from - dropped + 1)
        self.context.publish(
            ContextCompacted,
            turn=state.api_turns,
            dropped_messages=dropped,
            tokens_before=before,
            tokens_after=estimate_tokens(state.messages),
            cost_usd=cost,
            usage=usage,
        )
        self.context.bus.publish(self.ledger.to_event(self.context.run_id))
        await self._checkpoint(state)
        return True

    async def _retried(
        self,
        reservation: Reservation,
        reserve: Callable[[], Awaitable[Reservation]],
        call: Callable[[AttemptProgress], Awaitable[T]],
        usage_of: Callable[[T], TokenUsage],
        turn: int,
        cost: RequestCost = ONE_REQUEST,
    ) -> tuple[T, float]:
        """One budgeted call with our retries: its result and dollars.

        Each attempt runs on a reservation of its own (:class:`AttemptBudget`): a failed one is
        charged what it may have been billed, and a retry reserves again with ``reserve`` (a
        :class:`BudgetExhausted` there stops the agent like any cap).
        """
        budget = AttemptBudget(
            self.ledger,
            reservation,
            reserve,
            lambda charge, usd, outcome, progress: self._charged(charge, usd, outcome, progress, turn),
        )

        async def ready(attempt: int) -> None:
            if self.unsaved_charge:  # saved before the retry: a crash cannot lose the charge
                await self._checkpoint(self.state.resumable())
            await budget.ready(attempt)
            if self.write_ahead is not None and budget.reservation is not None:
                await self.write_ahead(self.agent.id, self._in_flight(budget.reservation))

        try:
            result = await call_with_retries(
                lambda attempt: budget.run(call),
                policy=self.policy,
                gate=self.gate,
                on_retry=lambda info, attempt, wait: self._on_retry(
                    info, attempt, wait, turn, budget.progress
                ),
                cost=cost,
                before_attempt=ready,
            )
            return result, budget.settle(usage_of(result))
        finally:
            budget.close()

    def _in_flight(self, reservation: Reservation) -> dict[str, Any]:
        """The write-ahead entry of an attempt about to be sent: its worst case, and how many of the
        agent's reservations the ledger had closed (a resume finds it unclosed if it never ended)."""
        return {
            "closed_before": self.ledger.closed(self.agent.id),
            "layer": self.agent.layer,
            "model": reservation.model,
            "turn": self.state.api_turns + 1,
            "worst_usage": self.ledger.worst_usage(reservation).to_dict(),
        }

    async def _attempt(self, params: dict[str, Any], turn: int, progress: AttemptProgress) -> CallResult:
        result = await stream_call(self.client, params, self.context, turn, progress)
        self.gate.observe_headers(result.headers)
        return result

    def _charged(
        self, charge: Charge, cost: float, outcome: Outcome, progress: AttemptProgress, turn: int
    ) -> None:
        """A failed attempt's charge counts as the agent's spend, like a completed turn's."""
        if charge.basis == "none":
            return
        self.unsaved_charge = True
        self.state.cost_usd += cost
        self.state.searches += charge.usage.web_search_requests
        self.context.publish(
            AttemptCharged,
            turn=turn,
            request_id=progress.request_id,
            usage=charge.usage,
            cost_usd=cost,
            basis=charge.basis,
            outcome=outcome.value,
        )
        self.context.bus.publish(self.ledger.to_event(self.context.run_id))

    def _on_retry(
        self, info: ErrorInfo, attempt: int, wait: float, turn: int, progress: AttemptProgress
    ) -> None:
        self.state.retries += 1
        self.context.publish(AttemptAbandoned, turn=turn, request_id=info.request_id, chars=progress.chars)
        self.context.publish(
            RetryScheduled,
            turn=turn,
            request_id=info.request_id,
            error_kind=info.kind,
            status_code=info.status_code,
            attempt=attempt,
            wait_s=wait,
            message=info.message,
        )

    # --- endings ----------------------------------------------------------------------------

    async def _finish_on_budget(self, exhausted: BudgetExhausted) -> SessionResult:
        """A cap stops the research: the agent writes its report now (its report hold pays for
        it), else keeps the text it has."""
        state = self.state
        self.ledger.record_stop(self.agent.id, exhausted)
        self.context.publish(
            BudgetCapReached,
            turn=state.api_turns,
            cap=exhausted.cap,
            message=str(exhausted),
            reason=exhausted.reason,
        )
        if state.pending == "max_tokens" and state.messages and state.messages[-1]["role"] == "user":
            self._pop_user()  # the "continue" prompt that could not be sent
        else:
            state.unsend_prompt()  # the prompt that could not be sent: a resume sends it again
        state.pending = None  # a paused turn's dangling search is dropped on the wire
        if state.report_from is not None:
            # The report turn had begun: what it wrote is the report, cut short.
            written = any(m["role"] == "assistant" for m in state.messages[state.report_from :])
            return self._finish(AgentStatus.BUDGET_EXHAUSTED, partial=not written)
        wrote_report = False
        if state.messages:
            state.report_from = len(state.messages)
            state.tools = None
            self._append_user(REPORT_NOW_PROMPT)
            try:
                result = await self._call()
            except BudgetExhausted:
                self._pop_user()
                state.report_from = None
            else:
                state.messages.append({"role": "assistant", "content": result.content})
                wrote_report = True
                await self._checkpoint(state)
        return self._finish(AgentStatus.BUDGET_EXHAUSTED, partial=not wrote_report)

    def _finish(self, status: AgentStatus, *, partial: bool = False) -> SessionResult:
        self.state.status = status.value
        return SessionResult(status=status, report=self.report(partial=partial), state=self.state)

    def killed(self) -> SessionResult:
        """The result of a session whose task was cancelled by a kill: what it wrote is kept."""
        return self._finish(AgentStatus.KILLED, partial=True)

    def fail(self, info: ErrorInfo) -> SessionResult:
        if self.state.api_turns == 0:
            info = first_call_refusal(info)
        self.state.status = AgentStatus.FAILED.value
        self.context.publish(
            ApiErrorRaised,
            turn=self.state.api_turns,
            request_id=info.request_id,
            error_kind=info.kind,
            status_code=info.status_code,
            message=info.message,
            fatal_for_run=info.fatal_for_run,
        )
        return SessionResult(
            status=AgentStatus.FAILED,
            report=self.report(partial=True),
            state=self.state,
            error=info.message,
            fatal_for_run=info.fatal_for_run,
        )

    def report(self, *, partial: bool = False) -> str:
        """The findings of the report turn (or all text, if it never came) with the whole
        conversation's sources: a report turn that cites nothing still lists every cited page."""
        state = self.state
        messages = state.messages
        start = state.report_from
        use_report_turn = (
            start is not None and not partial and any(m["role"] == "assistant" for m in messages[start:])
        )
        note = None
        if not use_report_turn:
            note = "Partial report: the agent stopped before writing its report; this is the text it had."
        agent = self.agent
        meta = AgentMeta(
            id=agent.id, title=agent.title, layer=agent.layer, model=agent.model,
            turns=state.api_turns, searches=state.searches, cost_usd=state.cost_usd,
        )  # fmt: skip
        return build_report(
            agent=meta,
            messages=messages,
            body_messages=messages[start:] if use_report_turn else messages,
            partial_note=note,
            prior=self.prior_sources,
        )


def _holds_searches(messages: list[dict[str, Any]]) -> bool:
    return any(
        block.get("type") == "server_tool_use"
        for message in messages
        if message["role"] == "assistant"
        for block in message["content"]
    )


def _user_message(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def wire_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation as the API wants it: a paused turn and its continuations are one message.

    The history is stored append-only (a continuation's content as its own entry) so each
    checkpoint writes only what is new; the wire form joins consecutive assistant entries, which
    is exactly "the paused content, unchanged, followed by what came after it".
    """
    merged: list[dict[str, Any]] = []
    for message in messages:
        if merged and message["role"] == "assistant" and merged[-1]["role"] == "assistant":
            merged[-1] = {"role": "assistant", "content": [*merged[-1]["content"], *message["content"]]}
        else:
            merged.append(message)
    for index, message in enumerate(merged[:-1]):
        if message["role"] == "assistant":
            merged[index] = _without_dangling_searches(message)
    return merged


def _without_dangling_searches(message: dict[str, Any]) -> dict[str, Any]:
    """A paused turn that was not continued (a cap stopped it) ends with a search that never ran;
    followed by a new user turn it is invalid, so the wire form leaves it out."""
    blocks = message["content"]
    answered = {b.get("tool_use_id") for b in blocks if str(b.get("type", "")).endswith("_tool_result")}
    kept = [b for b in blocks if b.get("type") != "server_tool_use" or b.get("id") in answered]
    if len(kept) == len(blocks):
        return message
    return {"role": "assistant", "content": kept or [{"type": "text", "text": "(search not run)"}]}


def _with_breakpoints(messages: list[dict[str, Any]], cache_control: dict[str, Any]) -> list[dict[str, Any]]:
    """Cache breakpoints on the last two user messages, so each call reads the previous prefix.

    Only user blocks are marked: assistant content is resent exactly as received. With the
    system breakpoint that makes three, under the API's limit of four.
    """
    user_indexes = [i for i, m in enumerate(messages) if m["role"] == "user"][-2:]
    if not user_indexes:
        return messages
    marked = list(messages)
    for index in user_indexes:
        message = copy.copy(marked[index])
        blocks = [dict(b) for b in message["content"]]
        blocks[-1]["cache_control"] = cache_control
        message["content"] = blocks
        marked[index] = message
    return marked
