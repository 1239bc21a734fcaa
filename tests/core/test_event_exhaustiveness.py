"""A new event kind that a consumer does not handle fails the type check (mypy strict).

``core.events.Event`` is a closed union, and every consumer of events dispatches on it with a
``match`` that ends in ``assert_never``. Here a copy of ``core/events.py`` with one more kind in
the union stands in for the real module (mypy's ``--shadow-file``, nothing on disk is changed),
and mypy must then report that kind at the ``assert_never`` of every consumer: the build fails
until each of them decides what the new kind means for it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "core" / "events.py"

CONSUMERS = (
    "core/lifecycle.py",  # an agent's row
    "core/view.py",  # the run's view (and summary.json)
    "core/headless.py",  # the headless display
    "core/remote/live.py",  # what an attached app is sent
    "core/persistence/journal.py",  # events.jsonl
    "tui/bridge.py",  # the terminal app
)
UNION = "Event: TypeAlias = (\n"
PROBE = """@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeReceived(EventBase):
    kind: Literal["probe_received"] = field(default="probe_received", init=False)


"""

pytestmark = pytest.mark.timeout(180)


def mypy(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(cache), "--no-error-summary", *args, *CONSUMERS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_an_event_kind_no_consumer_handles_fails_mypy_at_every_consumer(tmp_path: Path) -> None:
    source = EVENTS.read_text(encoding="utf-8")
    assert source.count(UNION) == 1, "the union of event kinds is where this test expects it"
    shadow = tmp_path / "events.py"
    shadow.write_text(source.replace(UNION, f"{PROBE}{UNION}    ProbeReceived\n    | "), encoding="utf-8")

    unchanged = mypy(tmp_path / "cache")
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr

    result = mypy(tmp_path / "cache", "--shadow-file", str(EVENTS), str(shadow))
    assert result.returncode == 1, result.stdout + result.stderr
    unhandled = re.compile(
        r'^(\S+?):\d+: error: Argument 1 to "assert_never" has incompatible type "ProbeReceived"'
    )
    failing = {m.group(1) for line in result.stdout.splitlines() if (m := unhandled.match(line))}
    assert failing == set(CONSUMERS), result.stdout
    others = [
        line for line in result.stdout.splitlines() if ": error:" in line and "ProbeReceived" not in line
    ]
    assert others == [], "the probe itself must type-check: only its being unhandled may fail"
