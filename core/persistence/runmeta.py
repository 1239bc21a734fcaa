"""``run.json``: where a run runs (the simulator, or the API at a base URL), fixed at creation.

Resuming a simulated run must never turn into paid API calls because a summary went missing,
and an API run must not quietly move to another gateway because ``ANTHROPIC_BASE_URL`` changed.
So the endpoint is a fact of the run, kept in its own file; the key never is.
"""

from __future__ import annotations

import re
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ResearchOrchestratorError, UserError
from core.persistence.atomic import DiskError, read_regular
from core.persistence.jsontext import parse_json
from core.persistence.rundir import RunDir
from core.safe_text import printable

FORMAT = 1
DEFAULT_API_URL = "https://api.anthropic.com"
_MAX_BYTES = 64 * 1024


class RunMetadataError(ResearchOrchestratorError):
    """``run.json`` is missing or unreadable: the run's endpoint is unknown."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Simulated or not, and the base URL (None for the in-process simulator)."""

    simulated: bool
    base_url: str | None = None

    def describe(self) -> str:
        if self.simulated:
            return f"the simulator at {self.base_url}" if self.base_url else "the built-in simulator"
        return f"the Anthropic API at {self.base_url or DEFAULT_API_URL}"


class BaseUrlError(UserError, ValueError):
    """A base URL (``ANTHROPIC_BASE_URL``) that cannot be parsed: a user error, said before any run exists."""


def public_url(url: str | None) -> str | None:
    """``url`` without credentials, query or fragment: what may be written to disk.

    Raises :class:`BaseUrlError` for anything but an ``http(s)://host`` URL: the SDK could send no
    request to it, and each attempt would still be charged as a bound.
    """
    if not url:
        return None
    try:
        parts = urllib.parse.urlsplit(url.strip())
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        if parts.scheme not in ("http", "https") or not host:
            raise ValueError("it needs http:// or https:// and a host")
    except ValueError as exc:  # also "Invalid IPv6 URL", "Port out of range 0-65535"...
        shown = re.split(r"[?#]", re.sub(r"//[^/@]*@", "//…@", url), maxsplit=1)[0]  # no secrets shown
        raise BaseUrlError(
            f"the API base URL {printable(repr(shown))} is not a URL ({exc}); set ANTHROPIC_BASE_URL to "
            f"the API's address (such as {DEFAULT_API_URL}), or unset it"
        ) from None
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def endpoint_record(endpoint: Endpoint) -> dict[str, Any]:
    """The content of ``run.json`` for ``endpoint`` (see :meth:`RunDir.create`)."""
    return {
        "format": FORMAT,
        "simulated": endpoint.simulated,
        "base_url": public_url(endpoint.base_url),
        "written_at": time.time(),
    }


def write_endpoint(run: RunDir, endpoint: Endpoint) -> None:
    """Record an explicit switch of endpoint, for later resumes."""
    run.write_metadata(endpoint_record(endpoint))


def read_endpoint(run: RunDir) -> Endpoint:
    """The endpoint recorded at creation, or :class:`RunMetadataError` naming the file and the fix."""
    path = run.metadata_path
    fix = (
        f"say where it should run: `research-orchestrator resume {printable(run.run_id)} --simulate` "
        "(the offline simulator) or `--api` (the real, paid API, as ANTHROPIC_BASE_URL says)"
    )
    try:
        record = parse_json(read_regular(path, limit=_MAX_BYTES, kind="run metadata"))
    except FileNotFoundError:
        raise RunMetadataError(
            f"{_shown(path)} is missing, so it is unknown where this run ran; {fix}"
        ) from None
    except DiskError as exc:  # a link or a device: refused, whatever it points to
        raise RunMetadataError(f"{exc.message}; {fix}") from None
    except (OSError, ValueError, RecursionError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise RunMetadataError(f"{_shown(path)} cannot be read ({reason}); {fix}") from None
    simulated = record.get("simulated") if isinstance(record, dict) else None
    base_url = record.get("base_url") if isinstance(record, dict) else None
    if not isinstance(simulated, bool) or not (base_url is None or isinstance(base_url, str)):
        raise RunMetadataError(f"{_shown(path)} is damaged (no valid 'simulated' / 'base_url'); {fix}")
    return Endpoint(simulated, base_url)


def _shown(path: Path) -> str:
    return printable(str(path))
