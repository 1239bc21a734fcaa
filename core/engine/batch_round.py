"""A batch layer's rounds: every ready agent's next request in one Message Batch, polled to its end.

A batch layer (``mode: batch``, see ``docs/ARCHITECTURE.md``, "Batch layers") runs the same sessions
as a streamed one; only the transport differs. Each agent's session sends through a
:class:`BatchedTransport`, whose ``stream`` hands the request to the layer's :class:`BatchRound`
and, once the batch has ended, replays the request's result as the events a streamed call yields
(:func:`core.api.batches.result_events`). So reserving, writing ahead, settling from the result's
usage, ``pause_turn`` continuations (the next round), retries of errored results (by the stream
mode's rules), compaction and checkpoints are the session's own, unchanged.

A round goes out when every agent of the layer that is at work has its request in (or, when some
are not ready, a moment after the last one came): one batch, its ``custom_id`` s written ahead
(:class:`~core.persistence.batchlog.BatchLog`) before it is created and its id right after. A
request whose ``custom_id`` the log already holds (a resumed run) is not sent again: its agent
waits for that batch and takes its result. Results are polled with backoff.

Cancellation: a stop leaves the batch running (the attempt is charged nothing now, its result is
collected by the resume, and the recovery charges no worst case for it); a kill or a stop ``now``
cancels the batch's requests that have not started (``batches.cancel``: the whole batch, so the
other agents' canceled requests go into the next round). A request that expired is sent once more,
then fails its agent with a clear message.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from core.api.batches import CUSTOM_ID, BatchClient, BatchResult, errored, result_events
from core.api.retry import RequestGate, classify
from core.api.streaming import AgentContext
from core.api.transport import (
    ApiStatus,
    BatchHold,
    CallResult,
    Ending,
    StreamEvent,
    Transport,
    TransportError,
)
from core.events import AgentBatched, BatchEnded, BatchProgress, BatchSubmitted, Event
from core.persistence.batchlog import BatchLog, BatchRecords, BatchRequestRecord

log = logging.getLogger(__name__)

EXPIRED_MESSAGE = (
    "its request expired twice in a Message Batch (the API gives a batch 24 hours): the agent "
    "failed; resume the run to try again, or set mode: stream on its layer"
)
CANCEL_WAIT_S = 10.0  # how long a closing round lets a batch's cancel request finish
MAX_CANCELED_RESUBMITS = 3  # a request canceled by someone else's kill goes into the next round
WaitEnded = Literal["stop", "now", "kill"]
"""Why an agent stopped waiting for its batch: a clean stop, a stop now, a kill."""


@dataclass(frozen=True, slots=True)
class PollSchedule:
    """When a batch in progress is polled: ``first_s`` after it was created, then each wait
    ``factor`` times the last, up to ``max_s`` (a batch usually ends within the hour)."""

    first_s: float = 1.0
    factor: float = 1.5
    max_s: float = 60.0
    gather_s: float = 0.5  # how long a round waits after the last request came, when some agents are not in

    def after(self, wait: float) -> float:
        return min(self.max_s, wait * self.factor)


def custom_id_of(agent_id: str, turn: int, attempt: int) -> str:
    """The request's ``custom_id``: the agent, its turn and (from the second) the attempt, within
    the API's 64 characters (a long agent id is shortened with a hash of it, so ids stay unique)."""
    tail = f"-t{turn}" + (f"-a{attempt}" if attempt else "")
    name = agent_id
    if len(name) + len(tail) > 64:
        digest = hashlib.sha256(agent_id.encode()).hexdigest()[:8]
        name = f"{agent_id[: 64 - len(tail) - 9]}-{digest}"
    custom_id = name + tail
    assert CUSTOM_ID.match(custom_id), custom_id
    return custom_id


@dataclass(slots=True)
class _Queued:
    agent_id: str
    turn: int
    params: Mapping[str, Any]
    result: asyncio.Future[BatchResult]
    hold: BatchHold
    announce: Callable[[BatchHold], None]


@dataclass(slots=True)
class _Watch:
    """A batch being polled: the requests waiting for its results, and results nobody claimed yet."""

    batch_id: str
    started: float
    waiting: dict[str, asyncio.Future[BatchResult]] = field(default_factory=dict)
    unclaimed: dict[str, BatchResult] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    ended: bool = False
    cancelled: bool = False


