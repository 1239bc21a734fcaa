"""Per-turn checkpoints: atomic, checksummed, and as cheap at turn 200 as at turn 1.

A checkpoint is one agent's state after one completed API turn plus the run's ledger at that
moment. To keep the write cost flat, a checkpoint stores only the messages appended since that
agent's previous checkpoint and links to it (``prev``); when the conversation was rewritten
(compaction, an abandoned attempt) it stores a full copy instead (``base``). Loading walks the
links back to the base.

File format (still valid JSON, so ``jq`` works)::

    {"sha256":"<64 hex>","body":<canonical JSON body>}\\n

The hash covers the exact body bytes, so any torn or flipped byte is detected. Each body also
carries ``chain``, a running fingerprint of the whole conversation, which ties a delta to the
exact history it extends.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ResearchOrchestratorError
from core.persistence.atomic import (
    UnsafePathError,
    ensure_private_dir,
    fsync_directory,
    list_dir,
    read_regular,
    write_atomic,
    write_atomic_async,
)
from core.persistence.jsontext import parse_json
from core.persistence.rundir import RunDir

FORMAT = 1
_HEAD = b'{"sha256":"'
_MID = b'","body":'
_TAIL = b"}\n"
_HEX_LEN = 64
_PREFIX_LEN = len(_HEAD) + _HEX_LEN + len(_MID)
_NAME_RE = re.compile(r"^(\d{6,})-([a-z0-9][a-z0-9_-]{0,63})-t(\d+)\.json$")
_AGENT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_EMPTY_CHAIN = "0" * _HEX_LEN
MAX_CHECKPOINT_BYTES = 256 * 1024 * 1024  # a full 1M-token conversation is a few MB
_RECALL_TRIES = 3  # past a few corrupt checkpoints in a row, a full base is the simpler answer
_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "format": int, "id": str, "seq": int, "agent_id": str, "layer": int, "turn": int,
    "created_at": (int, float), "cost_usd": (int, float), "tokens": int, "agent_status": str,
    "base": bool, "offset": int, "count": int, "chain": str, "messages": list,
    "agent_state": dict, "ledger_state": dict,
}  # fmt: skip

Message = dict[str, Any]


class CheckpointCorrupt(ResearchOrchestratorError):
    """A checkpoint (or one it depends on) failed verification and cannot be loaded."""

    def __init__(self, checkpoint_id: str, problem: str) -> None:
        super().__init__(f"checkpoint {checkpoint_id} is corrupt: {problem}")
        self.checkpoint_id = checkpoint_id
        self.problem = problem


class CheckpointNotFound(ResearchOrchestratorError, LookupError):
    """No checkpoint with that id exists in the run."""


def find_checkpoint(infos: Iterable[CheckpointInfo], ref: str) -> CheckpointInfo:
    """The checkpoint whose id is ``ref`` or starts with it (``000019`` for ``000019-market-t005``).

    Raises :class:`CheckpointNotFound` naming the candidates when no id, or more than one, matches.
    """
    listed = builtins.list(infos)
    exact = [info for info in listed if info.id == ref]
    matches = exact or [info for info in listed if ref and info.id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise CheckpointNotFound(f"no checkpoint id starts with {ref!r}")
    shown = ", ".join(info.id for info in matches[:5]) + (", …" if len(matches) > 5 else "")
    raise CheckpointNotFound(f"{ref!r} matches {len(matches)} checkpoints ({shown}): give more of the id")


@dataclass(frozen=True)
class CheckpointInfo:
    """What ``research-orchestrator checkpoints`` shows for one file, including its integrity."""

    id: str
    seq: int
    agent_id: str
    layer: int  # -1 when the file is too damaged to tell
    turn: int
    created_at: float
    status: str  # "ok" | "corrupt"
    cost_usd: float  # run spend so far
    tokens: int  # run tokens so far
    agent_status: str
    path: Path
    problem: str | None
    base: bool = False
    prev: str | None = None
    message_count: int = 0
    size_bytes: int = 0
    agent_cost_usd: float = 0.0  # this agent's own spend so far (from its agent_state)
    # Of those, the bounds charged for attempts whose usage never arrived (the rest was billed):
    unconfirmed_usd: float = 0.0  # the run's (from its ledger_state)
    agent_unconfirmed_usd: float = 0.0  # this agent's (from its agent_state)
    sha256: str = ""  # the file's checksum (what the journal records of it), "" when corrupt

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class AgentCheckpoint:
    """One agent's full state at a checkpoint: the whole conversation, rebuilt from its chain."""

    info: CheckpointInfo
    messages: list[Message]
    agent_state: dict[str, Any]
    ledger_state: dict[str, Any]


