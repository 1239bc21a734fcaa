"""One run's telemetry: the providers and exporters, the event subscriber, the end-of-run flush.

Built by the composition root (core/runner.py) only when telemetry is enabled
(:mod:`core.telemetry.settings`); importing this module loads OpenTelemetry. Exporters follow the
standard environment: ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` (``otlp``, the default,
over HTTP/protobuf; ``console``; ``none``), ``OTEL_EXPORTER_OTLP_ENDPOINT`` and the rest of the
exporter's own variables, ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``. Spans go through a
:class:`BatchSpanProcessor`, flushed when the run ends so that nothing is lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import assert_never

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    InMemoryMetricReader,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanContext

from core import correlation
from core import events as ev
from core.persistence.atomic import DiskError, read_regular, write_atomic_async
from core.telemetry.metrics import RunMetrics
from core.telemetry.prometheus import OtelCollector, PrometheusEndpoint, serve_metrics
from core.telemetry.settings import TelemetrySettings
from core.telemetry.spans import AgentFacts, TraceBuilder, context_ids, saved_context

log = logging.getLogger(__name__)
TRACE_FILE = "trace.json"
SCOPE = "research_orchestrator"


def _exporter_name(variable: str) -> str:
    return (os.environ.get(variable) or "otlp").split(",")[0].strip().lower()


def _span_exporter() -> SpanExporter | None:
    name = _exporter_name("OTEL_TRACES_EXPORTER")
    if name == "none":
        return None
    if name == "console":
        return ConsoleSpanExporter()
    if name != "otlp":
        log.warning("OTEL_TRACES_EXPORTER=%s is not supported here (otlp, console, none): using otlp", name)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _metric_reader() -> MetricReader | None:
    name = _exporter_name("OTEL_METRICS_EXPORTER")
    if name == "none":
        return None
    if name == "console":
        return PeriodicExportingMetricReader(ConsoleMetricExporter())
    if name != "otlp":
        log.warning("OTEL_METRICS_EXPORTER=%s is not supported here (otlp, console, none): using otlp", name)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return PeriodicExportingMetricReader(OTLPMetricExporter())


def read_trace_parent(run_dir: Path) -> SpanContext | None:
    """The first run's span saved in ``run_dir`` (None for a new run, or a file that is not ours)."""
    try:
        saved = json.loads(read_regular(run_dir / TRACE_FILE, limit=4096, kind="trace ids"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, DiskError) as error:
        log.warning("%s unreadable (%s): the resumed run starts a new trace", TRACE_FILE, error)
        return None
    if not isinstance(saved, dict):
        return None
    return saved_context(str(saved.get("trace_id", "")), str(saved.get("span_id", "")))


class RunTelemetry:
    """Subscribes to a run's events; :meth:`close` flushes what is buffered and stops the exporters."""

    def __init__(
        self,
        settings: TelemetrySettings,
        agents: Mapping[str, AgentFacts],
        run_dir: Path,
        parent: SpanContext | None = None,
    ) -> None:
        resource = Resource.create(
            {"service.name": os.environ.get("OTEL_SERVICE_NAME") or "research-orchestrator"}
        )
        self._tracer_provider: TracerProvider | None = None
        readers: list[MetricReader] = []
        self._collector: OtelCollector | None = None
        self.endpoint: PrometheusEndpoint | None = None
        if settings.otel:
            exporter = _span_exporter()
            if exporter is not None:
                self._tracer_provider = TracerProvider(resource=resource)
                self._tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
            reader = _metric_reader()
            if reader is not None:
                readers.append(reader)
        if settings.metrics_port is not None:
            memory = InMemoryMetricReader()
            readers.append(memory)
            self._collector = OtelCollector(memory)
        self._meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        self.metrics = RunMetrics(self._meter_provider.get_meter(SCOPE))
        self._settings = settings
        self._run_dir = run_dir
        self._parent = parent
        self.traces: TraceBuilder | None = None
        if self._tracer_provider is not None:
            self.traces = TraceBuilder(self._tracer_provider.get_tracer(SCOPE), agents, parent)
        self._saving: asyncio.Task[None] | None = None

    def serve(self) -> None:
        """Start (or reuse) the Prometheus endpoint; a port that cannot be bound is a user error."""
        if self._collector is not None and self._settings.metrics_port is not None:
            try:
                self.endpoint = serve_metrics(
                    self._collector, self._settings.metrics_host, self._settings.metrics_port
                )
            except BaseException:
                self._shutdown()
                raise

    def handle(self, event: ev.Event) -> None:
        """A synchronous listener of the bus: it only records in memory (the exporters send from
        their own threads), so it is cheaper inline than as a queue of its own, event after event."""
        if isinstance(event, ev.TextStreamed):  # the hot path: nothing of it is counted
            return
        self.metrics.handle(event)
        traces = self.traces
        match event:
            case ev.RunStarted():
                self._run_started(event)
            case ev.LayerStarted():
                if traces is not None:
                    traces.layer_started(event)
            case ev.LayerFinished():
                if traces is not None:
                    traces.layer_finished(event)
            case ev.RunFinished():
                if traces is not None:
                    traces.run_finished(event)
            case ev.AgentStarted():
                if traces is not None:
                    traces.agent_started(event)
            case ev.BatchSubmitted():
                if traces is not None:
                    traces.batch_submitted(event)
            case ev.BatchProgress():
                if traces is not None:
                    traces.batch_progress(event)
            case ev.BatchEnded():
                if traces is not None:
                    traces.batch_ended(event)
            case (
                ev.AttemptCharged()
                | ev.RetryScheduled()
                | ev.TurnCompleted()
                | ev.ContextCompacted()
                | ev.AgentBudgetWaitStarted()
                | ev.AgentBudgetWaitEnded()
                | ev.AgentPaused()
                | ev.AgentResumed()
                | ev.BudgetCapReached()
                | ev.ApiErrorRaised()
                | ev.AgentFinished()
                | ev.AgentFailed()
                | ev.AgentKilled()
                | ev.AgentInterrupted()
            ):
                if traces is not None:
                    traces.agent_event(event)
            case (
                ev.TextStreamed()
                | ev.AttemptAbandoned()
                | ev.SearchIssued()
                | ev.SearchResultsReceived()
                | ev.CitationReceived()
                | ev.AgentPausing()
                | ev.AgentSkipped()
                | ev.StopReasonUnhandled()
                | ev.BudgetUpdated()
                | ev.CheckpointSaved()
                | ev.DiskErrorRaised()
                | ev.SubscriberFailed()
                | ev.IncidentsRecalled()
                | ev.RunStopping()
                | ev.AgentBatched()
            ):
                pass  # counted by the metrics (a skipped agent never started: no span), or not traced
            case _:
                assert_never(event)

    def _run_started(self, event: ev.RunStarted) -> None:
        if self.endpoint is not None:  # logged once the run logs (run.log is opened after assembly)
            log.info("metrics served at http://%s:%d/metrics", self.endpoint.host, self.endpoint.port)
        if self.traces is None:
            return
        span = self.traces.run_started(event)
        trace_id, span_id = context_ids(span)
        correlation.trace_ids.update(trace=trace_id, span=span_id)  # log records name them from here on
        if self._parent is None:  # the first run of this directory: its span is what resumes continue
            record = (json.dumps({"trace_id": trace_id, "span_id": span_id}) + "\n").encode()
            self._saving = asyncio.get_running_loop().create_task(self._save(record))

    async def _save(self, record: bytes) -> None:
        try:
            await write_atomic_async(self._run_dir / TRACE_FILE, record)
        except (OSError, DiskError) as error:
            log.warning("could not save the trace id (%s): a resume will start a new trace", error)

    async def close(self) -> None:
        """Export what is buffered and stop the exporters (in a thread: exporting sends over HTTP)."""
        if self._saving is not None:
            await self._saving
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        correlation.trace_ids.clear()
        if self._tracer_provider is not None:
            self._tracer_provider.force_flush()
            self._tracer_provider.shutdown()
        if self._collector is not None:
            self._collector.freeze()
        self._meter_provider.force_flush()
        self._meter_provider.shutdown()
