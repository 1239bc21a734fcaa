"""The app's only door to run directories, checkpoints, estimates and run factories in ``core``.

Screens call these functions (or a stand-in with the same shape in tests); when a core API
changes, only this module changes. A damaged or unreadable file gives an empty answer, never a
crash. The engine (and the SDK with it, over a second to import) loads only when a run starts.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from core.budget.pricing import PriceTable
from core.catalogue import RunEntry, list_runs
from core.config.loader import ConfigError, load_config
from core.control import RunControl
from core.estimate import Estimate, estimate
from core.persistence.atomic import DiskError, read_regular, read_tail
from core.persistence.checkpoints import (
    CheckpointCorrupt,
    CheckpointInfo,
    CheckpointNotFound,
    CheckpointStore,
)
from core.persistence.rundir import RunDir
from core.persistence.runmeta import RunMetadataError, read_endpoint

ControlFactory = Callable[[], Awaitable[RunControl]]


@dataclass(frozen=True, slots=True)
class Exchange:
    """The last user prompt and assistant reply held in a checkpoint (what "resume here" continues)."""

    prompt: str
    reply: str


class RunSource(Protocol):
    """What the runs screen and the checkpoint browser read; tests pass a fake with this shape."""

    def list_runs(self, runs_dir: Path) -> list[RunEntry]: ...

    def list_checkpoints(self, run_dir: Path) -> list[CheckpointInfo]: ...

    def last_exchange(self, run_dir: Path, checkpoint_id: str) -> Exchange | None: ...


class DiskRunSource:
    """The real runs directory, read through the run catalogue and the checkpoint store."""

    def list_runs(self, runs_dir: Path) -> list[RunEntry]:
        return list_runs(runs_dir)

    def list_checkpoints(self, run_dir: Path) -> list[CheckpointInfo]:
        return list_checkpoints(run_dir)

    def last_exchange(self, run_dir: Path, checkpoint_id: str) -> Exchange | None:
        return last_exchange(run_dir, checkpoint_id)


def list_checkpoints(run_dir: Path) -> list[CheckpointInfo]:
    try:
        return CheckpointStore(run_dir).list()
    except OSError:
        return []


def last_exchange(run_dir: Path, checkpoint_id: str) -> Exchange | None:
    try:
        checkpoint = CheckpointStore(run_dir).load(checkpoint_id)
    except (CheckpointCorrupt, CheckpointNotFound, OSError):  # no preview; the browser says why
        return None
    return exchange_of(list(checkpoint.messages))


def exchange_of(messages: list[Any]) -> Exchange | None:
    """The last user text and the assistant text after it, from API-shaped message dicts."""
    prompt, reply = "", ""
    for message in messages:
        role = _get(message, "role")
        text = _text_of(_get(message, "content"))
        if role == "user" and text:
            prompt, reply = text, ""
        elif role == "assistant" and text:
            reply = f"{reply}\n{text}".strip()
    return Exchange(prompt, reply) if prompt or reply else None


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content or ():
        if _get(block, "type") == "text":
            parts.append(str(_get(block, "text") or ""))
        elif _get(block, "type") == "server_tool_use":
            query = (_get(block, "input") or {}).get("query", "")
            parts.append(f'🔍 "{query}"')
    return "\n".join(p for p in parts if p)


# --- reports -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Document:
    title: str
    path: Path


def run_documents(run_dir: Path) -> list[Document]:
    """The final report, each agent's report, and the journal of a run, in that order."""
    run = RunDir(run_dir)
    docs: list[Document] = []
    final = run.final_report_path
    if final.is_file():
        docs.append(Document("final report", final))
    if run.reports_dir.is_dir():
        docs.extend(Document(p.stem, p) for p in sorted(run.reports_dir.glob("*.md")))
    journal = run.events_path
    if journal.is_file():
        docs.append(Document("journal (events.jsonl)", journal))
    return docs


def agent_report_path(run_dir: Path, agent_id: str) -> Path:
    return RunDir(run_dir).report_path(agent_id)


