"""Whether a run exports telemetry, and where: from ``--otel`` / ``--metrics-port`` and the standard
``OTEL_*`` environment. Loads no OpenTelemetry package (commands that send nothing stay light)."""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from core.errors import UserError

log = logging.getLogger(__name__)

#: Variables that ask for OpenTelemetry export by themselves (the SDK's own names).
EXPORT_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
)
#: The modules of the ``otel`` extra, checked (not imported) before a run is assembled.
EXTRA_MODULES = ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http", "prometheus_client")
INSTALL_HINT = "pip install 'research-orchestrator[otel]'"
DEFAULT_METRICS_HOST = "127.0.0.1"


#: The modules of core.telemetry that import the extra's packages (the others import only what
#: the Anthropic SDK brings): importable only where the extra is installed.
NEEDS_EXTRA = ("core.telemetry.run", "core.telemetry.prometheus")


class TelemetryUnavailable(UserError):
    """Telemetry was asked for on the command line but the ``otel`` extra is not installed."""


class MetricsPortUnavailable(UserError):
    """The Prometheus endpoint cannot listen where it was told to."""


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    """``otel``: export traces and metrics over OTLP (or as ``OTEL_*_EXPORTER`` says);
    ``metrics_port``: serve Prometheus metrics on ``metrics_host``."""

    otel: bool = False
    metrics_port: int | None = None
    metrics_host: str = DEFAULT_METRICS_HOST

    @property
    def enabled(self) -> bool:
        return self.otel or self.metrics_port is not None

    def to_args(self) -> list[str]:
        """The command-line flags that give these settings again (a detached owner's)."""
        args = ["--otel"] if self.otel else []
        if self.metrics_port is not None:
            args += ["--metrics-port", str(self.metrics_port)]
        return args


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def requested_by_environment(environ: Mapping[str, str]) -> bool:
    """The standard environment asks for export (and ``OTEL_SDK_DISABLED`` does not forbid it)."""
    if _truthy(environ.get("OTEL_SDK_DISABLED")):
        return False
    for name in EXPORT_VARIABLES:
        value = environ.get(name, "").strip()
        if value and not (name.endswith("_EXPORTER") and value.lower() == "none"):
            return True
    return False


def extra_installed() -> bool:
    try:
        return all(importlib.util.find_spec(name) is not None for name in EXTRA_MODULES)
    except ModuleNotFoundError:  # a parent package is missing
        return False


def resolve(
    *, otel: bool = False, metrics_port: int | None = None, environ: Mapping[str, str] | None = None
) -> TelemetrySettings | None:
    """The run's settings, or None when telemetry is off.

    Flags that ask for it without the extra installed are a user error naming the fix; the
    environment alone (an ``OTEL_*`` variable exported for other programs) only logs a warning.
    """
    env = os.environ if environ is None else environ
    if metrics_port is not None and not 0 <= metrics_port <= 65535:
        raise TelemetryUnavailable(
            f"--metrics-port {metrics_port} is not a TCP port: give 1 to 65535, or 0 for a free one"
        )
    settings = TelemetrySettings(otel=otel or requested_by_environment(env), metrics_port=metrics_port)
    if not settings.enabled:
        return None
    if not extra_installed():
        if otel or metrics_port is not None:
            flag = "--otel" if otel else "--metrics-port"
            raise TelemetryUnavailable(
                f"{flag} needs the OpenTelemetry extra, which is not installed: {INSTALL_HINT}"
            )
        log.warning(
            "OTEL_* variables are set but the otel extra is not installed (%s): no telemetry", INSTALL_HINT
        )
        return None
    return settings