@dataclass(frozen=True)
class RestorePoint:
    """What a resume starts from: each agent's newest good checkpoint and the newest good ledger."""

    agents: dict[str, AgentCheckpoint]
    ledger_state: dict[str, Any] | None
    ledger_checkpoint: CheckpointInfo | None
    skipped: list[CheckpointInfo] = field(default_factory=list)  # corrupt ones passed over


@dataclass
class _Persisted:
    """What the store already wrote for one agent, so the next save can write only the rest."""

    checkpoint_id: str
    seq: int
    refs: list[Message]  # the caller's message objects, for a cheap identity check
    digests: list[str]
    chain: str


def canonical_json(value: Any) -> bytes:
    """One byte string per value, so checksums and fingerprints are reproducible."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8", "surrogatepass")


def _digest(message: Message) -> str:
    return hashlib.sha256(canonical_json(message)).hexdigest()


def _extend_chain(chain: str, digests: builtins.list[str]) -> str:
    for digest in digests:
        chain = hashlib.sha256((chain + digest).encode("ascii")).hexdigest()
    return chain


def encode_checkpoint(body: dict[str, Any]) -> bytes:
    payload = canonical_json(body)
    return _HEAD + hashlib.sha256(payload).hexdigest().encode("ascii") + _MID + payload + _TAIL


class LedgerStateEncoder:
    """Canonical JSON of the run's ledger state, which every checkpoint holds: each agent's entry
    is encoded again only when it is a new object (the ledger makes a new one when the agent's
    totals change), so a checkpoint of a run of N agents costs a join of N byte strings rather
    than an encoding of N entries (that was quadratic in agents). The bytes are exactly
    :func:`canonical_json`'s. Like the conversation's messages, an entry once saved is treated as
    immutable: a changed entry is a new object."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Any, bytes]] = {}
        self._order: builtins.list[str] = []  # the agents, sorted, while the set of them is the same
        self._keys: set[str] = set()

    def encode(self, state: dict[str, Any]) -> bytes:
        agents = state.get("agents")
        if set(state) != {"agents", "version"} or not isinstance(agents, dict):
            return canonical_json(state)
        if agents.keys() != self._keys:
            self._order, self._keys = sorted(agents), set(agents)
        parts: builtins.list[bytes] = []
        for agent_id in self._order:
            entry = agents[agent_id]
            known = self._entries.get(agent_id)
            if known is None or known[0] is not entry:
                encoded = canonical_json(agent_id) + b":" + canonical_json(entry)
                known = self._entries[agent_id] = (entry, encoded)
            parts.append(known[1])
        return b'{"agents":{' + b",".join(parts) + b'},"version":' + canonical_json(state["version"]) + b"}"


def _encode_with_ledger(body: dict[str, Any], ledger: bytes) -> bytes:
    """:func:`encode_checkpoint` of ``body`` with its ``ledger_state`` already encoded: the keys
    before it and after it in canonical order, encoded around it."""
    before = {k: v for k, v in body.items() if k < "ledger_state"}
    after = {k: v for k, v in body.items() if k > "ledger_state"}
    middle = [canonical_json(before)[1:-1], b'"ledger_state":' + ledger, canonical_json(after)[1:-1]]
    payload = b"{" + b",".join(part for part in middle if part) + b"}"
    return _HEAD + hashlib.sha256(payload).hexdigest().encode("ascii") + _MID + payload + _TAIL