DOCUMENT_LIMIT = 8 << 20  # a report is tens of kilobytes; a journal is shown by its tail
JOURNAL_TAIL_BYTES = 1 << 20


def read_document(path: Path, *, journal_lines: int = 400) -> str:
    """Markdown for the viewer; a journal becomes a code block of its last lines.

    Read as the run directory's other files are (links, FIFOs and devices refused, sizes bounded),
    so that a report planted as a FIFO cannot hang the viewer nor a link show another file."""
    journal = path.suffix == ".jsonl"
    try:
        if journal:
            data = read_tail(path, limit=JOURNAL_TAIL_BYTES, kind="journals")
        else:
            data = read_regular(path, limit=DOCUMENT_LIMIT, kind="reports")
    except DiskError as error:  # a link, a FIFO or a device where a file should be
        return f"*Cannot read `{path}`: {error}*"
    except OSError as error:
        return f"*Cannot read `{path}`: {error.strerror or error}*"
    text = data.decode("utf-8", errors="replace")
    if journal:
        tail = text.splitlines()[-journal_lines:]
        return (
            f"# Journal\n\nThe last {len(tail)} events of `{path.name}`.\n\n```json\n"
            + "\n".join(tail)
            + "\n```\n"
        )
    return text


def read_summary(run_dir: Path) -> dict[str, Any]:
    return RunDir(run_dir).read_summary() or {}


# --- estimates and run factories ----------------------------------------------------------------


def load_estimate(config_path: Path) -> Estimate | str:
    """The pre-flight estimate shown before a new run starts, or why it cannot be made."""
    try:
        config = load_config(config_path)
    except ConfigError as error:
        return f"Cannot read {config_path}:\n{error.format()}"
    return estimate(config, PriceTable.from_config(config.pricing))


def simulate_by_default() -> bool:
    """Without an API key, runs started from the app use the simulator (a fresh machine still works)."""
    from core.api.credentials import api_key_present

    return not api_key_present()


async def _composition_root() -> ModuleType:
    """:mod:`core.runner`, imported in a worker thread: it brings the SDK, a second or more of CPU
    that would otherwise freeze the app's loop (keys, frames) while a run starts from its screens."""
    return await asyncio.to_thread(importlib.import_module, "core.runner")


def start_factory(config_path: Path, runs_dir: Path, simulate: bool) -> ControlFactory:
    async def factory() -> RunControl:
        runner = await _composition_root()
        control: RunControl = await runner.start_run(config_path, runs_dir, simulate=simulate)
        return control

    return factory


def attach_factory(runs_dir: Path, run_ref: str) -> ControlFactory:
    async def factory() -> RunControl:
        from core.remote.attached import attach_run

        control: RunControl = await attach_run(runs_dir, run_ref)
        return control

    return factory


def detached_start_factory(config_path: Path, runs_dir: Path, simulate: bool) -> ControlFactory:
    """Start the run in a background owner (it outlives the app), then attach to it."""

    async def factory() -> RunControl:
        from core.detach import start_detached
        from core.remote.attached import attach_run

        run_dir, _pid = await asyncio.to_thread(start_detached, config_path, runs_dir, simulate=simulate)
        control: RunControl = await attach_run(runs_dir, str(run_dir.path))
        return control

    return factory


def resume_destination(run_dir: Path, simulate: bool | None) -> str:
    """Where resuming a run sends its calls (``simulate`` as the app was told), for the confirmation."""
    if simulate:
        return "the built-in simulator"
    if simulate is False:
        return "the Anthropic API (ANTHROPIC_BASE_URL)"
    try:
        return read_endpoint(RunDir(run_dir)).describe()
    except RunMetadataError:
        return "an endpoint its run.json does not say (the resume will ask)"


def resume_factory(
    runs_dir: Path, run_ref: str, checkpoint_id: str | None, simulate: bool | None = None
) -> ControlFactory:
    async def factory() -> RunControl:
        runner = await _composition_root()
        control: RunControl = await runner.resume_run(
            runs_dir, run_ref, checkpoint_id=checkpoint_id, simulate=simulate
        )
        return control

    return factory