class BatchRound:
    """One batch layer's rounds and the batches it polls (see the module docstring)."""

    def __init__(
        self,
        *,
        client: BatchClient,
        layer: int,
        run_id: str,
        publish: Callable[[Event], None],
        log: BatchLog | None = None,
        records: BatchRecords | None = None,
        schedule: PollSchedule | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        agents: Iterable[str] = (),
    ) -> None:
        """``agents``: the layer's agents at work (each :meth:`leave` s when it ends)."""
        self.client = client
        self.layer = layer
        self.run_id = run_id
        self.publish = publish
        self.log = log
        self.records = records or BatchRecords()
        self.schedule = schedule or PollSchedule()
        self.sleep = sleep
        self.clock = clock
        self._active: set[str] = set()  # agents of the layer at work
        self._waiting: set[str] = set()  # agents whose request is queued or in a batch
        self._queue: dict[str, _Queued] = {}
        self._creating: dict[str, _Queued] = {}  # the round whose batch is being created
        self._used: set[str] = set()  # custom_ids asked for by this process
        self._watches: dict[str, _Watch] = {}
        self._arrived = asyncio.Event()
        self._submitter: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._cancelling: set[asyncio.Task[None]] = set()
        self.submitted = 0  # requests this process put in batches (benchmarks)
        self._active.update(agents)
        # Its agents' attempts are paced apart from the streams' (each waits on a batch, not a slot).
        self.gate = RequestGate(max(1, len(self._active)))

    # --- the agents' side ------------------------------------------------------------------------

    def leave(self, agent_id: str) -> None:
        self._active.discard(agent_id)
        self._arrived.set()  # a round may have been waiting for it

    def transport(
        self,
        inner: Transport,
        context: AgentContext,
        turn_of: Callable[[], int],
        ending: Callable[[], WaitEnded],
    ) -> BatchedTransport:
        return BatchedTransport(self, inner, context, turn_of, ending)

    async def answer(
        self,
        agent_id: str,
        turn: int,
        params: Mapping[str, Any],
        hold: BatchHold,
        ending: Callable[[], WaitEnded],
        announce: Callable[[BatchHold], None],
    ) -> Mapping[str, Any]:
        """The message that answers ``params``, from this round's batch or one a previous process
        submitted; an errored result is raised as its status would be."""
        expired = canceled = 0
        while True:
            custom_id = self._next_id(agent_id, turn)
            hold.custom_id = custom_id
            result = await self._result(agent_id, turn, custom_id, params, hold, ending, announce)
            match result.type:
                case "succeeded" if result.message is not None:
                    return result.message
                case "errored":
                    raise errored(result.error, custom_id)
                case "expired" if expired == 0:
                    expired += 1
                case "canceled" if canceled < MAX_CANCELED_RESUBMITS:
                    canceled += 1
                case "expired":
                    raise TransportError(
                        Ending.STATUS, EXPIRED_MESSAGE,
                        ApiStatus(status_code=410, message=EXPIRED_MESSAGE, error_type="batch_expired"),
                    )  # fmt: skip
                case _:
                    message = f"batch request {custom_id} came back {result.type} {canceled + 1} times"
                    raise TransportError(Ending.STATUS, message, ApiStatus(status_code=410, message=message))

    def _next_id(self, agent_id: str, turn: int) -> str:
        attempt = 0
        while (custom_id := custom_id_of(agent_id, turn, attempt)) in self._used:
            attempt += 1
        self._used.add(custom_id)
        return custom_id

    async def _result(
        self,
        agent_id: str,
        turn: int,
        custom_id: str,
        params: Mapping[str, Any],
        hold: BatchHold,
        ending: Callable[[], WaitEnded],
        announce: Callable[[BatchHold], None],
    ) -> BatchResult:
        batch_id = self.records.batch_of.get(custom_id)
        self._waiting.add(agent_id)
        try:
            if batch_id is not None:  # submitted before the process ended: never again
                future = self._claim(batch_id, custom_id)
                hold.batch_id = batch_id
                announce(hold)
            else:
                future = asyncio.get_running_loop().create_future()
                self._queue[custom_id] = _Queued(agent_id, turn, params, future, hold, announce)
                self._arrived.set()
                self._start_submitter()
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                self._abandon(custom_id, hold, ending())
                raise
        finally:
            self._waiting.discard(agent_id)

    def _abandon(self, custom_id: str, hold: BatchHold, how: WaitEnded) -> None:
        """The agent stopped waiting: a queued request is never sent. One in a batch is left to run
        by a stop (the resume collects it); a stop now cancels its batch (the resume collects what
        finished and sends the canceled requests again); a kill cancels it and is charged as a
        stream's kill is (its result, if it finished, is never collected)."""
        queued = self._queue.pop(custom_id, None)
        if queued is not None:  # never sent: nothing to charge
            queued.result.cancel()
            hold.deferred = True
            return
        creating = self._creating.get(custom_id)
        if creating is not None:  # its batch is being created: it will be in the log, as below
            creating.result.cancel()
            hold.deferred = how != "kill"
            return
        watch = self._watches.get(hold.batch_id or "")
        if watch is None or watch.ended:
            return
        watch.waiting.pop(custom_id, None)
        hold.deferred = how != "kill"
        if how != "stop" and not watch.cancelled:
            watch.cancelled = True
            self._cancelling.add(self._spawn(self._cancel(watch)))

    # --- rounds -----------------------------------------------------------------------------------

    def _start_submitter(self) -> None:
        if self._submitter is None or self._submitter.done():
            self._submitter = self._spawn(self._rounds())

    async def _rounds(self) -> None:
        while self._queue:
            await self._gathered()
            round_, self._queue = self._queue, {}
            round_ = {cid: q for cid, q in round_.items() if not q.result.done()}
            if round_:
                await self._submit(round_)

    async def _gathered(self) -> None:
        """Until every agent at work is waiting (queued or in a batch), or ``gather_s`` went by
        without a new request."""
        while self._queue and not self._active <= self._waiting:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), self.schedule.gather_s)
            except TimeoutError:
                return

    async def _submit(self, round_: dict[str, _Queued]) -> None:
        token = uuid.uuid4().hex
        if self.log is not None:
            records = [BatchRequestRecord(cid, q.agent_id, q.turn) for cid, q in round_.items()]
            await self.log.submitting(token, self.layer, records, self.clock())
        self._creating = round_
        try:
            status = await self.client.create_batch([(cid, q.params) for cid, q in round_.items()])
        except Exception as error:  # every request of the round fails with it (the agents retry)
            for queued in round_.values():
                if not queued.result.done():
                    queued.result.set_exception(error)
            return
        finally:
            self._creating = {}
        if self.log is not None:
            await self.log.submitted(token, status.id)
        self.submitted += len(round_)
        watch = self._watch(status.id)
        for custom_id, queued in round_.items():
            self.records.batch_of[custom_id] = status.id
            if queued.result.done():  # its agent stopped while the batch was created
                continue
            watch.waiting[custom_id] = queued.result
            queued.hold.batch_id = status.id
            queued.announce(queued.hold)
        self._event(BatchSubmitted, batch_id=status.id, requests=len(round_), custom_ids=tuple(round_))

    # --- batches ----------------------------------------------------------------------------------

    def _watch(self, batch_id: str) -> _Watch:
        watch = self._watches.get(batch_id)
        if watch is None:
            watch = self._watches[batch_id] = _Watch(batch_id, self.clock())
            watch.task = self._spawn(self._poll(watch))
        return watch

    def _claim(self, batch_id: str, custom_id: str) -> asyncio.Future[BatchResult]:
        watch = self._watch(batch_id)
        future: asyncio.Future[BatchResult] = asyncio.get_running_loop().create_future()
        if custom_id in watch.unclaimed:
            future.set_result(watch.unclaimed.pop(custom_id))
        elif watch.ended:
            future.set_result(BatchResult(custom_id, "expired"))  # not in its results: send it again
        else:
            watch.waiting[custom_id] = future
        return future

    async def _poll(self, watch: _Watch) -> None:
        wait = self.schedule.first_s
        while True:
            await self.sleep(wait)
            try:
                status = await self.client.retrieve_batch(watch.batch_id)
            except Exception as error:
                if not self._transient(error, watch):
                    return
                wait = self.schedule.after(wait)
                continue
            elapsed = self.clock() - watch.started
            if status.ended:
                break
            wait = self.schedule.after(wait)
            self._event(
                BatchProgress, batch_id=watch.batch_id, processing_status=status.processing_status,
                request_counts=dict(status.request_counts), elapsed_s=elapsed, next_poll_s=wait,
            )  # fmt: skip
        while True:
            try:
                results = await self.client.batch_results(watch.batch_id)
                break
            except Exception as error:
                if not self._transient(error, watch):
                    return
                await self.sleep(self.schedule.first_s)
        watch.ended = True
        self._event(
            BatchEnded, batch_id=watch.batch_id, request_counts=dict(status.request_counts),
            elapsed_s=self.clock() - watch.started,
        )  # fmt: skip
        for result in results:
            future = watch.waiting.pop(result.custom_id, None)
            if future is None:
                watch.unclaimed[result.custom_id] = result
            elif not future.done():
                future.set_result(result)
        for custom_id, future in watch.waiting.items():  # no line for it: as good as expired
            if not future.done():
                future.set_result(BatchResult(custom_id, "expired"))
        watch.waiting.clear()

    def _transient(self, error: Exception, watch: _Watch) -> bool:
        """A poll that failed: wait and poll again if a retry can help; else its requests fail with it."""
        info = classify(error)
        if info is not None and info.retryable:
            log.warning("polling batch %s failed (%s): polling again", watch.batch_id, info.message)
            return True
        log.error("polling batch %s failed: %s", watch.batch_id, error)
        for future in watch.waiting.values():
            if not future.done():
                future.set_exception(error)
        watch.waiting.clear()
        return False

    async def _cancel(self, watch: _Watch) -> None:
        try:
            await self.client.cancel_batch(watch.batch_id)
        except Exception as error:  # the batch may have ended meanwhile: its results still come
            log.warning("cancelling batch %s failed: %s", watch.batch_id, error)

    def _event(self, event_type: type[BatchSubmitted | BatchProgress | BatchEnded], **fields: Any) -> None:
        self.publish(event_type(run_id=self.run_id, layer=self.layer, **fields))

    def _spawn(self, body: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(body)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Stop polling (the layer is over, or the run stops): batches left running stay so; a
        cancel a kill or a stop now asked for is let through first (for ``CANCEL_WAIT_S`` at most)."""
        if self._cancelling:
            await asyncio.wait(self._cancelling, timeout=CANCEL_WAIT_S)
        pending = [t for t in self._tasks if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)


class BatchedTransport:
    """A batch agent's :class:`~core.api.transport.Transport`: its calls go into the layer's
    rounds; an unstreamed call (a compaction's summary) and token counts go straight through."""

    def __init__(
        self,
        round_: BatchRound,
        inner: Transport,
        context: AgentContext,
        turn_of: Callable[[], int],
        ending: Callable[[], WaitEnded],
    ) -> None:
        self.round = round_
        self.inner = inner
        self.context = context
        self.turn_of = turn_of  # the agent's completed API turns
        self.ending = ending  # why the agent stopped waiting, when it did

    async def stream(self, request: Mapping[str, Any]) -> AsyncGenerator[StreamEvent, None]:
        hold = BatchHold()
        yield hold  # the attempt's progress holds it: a stop defers its charge to the resume
        turn = self.turn_of()
        message = await self.round.answer(
            self.context.agent_id,
            turn + 1,
            request,
            hold,
            self.ending,
            lambda held: self._announce(held, turn),
        )
        for event in result_events(message):
            yield event

    def _announce(self, hold: BatchHold, turn: int) -> None:
        self.context.publish(
            AgentBatched, turn=turn, batch_id=hold.batch_id or "", custom_id=hold.custom_id or ""
        )

    async def create(self, request: Mapping[str, Any]) -> CallResult:
        return await self.inner.create(request)

    async def count_tokens(self, request: Mapping[str, Any]) -> int:
        return await self.inner.count_tokens(request)

    async def close(self) -> None:
        """The inner transport is the run's: it closes it."""
