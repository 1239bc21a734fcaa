"""One agent's conversation: the turn loop over streamed calls, with budget, retries and saves.

A *user turn* is one prompt of the agent's plan; answering it may take several API calls
(``pause_turn`` continuations, ``max_tokens`` continuations). Every completed API call is
settled against the ledger and checkpointed before the next one starts, so nothing paid for is
lost and a resumed agent continues from its last completed call.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

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
from core.api.streaming import AgentContext, stream_call
from core.api.transport import CallResult, Transport
from core.budget.bounds import (
    COUNT_WORTH_ASKING,
    SEAM_TOKENS,
    conversation_bound,
    counted_bound,
    grown_bound,
    tools_bound,
    utf8_bytes,
)
from core.budget.charges import Charge
from core.budget.ledger import BudgetExhausted, BudgetLedger, CallRequest, Reservation
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
from core.engine.request import (
    Turn,
    call_request,
    granted,
    request_params,
    search_ask,
    user_message,
    wire_messages,
    writing_report,
)
from core.engine.threads import MessageThread, send_threaded
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
from core.lifecycle import AgentRow
from core.persistence.atomic import DiskError
from core.reports import numbered
from core.reports.citethrough import PriorSources
from core.reports.render import AgentMeta, build_report
from core.reports.sources import carried_sources_note
from core.usage import TokenUsage

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(slots=True)
class SessionState:
    """Everything needed to continue an agent after a crash (saved with each checkpoint)."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    plan_index: int = 0  # next prompt of the plan to send
    pending: str | None = None  # "pause_turn" | "max_tokens": the next call continues the answer
    continuations: int = 0  # within the current user turn
    tools: list[dict[str, Any]] | None = None  # frozen per user turn: continuations resend the same
    report_from: int | None = None  # index of the first message of the report turn
    cut: bool = False  # the last answer was cut by max_tokens with no continuation left
    listing_room: int | None = None  # bytes the report prompt's sources may take: what its hold holds
    input_bound: int | None = None  # tokens of the system prompt + messages, at most (None: measure)
    searchless: bool = False  # the last call was a research turn's last resort, with no search
    # (The agent's status, turns, searches, dollars and retries are its row's: core.lifecycle.)

    def counters(self) -> dict[str, Any]:
        """Everything but the conversation (saved as a delta by the checkpoint store, beside the
        agent's row: :func:`core.lifecycle.saved_form`)."""
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
        report_now = _asks_report_now(self.messages[-1])
        self.pop_user()
        if not report_now:
            self.plan_index -= 1
        if self.report_from == len(self.messages):
            self.report_from = None

    def ends_with_report(self) -> int | None:
        """Where the report a budget stop had the agent write begins, when the conversation ends
        with it (a "write it now" prompt and its answer); else None."""
        messages = self.messages
        if (
            len(messages) >= 2
            and messages[-1]["role"] == "assistant"
            and messages[-2]["role"] == "user"
            and _asks_report_now(messages[-2])
        ):
            return len(messages) - 2
        return None

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
    """Where a session hands control back to its agent's handle, which owns the agent's row.

    A session never changes the agent's status or figures itself: its events reach the handle
    (through its context), which moves the row (:func:`core.lifecycle.step`) and publishes them;
    a status change the session asks for (a budget wait) it asks of the handle.
    """

    @property
    def row(self) -> AgentRow:
        """The agent as it stands: its completed turns, searches and dollars."""

    async def at_turn_boundary(self) -> None:
        """Before each user turn or continuation: a requested pause (or a clean stop) takes hold here."""

    async def before_call(self) -> None:
        """Just before each attempt is sent (its budget held): a clean stop takes hold here too."""

    def call_failed(self) -> None:
        """An attempt failed and its retry waits: no call of the agent is in flight."""

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
        transport: Transport,
        context: AgentContext,
        ledger: BudgetLedger,
        policy: RetryPolicy,
        gate: RequestGate,
        control: TurnBoundary,
        prior_reports: dict[str, str],
        save: Callable[[ResolvedAgent, SessionState, AgentStatus | None], Awaitable[None]] | None = None,
        write_ahead: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None,
        release_ahead: Callable[[str], Awaitable[None]] | None = None,
        state: SessionState | None = None,
        context_window: int | None = None,
        last_running: Callable[[], bool] | None = None,
    ) -> None:
        self.agent = agent
        self.config = config
        self.transport = transport
        self.context = context
        self.ledger = ledger
        self.policy = policy
        self.gate = gate
        self.control = control
        self.save = save
        self.write_ahead = write_ahead
        self.release_ahead = release_ahead
        self.state = state or SessionState()
        self.context_window = context_window
        # Whether every other agent of the run has ended: what this one leaves is then stranded,
        # so a step the caps allow only without the prompt cache or without a search is worth it.
        self.last_running = last_running or (lambda: False)
        self._sizes = SizeCache()
        self._sources = numbered.SourcesSoFar()  # the conversation's sources, read once per message
        self._measured: int | None = None  # the history's bound when last measured (bytes or a count)
        self._searchless_grant = False  # the call in flight goes with no search, as a last resort
        self._ahead = False  # the attempt in flight was written ahead
        self.unsaved_charge = False  # a failed attempt was charged since the last checkpoint
        self.plan = build_plan(agent, config.program, config.defaults, prior_reports)
        self.prior_sources = PriorSources.of(prior_reports)  # what its report's labels resolve to
        # In memory only: a resumed or forked agent starts a new thread with its whole conversation.
        self.thread = MessageThread() if agent.message_threads else None

    # --- the loop ---------------------------------------------------------------------------

    async def run(self) -> SessionResult:
        """Turns until the plan is done or a cap binds. API errors propagate (see :meth:`fail`);
        so does cancellation (a kill or a stop), which the agent's handle turns into an outcome."""
        state = self.state
        try:
            while True:
                if not state.pending and (state.plan_index >= len(self.plan) or self._report_stands()):
                    return self._finish(AgentStatus.COMPLETED)
                await self.control.at_turn_boundary()
                if not state.pending:
                    self._begin_user_turn(self.plan[state.plan_index])
                try:
                    result = await self._call_within_window()
                except BudgetExhausted as exhausted:
                    return await self._finish_on_budget(exhausted)
                outcome = self._absorb(result)
                if outcome is None and not state.pending and state.plan_index >= len(self.plan):
                    outcome = AgentStatus.COMPLETED
                await self._checkpoint(state, outcome)  # the last turn's checkpoint is the agent's final one
                if outcome is not None:
                    return self._finish(outcome)
        finally:
            self.ledger.end_agent(self.agent.id)  # its report hold goes back to the others
            self.context.bus.publish(self.ledger.to_event(self.context.run_id))

    def _report_stands(self) -> bool:
        """Resumed at the plan's report turn with the report a budget stop had it write: that is
        the report its plan asks for, from the same research, so it is kept, not paid for twice
        (nor, if the cap still binds, rewritten as partial)."""
        state = self.state
        written = state.ends_with_report() if state.plan_index == len(self.plan) - 1 else None
        if written is None:
            return False
        state.report_from = written
        return True

    async def _checkpoint(self, state: SessionState, ending: AgentStatus | None = None) -> None:
        """Save ``state`` with the run's ledger (what every call so far was charged); ``ending``:
        the agent ends with this save (its checkpoint holds the status it ends with)."""
        if self.save is not None:
            await self.save(self.agent, state, ending)
        self.unsaved_charge = False

    def _begin_user_turn(self, prompt: str) -> None:
        state = self.state
        # Only the plan's last turn is its report; a research turn after a "write it now" report
        # (a budget-stopped agent resumed with a raised cap) searches again.
        state.report_from = len(state.messages) if state.plan_index == len(self.plan) - 1 else None
        if self._writing_report:  # the report cites the agent's sources by number
            prompt = numbered.with_sources(prompt, state.messages, state.listing_room)
        self._append_user(prompt)
        state.plan_index += 1
        state.continuations = 0
        state.cut = False
        state.tools = None  # chosen by the first call's reservation, then kept for continuations

    def _absorb(self, result: CallResult) -> AgentStatus | None:
        """Fold a completed call into the conversation; a status when the agent is done."""
        state = self.state
        state.messages.append({"role": "assistant", "content": result.content})
        stop = result.stop_reason
        if stop == "pause_turn":
            state.continuations += 1
            searches = self.control.row.searches
            searches_left = self.agent.max_searches is None or searches < self.agent.max_searches
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
            state.cut = True  # no continuation left: the answer stays cut (a report says so)
            return None
        state.pending = None
        if stop == "refusal":
            return AgentStatus.REFUSED
        if stop == "model_context_window_exceeded":
            # The answer is valid but the window is full: no further turn can fit. Keep it.
            return AgentStatus.COMPLETED
        if stop not in ("end_turn", "stop_sequence", "tool_use"):
            self.context.publish(StopReasonUnhandled, turn=self.control.row.turn, stop_reason=str(stop))
        return None

    # --- one API call, budgeted and retried -------------------------------------------------

    def request_params(self) -> dict[str, Any]:
        """The request for the next call; its ``tools`` are settled by :meth:`_reserve`."""
        return request_params(self.agent, self.config.defaults, self._turn())

    def _turn(self) -> Turn:
        state = self.state
        return Turn(state.messages, self.control.row.searches, state.tools, self._writing_report)

    @property
    def _writing_report(self) -> bool:
        return writing_report(self.state.report_from, len(self.plan))

    async def _history_bound(self) -> int:
        """Tokens of the system prompt and messages, at most: kept up to date from each call's
        usage; measured (bytes, or the API's count when that is much tighter) when unknown."""
        state = self.state
        if state.input_bound is None:
            system = self.config.defaults.system_prompt
            wire = wire_messages(state.messages)
            bound = conversation_bound(system, state.messages)
            state.input_bound = await counted_bound(self.transport, self.agent.model, system, wire, bound)
            self._measured = state.input_bound
        return state.input_bound

    def _bound_is_loose(self) -> bool:
        """Whether the history's bound grew by much since it was last measured: each search adds
        its whole allowance for results (``SEARCH_INPUT_TOKENS``), usually far more than it did."""
        bound = self.state.input_bound
        return bound is not None and bound - (self._measured or 0) >= COUNT_WORTH_ASKING

    async def _counted_history(self) -> int:
        """The history's bound, tightened by the API's free count when its rate limit allows
        (:func:`core.budget.bounds.counted_bound`); never looser than it was."""
        state = self.state
        assert state.input_bound is not None
        system = self.config.defaults.system_prompt
        wire = wire_messages(state.messages)
        counted = await counted_bound(self.transport, self.agent.model, system, wire, state.input_bound)
        state.input_bound = self._measured = min(state.input_bound, counted)
        return state.input_bound

    def _append_user(self, text: str) -> None:
        message = user_message(text)
        if self.state.input_bound is not None:
            self.state.input_bound += utf8_bytes(message)
        self.state.messages.append(message)

    def _pop_user(self) -> None:
        self.state.pop_user()

    def _report_prompt(self, most_searches: int) -> tuple[int, tuple[int, ...], int]:
        """What the report's prompt (the plan's report turn, or "write it now") may add: its
        tokens as it would be written now, the numbered sources listed exactly (text we build,
        bounded by its bytes); what the list may grow by for each number of searches a call is
        granted, up to ``most_searches``; and the list's own bytes now."""
        listing, count = numbered.listing_bytes(self.state.messages, self._sources)
        prompts = (self.plan[-1], REPORT_NOW_PROMPT)
        now = max(utf8_bytes(user_message(p)) for p in prompts) + listing + SEAM_TOKENS
        return now, tuple(numbered.growth(count, s) for s in range(most_searches + 1)), listing

    async def _reserve(self, base: dict[str, Any]) -> tuple[Reservation, int, dict[str, Any]]:
        """Hold the call's worst case (waiting for room while others' calls hold it); return it
        with the call's input bound and the request as granted.

        The search allowance asked for is the turn's ``max_uses``, no more than the agent has left;
        the ledger may shrink it and ``max_tokens`` to fit (:mod:`core.budget.sizing`), and the
        request then carries exactly what was granted (:func:`core.engine.request.granted`). A
        continuation resends the turn's tool with the allowance granted to it.
        """
        defaults = self.config.defaults
        ask = search_ask(base, self.agent, defaults, self._turn())
        tools = tools_bound(ask.tools or ask.restricted)
        report = self._writing_report
        report_prompt, growth, listing = self._report_prompt(ask.wanted) if not report else (0, (), 0)
        state = self.state
        # Last resorts, for the last agent running only (core.engine.request.call_request): a call
        # without the cache pays full price for a prompt it could have read at a tenth, and a
        # turn without a search researches nothing, so neither may take what another agent could
        # still use; searchless once in a row, once the agent has searched, never for a paused turn.
        last = self.last_running()
        searchless = (
            last and state.pending != "pause_turn" and self.control.row.searches > 0 and not state.searchless
        )

        def asking(call_input: int) -> CallRequest:
            return call_request(
                self.agent,
                defaults,
                ask,
                input_tokens=call_input,
                report=report,
                report_prompt_tokens=report_prompt,
                report_growth=growth,
                searchless=searchless,
                uncached=last,
            )

        call_input = await self._history_bound() + tools
        request = asking(call_input)
        if self._bound_is_loose() and self.ledger.shrinks(request):
            tighter = (
                await self._counted_history() + tools
            )  # the cap binds: a tighter bound buys a larger call
            if tighter < call_input:
                call_input, request = tighter, asking(tighter)
        reservation = await self._acquire(request)
        if not report:  # the report's list stays within what this call's report hold holds
            state.listing_room = listing + growth[min(reservation.max_searches, len(growth) - 1)]
        if state.tools is None:
            state.tools = ask.tools[:1]  # the turn's tool: its continuations resend it
        self._searchless_grant = not report and ask.wanted > 0 and reservation.max_searches == 0
        cached = reservation.cache_write == request.cache_write  # else granted without the cache
        params = granted(base, ask, reservation.max_searches, reservation.max_tokens, cached=cached)
        return reservation, call_input, params

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
        reservation, call_input, params = await self._reserve(base)

        async def again() -> Reservation:
            """A retry's reservation: the same request, its searches as the agent has them left."""
            nonlocal params
            retry, _, params = await self._reserve(base)
            return retry

        turn = self.control.row.turn + 1
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
        self.state.searchless = self._searchless_grant
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

        async def create(progress: AttemptProgress) -> CallResult:
            progress.sent = True
            return await self.transport.create(params)

        result, cost = await self._retried(
            await self._acquire(request),
            lambda: self._acquire(request),
            create,
            lambda result: result.usage,
            self.control.row.turn,
        )
        usage = result.usage
        texts = (block.get("text", "") for block in result.content if block.get("type") == "text")
        summary = "".join(str(text) for text in texts)
        summary += carried_sources_note(state.messages[1 : plan.keep_from])  # the report still lists them
        dropped = plan.keep_from - 1
        state.messages = compacted(state.messages, plan, summary)
        state.input_bound = None  # measured again from the compacted conversation
        if state.report_from is not None:
            state.report_from = max(2, state.report_from - dropped + 1)
        self.context.publish(
            ContextCompacted,
            turn=self.control.row.turn,
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
            await self.control.before_call()
            if self.write_ahead is not None and budget.reservation is not None:
                await self.write_ahead(self.agent.id, self._in_flight(budget.reservation))
                self._ahead = True

        async def attempt(progress: AttemptProgress) -> T:
            try:
                return await budget.run(call, progress)
            except BaseException:
                if budget.released:
                    await self._released_ahead()
                raise

        try:
            result = await call_with_retries(
                attempt,
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

    async def _released_ahead(self) -> None:
        """The attempt written ahead failed billed nothing (never sent, or refused by the API before
        it ran): its entry says so, so that a resume after a crash during the retry's wait does not
        charge its worst case. Should that write fail, the entry stays: a bound, never too low."""
        written, self._ahead = self._ahead, False
        if not written or self.release_ahead is None:
            return
        try:
            await self.release_ahead(self.agent.id)
        except (OSError, DiskError) as error:
            agent = self.agent.id
            log.warning("in-flight record of %s not marked released (%s): a resume charges it", agent, error)

    def _in_flight(self, reservation: Reservation) -> dict[str, Any]:
        """The write-ahead entry of an attempt about to be sent: its worst case at the prices it is
        sent at (the config may not price its model when the run resumes), the agent's spend so
        far, and how many of the agent's reservations the ledger had closed and when (a resume
        finds it unclosed if neither a checkpoint nor the journal saw it end)."""
        worst = self.ledger.worst_usage(reservation)
        return {
            "closed_before": self.ledger.closed(self.agent.id),
            "spent_before": self.ledger.agent_usage(self.agent.id)[1],
            "written_at": time.time(),
            "layer": self.agent.layer,
            "model": reservation.model,
            "prices": self.ledger.prices.rates(reservation.model, worst),
            "turn": self.control.row.turn + 1,
            "worst_usage": worst.to_dict(),
            # sent in a Message Batch (a resume reads core.persistence.batchlog to know whether it was)
            "batched": self.agent.batched and reservation.purpose != "compaction",
        }

    async def _attempt(self, params: dict[str, Any], turn: int, progress: AttemptProgress) -> CallResult:
        result = await send_threaded(
            self.thread,
            params,
            lambda request: stream_call(self.transport, request, self.context, turn, progress),
        )
        self.gate.observe_headers(result.headers)
        return result

    def _charged(
        self, charge: Charge, cost: float, outcome: Outcome, progress: AttemptProgress, turn: int
    ) -> None:
        """A failed attempt's charge counts as the agent's spend, like a completed turn's."""
        if charge.basis == "none":
            return
        self.unsaved_charge = True
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
        self.control.call_failed()
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
            turn=self.control.row.turn,
            cap=exhausted.cap,
            message=str(exhausted),
            reason=exhausted.reason,
        )
        if state.pending == "max_tokens" and state.messages and state.messages[-1]["role"] == "user":
            self._pop_user()  # the "continue" prompt that could not be sent
        else:
            state.unsend_prompt()  # the prompt that could not be sent: a resume sends it again
        state.pending = None  # a paused turn's dangling search is dropped on the wire
        if state.report_from is None:
            # Resumed after a budget stop had it write its report, it could not research again
            # (the cap was not raised): that report stands, it is not rewritten as a partial one.
            state.report_from = state.ends_with_report()
        if state.report_from is not None:
            # The report turn had begun: what it wrote is the report, cut short.
            written = any(m["role"] == "assistant" for m in state.messages[state.report_from :])
            return self._finish(AgentStatus.BUDGET_EXHAUSTED, partial=not written)
        wrote_report = False
        if state.messages:
            state.report_from = len(state.messages)
            state.tools = None
            state.cut = False
            self._append_user(numbered.with_sources(REPORT_NOW_PROMPT, state.messages, state.listing_room))
            try:
                result = await self._call()
            except BudgetExhausted:
                self._pop_user()
                state.report_from = None
            else:
                state.messages.append({"role": "assistant", "content": result.content})
                wrote_report = True
                await self._checkpoint(state, AgentStatus.BUDGET_EXHAUSTED)
        return self._finish(AgentStatus.BUDGET_EXHAUSTED, partial=not wrote_report)

    def _finish(self, status: AgentStatus, *, partial: bool = False) -> SessionResult:
        return SessionResult(status=status, report=self.report(partial=partial), state=self.state)

    def killed(self) -> SessionResult:
        """The result of a session whose task was cancelled by a kill: what it wrote is kept."""
        return self._finish(AgentStatus.KILLED, partial=True)

    def fail(self, info: ErrorInfo) -> SessionResult:
        if self.control.row.turn == 0:
            info = first_call_refusal(info)
        self.context.publish(
            ApiErrorRaised,
            turn=self.control.row.turn,
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
        elif state.cut:
            note = (
                "Partial: the report was cut at the output limit "
                f"(max_tokens {self.agent.max_tokens}) with no continuation left; it ends where it was cut."
            )
        agent, row = self.agent, self.control.row
        meta = AgentMeta(
            id=agent.id, title=agent.title, layer=agent.layer, model=agent.model,
            turns=row.turn, searches=row.searches, cost_usd=row.cost_usd, unconfirmed=row.unconfirmed,
        )  # fmt: skip
        return build_report(
            agent=meta,
            messages=messages,
            body_messages=messages[start:] if use_report_turn else messages,
            partial_note=note,
            prior=self.prior_sources,
        )


def _asks_report_now(message: dict[str, Any]) -> bool:
    """Whether ``message`` is a budget stop's "write it now" prompt (followed by its numbered sources)."""
    return _text(message).startswith(REPORT_NOW_PROMPT)


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "".join(str(b.get("text", "")) for b in content or [] if isinstance(b, dict))