def decode_checkpoint(data: bytes, checkpoint_id: str) -> dict[str, Any]:
    """The verified body of a checkpoint file, or CheckpointCorrupt saying what is wrong."""
    if len(data) < _PREFIX_LEN + len(_TAIL) or not data.endswith(_TAIL):
        raise CheckpointCorrupt(checkpoint_id, "file is truncated")
    expected = data[len(_HEAD) : len(_HEAD) + _HEX_LEN]
    if not data.startswith(_HEAD) or data[len(_HEAD) + _HEX_LEN : _PREFIX_LEN] != _MID:
        raise CheckpointCorrupt(checkpoint_id, "header is damaged")
    payload = data[_PREFIX_LEN : -len(_TAIL)]
    if hashlib.sha256(payload).hexdigest().encode("ascii") != expected:
        raise CheckpointCorrupt(checkpoint_id, "checksum mismatch")
    try:
        body = parse_json(payload.decode("utf-8", "surrogatepass"))
    except ValueError as exc:
        raise CheckpointCorrupt(checkpoint_id, f"body is not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise CheckpointCorrupt(checkpoint_id, "body is not an object")
    for key, kind in _REQUIRED.items():
        if not isinstance(body.get(key), kind):
            raise CheckpointCorrupt(checkpoint_id, f"field {key!r} is missing or mistyped")
    if body["format"] != FORMAT:
        raise CheckpointCorrupt(checkpoint_id, f"unknown format {body['format']}")
    if body["id"] != checkpoint_id:
        raise CheckpointCorrupt(checkpoint_id, f"file holds checkpoint {body['id']}")
    return body


def checksum_of(data: bytes) -> str:
    """The checksum a checkpoint file's header states (its body's SHA-256)."""
    return data[len(_HEAD) : len(_HEAD) + _HEX_LEN].decode("ascii", "replace")


def _info(body: dict[str, Any], path: Path, data: bytes) -> CheckpointInfo:
    return CheckpointInfo(
        id=body["id"], seq=body["seq"], agent_id=body["agent_id"], layer=body["layer"],
        turn=body["turn"], created_at=float(body["created_at"]), status="ok",
        cost_usd=float(body["cost_usd"]), tokens=body["tokens"], agent_status=body["agent_status"],
        path=path, problem=None, base=body["base"], prev=body.get("prev"),
        message_count=body["count"], size_bytes=len(data),
        agent_cost_usd=_figure(body.get("agent_state"), "cost_usd"), sha256=checksum_of(data),
        unconfirmed_usd=_run_unconfirmed(body.get("ledger_state")),
        agent_unconfirmed_usd=_figure(body.get("agent_state"), "unconfirmed_usd"),
    )  # fmt: skip


def _figure(state: object, key: str) -> float:
    value = state.get(key) if isinstance(state, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _run_unconfirmed(ledger_state: object) -> float:
    """The run's unconfirmed dollars in a saved ledger (none in a state saved before the split)."""
    agents = ledger_state.get("agents") if isinstance(ledger_state, dict) else None
    if not isinstance(agents, dict):
        return 0.0
    # Most entries have no unconfirmed part (the key is then left out): test for it before the
    # figure, which a save pays over every agent of the run.
    parts = [t for t in agents.values() if isinstance(t, dict) and "unconfirmed_usd" in t]
    return float(sum(_figure(t, "unconfirmed_usd") for t in parts))


def _corrupt_info(name: tuple[int, str, int], path: Path, problem: str) -> CheckpointInfo:
    seq, agent_id, turn = name
    try:
        stat = path.stat()
        created, size = stat.st_mtime, stat.st_size
    except OSError:
        created, size = 0.0, 0
    return CheckpointInfo(
        id=path.stem, seq=seq, agent_id=agent_id, layer=-1, turn=turn, created_at=created,
        status="corrupt", cost_usd=0.0, tokens=0, agent_status="unknown", path=path,
        problem=problem, size_bytes=size,
    )  # fmt: skip


def _link_problem(body: dict[str, Any], prev: dict[str, Any] | None) -> str | None:
    """Why a body does not continue ``prev`` (None when it does)."""
    if body["base"]:
        return None if body["offset"] == 0 and body.get("prev") is None else "base with a previous link"
    if prev is None:
        return f"its previous checkpoint {body.get('prev')} is missing"
    if prev["agent_id"] != body["agent_id"] or prev["seq"] >= body["seq"]:
        return f"its previous checkpoint {prev['id']} belongs elsewhere"
    if prev["count"] != body["offset"]:
        return f"it does not continue {prev['id']} (offset {body['offset']} != {prev['count']})"
    return None


async def _landed(write: asyncio.Future[None]) -> None:
    """Wait for a started write, and let it land before a cancellation propagates.

    The worker thread cannot be stopped anyway; waiting for it means that when a cancelled task
    ends (stop, kill, quit), its checkpoint is on disk, not still being written behind its back.
    """
    try:
        await asyncio.shield(write)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await asyncio.shield(write)
        raise


class CheckpointStore:
    """The checkpoints of one run directory: save, list with integrity, load, restore, fork.

    Contract for callers of :meth:`save`: pass the agent's conversation list; messages already
    checkpointed are treated as immutable (rewrite history by replacing the list or the message
    objects, and the store writes a full base). The store continues an agent's chain from the
    last checkpoint it saved or loaded for that agent or, after reopening a run, from the agent's
    newest good checkpoint on disk; when the conversation passed in does not extend it, the save
    is a full base, so a wrong guess costs bytes, never correctness.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run = RunDir(run_dir)
        self.directory = self.run.checkpoints_dir
        self._agents: dict[str, _Persisted] = {}
        found = self._scan()
        self._next_seq = max((name[0] for name, _ in found), default=0) + 1
        # What each agent had on disk when the run was (re)opened: where its chain may continue.
        self._found: dict[str, builtins.list[str]] = {}
        for name, path in found:
            self._found.setdefault(name[1], []).append(path.stem)
        self._dir_ready = False
        self._ledger = LedgerStateEncoder()

    # --- writing ----------------------------------------------------------------------------

    async def save(
        self,
        *,
        agent_id: str,
        layer: int,
        turn: int,
        messages: builtins.list[Message],
        agent_state: dict[str, Any],
        ledger_state: dict[str, Any],
        cost_usd: float,
        tokens: int,
        agent_status: str,
        on_saved: Callable[[CheckpointInfo], None] | None = None,
    ) -> CheckpointInfo:
        """Persist one agent's state after a completed turn; raises DiskError if the disk refuses.

        ``on_saved`` is called once the file is on disk, even when the save was cancelled while
        it was written (a stop now): every checkpoint that exists gets its journal record, which
        ``verify`` needs to trust it."""
        if not _AGENT_RE.match(agent_id):
            raise ValueError(f"agent id {agent_id!r} cannot name a checkpoint file")
        if turn < 0:
            raise ValueError(f"turn must be >= 0, not {turn}")
        seq = self._next_seq
        self._next_seq += 1
        checkpoint_id = f"{seq:06d}-{agent_id}-t{turn:03d}"
        known = self._agents.get(agent_id) or self._recall(agent_id)
        start = self._persisted_prefix(known, messages)
        delta = messages if start is None else messages[start:]
        delta_digests = [_digest(m) for m in delta]
        prior_chain = _EMPTY_CHAIN if known is None or start is None else known.chain
        chain = _extend_chain(prior_chain, delta_digests)
        body = {
            "format": FORMAT, "id": checkpoint_id, "seq": seq, "agent_id": agent_id, "layer": layer,
            "turn": turn, "created_at": time.time(), "cost_usd": float(cost_usd), "tokens": tokens,
            "agent_status": agent_status, "base": start is None,
            "prev": None if known is None or start is None else known.checkpoint_id,
            "offset": 0 if start is None else start, "count": len(messages), "chain": chain,
            "messages": delta, "agent_state": agent_state, "ledger_state": ledger_state,
        }  # fmt: skip
        data = _encode_with_ledger(body, self._ledger.encode(ledger_state))
        path = self.directory / f"{checkpoint_id}.json"
        if not self._dir_ready:
            ensure_private_dir(self.directory)
            self._dir_ready = True
        # Fresh lists (a pointer copy, not a deep one), so that concurrent saves never share state;
        # the refs are the caller's current objects, which makes the next identity check succeed.
        digests = delta_digests if known is None or start is None else known.digests + delta_digests
        persisted = _Persisted(checkpoint_id, seq, messages.copy(), digests, chain)
        info = _info(body, path, data)
        write = asyncio.ensure_future(write_atomic_async(path, data))
        try:
            await _landed(write)
        finally:
            if write.done() and not write.cancelled() and write.exception() is None:
                self._adopt(agent_id, persisted)
                if on_saved is not None:
                    on_saved(info)
        return info

    def _recall(self, agent_id: str) -> _Persisted | None:
        """After reopening a run, find the agent's newest good checkpoint so its chain continues.

        Done once per agent per store, from the listing taken at open (a new run costs nothing);
        costs one chain load, so resumes need no priming call.
        """
        own = self._found.pop(agent_id, [])
        for checkpoint_id in reversed(own[-_RECALL_TRIES:]):
            try:
                self.load(checkpoint_id)
            except (CheckpointCorrupt, CheckpointNotFound):
                continue
            return self._agents.get(agent_id)
        return None

    def _adopt(self, agent_id: str, persisted: _Persisted) -> None:
        """Continue the agent's chain from this checkpoint unless a newer one is already known."""
        known = self._agents.get(agent_id)
        if known is None or known.seq < persisted.seq:
            self._agents[agent_id] = persisted

    @staticmethod
    def _persisted_prefix(known: _Persisted | None, messages: builtins.list[Message]) -> int | None:
        """How many leading messages are already on disk unchanged, or None if history was rewritten.

        Identity is checked for every message (pointer compares: flat cost); content only for
        messages that are new objects, and for the last persisted one, the likeliest to be edited.
        """
        if known is None or len(messages) < len(known.refs):
            return None
        count = len(known.refs)
        for i in range(count):
            if messages[i] is not known.refs[i] and _digest(messages[i]) != known.digests[i]:
                return None
        if count and _digest(messages[count - 1]) != known.digests[count - 1]:
            return None
        return count

    # --- reading ----------------------------------------------------------------------------

    def _scan(self) -> builtins.list[tuple[tuple[int, str, int], Path]]:
        return _scan(self.directory)

    def _path_of(self, checkpoint_id: str) -> Path:
        path = self.directory / f"{checkpoint_id}.json"
        if not _NAME_RE.match(path.name) or not path.is_file():
            raise CheckpointNotFound(f"no checkpoint {checkpoint_id} in {self.directory}")
        return path

    def _read_body(self, checkpoint_id: str) -> tuple[dict[str, Any], Path, bytes]:
        path = self._path_of(checkpoint_id)
        data = read_checkpoint_file(path, checkpoint_id)
        return decode_checkpoint(data, checkpoint_id), path, data

    def list(self) -> builtins.list[CheckpointInfo]:
        """Every checkpoint in seq order, each ``ok`` only if it and its whole chain verify."""
        infos: builtins.list[CheckpointInfo] = []
        good: dict[str, tuple[dict[str, Any], str]] = {}  # id -> (body, chain recomputed)
        bad: set[str] = set()
        for name, path in self._scan():
            checkpoint_id = path.stem
            try:
                body, _, data = self._read_body(checkpoint_id)
                if (body["seq"], body["agent_id"], body["turn"]) != name:
                    raise CheckpointCorrupt(checkpoint_id, "contents do not match the file name")
            except (CheckpointCorrupt, CheckpointNotFound) as exc:
                bad.add(checkpoint_id)
                infos.append(_corrupt_info(name, path, getattr(exc, "problem", str(exc))))
                continue
            prev_id = body.get("prev")
            prev = good.get(prev_id) if isinstance(prev_id, str) else None
            if not body["base"] and prev_id in bad:
                problem: str | None = f"depends on corrupt checkpoint {prev_id}"
            else:
                problem = _link_problem(body, prev[0] if prev else None)
            if problem is None:
                prior = prev[1] if prev and not body["base"] else _EMPTY_CHAIN
                chain = _extend_chain(prior, [_digest(m) for m in body["messages"]])
                if chain != body["chain"] or body["count"] != body["offset"] + len(body["messages"]):
                    problem = "conversation fingerprint mismatch"
            if problem is not None:
                bad.add(checkpoint_id)
                infos.append(_corrupt_info(name, path, problem))
                continue
            good[checkpoint_id] = (body, chain)
            infos.append(_info(body, path, data))
        return infos

    def verify_all(self) -> builtins.list[CheckpointInfo]:
        """The checkpoints that fail verification (empty when every one verifies)."""
        return [info for info in self.list() if not info.ok]

    def load(self, checkpoint_id: str) -> AgentCheckpoint:
        """Rebuild an agent's full state at a checkpoint by walking its chain back to a base."""
        bodies: builtins.list[dict[str, Any]] = []
        head_path, head_data = Path(), b""
        current: str | None = checkpoint_id
        while current is not None:
            try:
                body, path, data = self._read_body(current)
            except CheckpointNotFound:
                if current == checkpoint_id:
                    raise
                raise CheckpointCorrupt(
                    checkpoint_id, f"its previous checkpoint {current} is missing"
                ) from None
            except CheckpointCorrupt as exc:
                if current == checkpoint_id:
                    raise
                raise CheckpointCorrupt(checkpoint_id, f"depends on corrupt checkpoint {current}") from exc
            if bodies:
                problem = _link_problem(bodies[-1], body)
                if problem:
                    raise CheckpointCorrupt(checkpoint_id, problem)
            else:
                head_path, head_data = path, data
            bodies.append(body)
            current = None if body["base"] else body.get("prev")
        if (problem := _link_problem(bodies[-1], None)) is not None:
            raise CheckpointCorrupt(checkpoint_id, problem)
        messages: builtins.list[Message] = [m for body in reversed(bodies) for m in body["messages"]]
        digests = [_digest(m) for m in messages]
        head = bodies[0]
        if len(messages) != head["count"] or _extend_chain(_EMPTY_CHAIN, digests) != head["chain"]:
            raise CheckpointCorrupt(checkpoint_id, "conversation fingerprint mismatch")
        self._adopt(
            head["agent_id"], _Persisted(head["id"], head["seq"], messages.copy(), digests, head["chain"])
        )
        return AgentCheckpoint(
            _info(head, head_path, head_data), messages, head["agent_state"], head["ledger_state"]
        )

    def restore_point(self, upto_seq: int | None = None) -> RestorePoint:
        """Each agent's newest good checkpoint with seq <= ``upto_seq`` (None: the latest)."""
        infos = [i for i in self.list() if upto_seq is None or i.seq <= upto_seq]
        newest: dict[str, CheckpointInfo] = {}
        for info in infos:
            if info.ok:
                newest[info.agent_id] = info
        skipped = [
            i for i in infos if not i.ok and (i.agent_id not in newest or i.seq > newest[i.agent_id].seq)
        ]
        agents = {agent_id: self.load(info.id) for agent_id, info in newest.items()}
        latest = max(agents.values(), key=lambda a: a.info.seq, default=None)
        return RestorePoint(
            agents=agents,
            ledger_state=latest.ledger_state if latest else None,
            ledger_checkpoint=latest.info if latest else None,
            skipped=skipped,
        )

    def seq_of(self, checkpoint_id: str) -> int:
        self._path_of(checkpoint_id)
        match = _NAME_RE.match(f"{checkpoint_id}.json")
        assert match is not None
        return int(match.group(1))

    # --- forking ----------------------------------------------------------------------------

    def fork_into(self, checkpoint_id: str, new_run_dir: Path) -> builtins.list[str]:
        """Copy the run's checkpoints up to this one into another run (the original is only read);
        the ids copied."""
        upto = self.seq_of(checkpoint_id)
        target = RunDir(new_run_dir).checkpoints_dir
        ensure_private_dir(target)
        copied = []
        for name, path in self._scan():
            if name[0] <= upto:
                data = read_checkpoint_file(path, path.stem)
                write_atomic(target / path.name, data, sync_dir=False)
                copied.append(path.stem)
        fsync_directory(target)
        return copied


def _scan(directory: Path) -> list[tuple[tuple[int, str, int], Path]]:
    """Checkpoint files by (seq, agent, turn), from their names; a link for the directory is refused."""
    try:
        names = list_dir(directory, kind="checkpoints/ directory")
    except FileNotFoundError:
        return []
    found = []
    for path in (directory / name for name in names):
        match = _NAME_RE.match(path.name)
        if match:
            found.append(((int(match.group(1)), match.group(2), int(match.group(3))), path))
    return sorted(found)


def read_checkpoint_file(path: Path, checkpoint_id: str) -> bytes:
    """A checkpoint's bytes; a link, a FIFO or an oversized file is a corrupt checkpoint."""
    try:
        return read_regular(path, limit=MAX_CHECKPOINT_BYTES, kind="checkpoints")
    except UnsafePathError:
        raise CheckpointCorrupt(checkpoint_id, "not a regular file (a link or a device): not read") from None
    except OSError as exc:
        raise CheckpointCorrupt(checkpoint_id, f"cannot be read ({exc.strerror or exc})") from exc


def latest_spend(run_dir: Path) -> float | None:
    """The run's spend as its newest readable checkpoint recorded it (for a run whose summary lags)."""
    for _, path in reversed(_scan(RunDir(run_dir).checkpoints_dir)):
        try:
            body = decode_checkpoint(read_checkpoint_file(path, path.stem), path.stem)
        except CheckpointCorrupt:
            continue
        return float(body["cost_usd"])
    return None
