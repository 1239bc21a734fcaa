"""Telemetry: OpenTelemetry traces and metrics of a run, and a Prometheus scrape endpoint.

One more subscriber of the run's events (docs/ARCHITECTURE.md). Off by default and free when off:
only :mod:`core.telemetry.settings` is imported unless telemetry is enabled, and it loads neither
the OpenTelemetry SDK nor an exporter nor prometheus-client; the rest is imported by the composition
root (core/runner.py) when it is on. (The Anthropic SDK imports ``opentelemetry``'s API by itself.)
"""
