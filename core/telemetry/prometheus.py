"""A Prometheus scrape endpoint for the run's OpenTelemetry metrics (``--metrics-port``).

Each scrape collects the meter provider through an in-memory reader and translates what it holds
into Prometheus families (names with dots as underscores and the unit as a suffix; counters end in
``_total``), so the metrics are defined once (:mod:`core.telemetry.metrics`) for OTLP and Prometheus.
The server is prometheus-client's, on its own thread, bound to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    InMemoryMetricReader,
    Metric,
    MetricsData,
    Sum,
)
from opentelemetry.util.types import Attributes
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric as PromMetric
from prometheus_client.registry import Collector

from core.telemetry.settings import MetricsPortUnavailable

_UNITS = {"USD": "usd", "s": "seconds", "{token}/s": "tokens_per_second"}
_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def prometheus_name(name: str, unit: str) -> str:
    """``research_orchestrator.cost.billed`` in USD → ``research_orchestrator_cost_billed_usd``."""
    base = _INVALID.sub("_", name)
    suffix = _UNITS.get(unit, "")
    return f"{base}_{suffix}" if suffix and not base.endswith(suffix) else base


def _label(key: str) -> str:
    return _INVALID.sub("_", key)


class OtelCollector(Collector):
    """A prometheus-client collector that reads the OpenTelemetry metrics at each scrape; once its
    run has ended (:meth:`freeze`), the run's last values."""

    def __init__(self, reader: InMemoryMetricReader) -> None:
        self._reader = reader
        self._final: MetricsData | None = None
        self._frozen = False

    def freeze(self) -> None:
        """Keep the values as they are now: the meter provider is about to shut down."""
        self._final = self._reader.get_metrics_data()
        self._frozen = True

    def collect(self) -> Iterator[PromMetric]:
        data = self._final if self._frozen else self._reader.get_metrics_data()
        if data is None:
            return
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    family = _family(metric)
                    if family is not None:
                        yield family


def _family(metric: Metric) -> PromMetric | None:
    name = prometheus_name(metric.name, metric.unit or "")
    description = metric.description or name
    data = metric.data
    keys = sorted({_label(k) for point in data.data_points for k in (point.attributes or {})})

    def values(attributes: Attributes) -> list[str]:
        labelled = {_label(k): str(v) for k, v in (attributes or {}).items()}
        return [labelled.get(k, "") for k in keys]

    if isinstance(data, Sum) and data.is_monotonic:
        counter = CounterMetricFamily(name, description, labels=keys)
        for point in data.data_points:
            counter.add_metric(values(point.attributes), float(point.value))
        return counter
    if isinstance(data, Sum | Gauge):
        gauge = GaugeMetricFamily(name, description, labels=keys)
        for point in data.data_points:
            gauge.add_metric(values(point.attributes), float(point.value))
        return gauge
    if isinstance(data, Histogram):
        histogram = HistogramMetricFamily(name, description, labels=keys)
        for hp in data.data_points:
            cumulative, buckets = 0, []
            for bound, count in zip((*hp.explicit_bounds, float("inf")), hp.bucket_counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), float(cumulative)))
            histogram.add_metric(values(hp.attributes), buckets, float(hp.sum))
        return histogram
    return None


class _Current(Collector):
    """The registry's one collector: the latest run's (a process may run several, one after another)."""

    def __init__(self) -> None:
        self.collector: OtelCollector | None = None

    def collect(self) -> Iterator[PromMetric]:
        collector = self.collector
        return collector.collect() if collector is not None else iter(())


class PrometheusEndpoint:
    """The scrape endpoint, ``http://HOST:PORT/metrics``: one per address for the process's life,
    so the last run's final values stay scrapeable after it ends (while the app stays open)."""

    def __init__(self, host: str, port: int) -> None:
        self._current = _Current()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self._current)
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as error:
            raise MetricsPortUnavailable(
                f"the metrics endpoint cannot listen on {host} port {port} ({error.strerror or error}); "
                "pick another --metrics-port (0 picks a free one)"
            ) from None
        self.host = host
        self.port: int = self._server.server_port

    def show(self, collector: OtelCollector) -> None:
        self._current.collector = collector

    def close(self) -> None:
        """Stop serving (blocks until the serving thread has ended: call it off the event loop)."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


_endpoints: dict[tuple[str, int], PrometheusEndpoint] = {}
_lock = threading.Lock()


def serve_metrics(collector: OtelCollector, host: str, port: int) -> PrometheusEndpoint:
    """Show ``collector`` on the process's endpoint at ``host``:``port``, started on first use."""
    with _lock:
        endpoint = _endpoints.get((host, port)) if port else None
        if endpoint is None:
            endpoint = PrometheusEndpoint(host, port)
            _endpoints[(host, port or endpoint.port)] = endpoint
        endpoint.show(collector)
        return endpoint


def close_endpoints() -> None:
    """Stop every endpoint of this process (tests; a process that ends needs not)."""
    with _lock:
        endpoints = list(_endpoints.values())
        _endpoints.clear()
    for endpoint in endpoints:
        endpoint.close()
