"""Checkpoints: delta chains that rebuild exactly, flat write cost, corruption detected, fork, resume."""

from __future__ import annotations

import asyncio
import copy
import errno
import hashlib
import json
import os
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.persistence.atomic import DiskError
from core.persistence.checkpoints import (
    CheckpointCorrupt,
    CheckpointInfo,
    CheckpointNotFound,
    CheckpointStore,
    LedgerStateEncoder,
    _corrupt_info,
    canonical_json,
    find_checkpoint,
)
from tests.waits import eventually

Message = dict[str, Any]


def _turn_messages(agent: str, turn: int, size: int = 3000) -> list[Message]:
    """One API turn: a user nudge and an assistant reply with a search and cited text."""
    return [
        {"role": "user", "content": f"{agent}: continue with turn {turn}"},
        {
            "role": "assistant",
            "content": [
                {"type": "server_tool_use", "id": f"srvtoolu_{turn}", "name": "web_search",
                 "input": {"query": f"{agent} query {turn}"}},
                {"type": "web_search_tool_result", "tool_use_id": f"srvtoolu_{turn}",
                 "content": [{"type": "web_search_result", "url": f"https://{agent}.example/{turn}",
                              "title": "Result", "encrypted_content": "E" * (size // 2)}]},
                {"type": "text", "text": f"Finding {turn} ünï " + "x" * (size // 2)},
            ],
        },
    ]  # fmt: skip


class Agent:
    """A conversation that grows one turn at a time and checkpoints after each, like a session."""

    def __init__(self, store: CheckpointStore, agent_id: str, layer: int = 1) -> None:
        self.store, self.agent_id, self.layer = store, agent_id, layer
        self.messages: list[Message] = [{"role": "user", "content": f"Research brief for {agent_id}"}]
        self.turn = 0

    async def step(self, **overrides: Any) -> CheckpointInfo:
        self.turn += 1
        self.messages.extend(_turn_messages(self.agent_id, self.turn))
        return await self.save(**overrides)

    async def save(self, **overrides: Any) -> CheckpointInfo:
        fields: dict[str, Any] = {
            "agent_id": self.agent_id, "layer": self.layer, "turn": self.turn, "messages": self.messages,
            "agent_state": {"turns": self.turn, "searches": self.turn}, "ledger_state": {"spent": self.turn},
            "cost_usd": 0.1 * self.turn, "tokens": 1000 * self.turn, "agent_status": "running",
        }  # fmt: skip
        fields.update(overrides)
        return await self.store.save(**fields)


def _tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _flip_bit(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x04
    path.write_bytes(bytes(data))


# --- saving and loading ------------------------------------------------------------------------


async def test_a_chain_of_deltas_rebuilds_the_conversation_exactly(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    agent = Agent(store, "market")
    infos = [await agent.step() for _ in range(6)]
    assert [i.base for i in infos] == [True] + [False] * 5
    assert [i.prev for i in infos[1:]] == [i.id for i in infos[:-1]]

    for info, turn in zip(infos, range(1, 7), strict=True):
        loaded = CheckpointStore(tmp_path).load(info.id)
        assert loaded.messages == agent.messages[: 1 + 2 * turn]
        assert loaded.agent_state == {"turns": turn, "searches": turn}
        assert loaded.ledger_state == {"spent": turn}
        assert loaded.info == info


async def test_files_are_named_by_seq_private_and_valid_json(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    a, b = Agent(store, "market"), Agent(store, "policy", layer=2)
    await a.step()
    await b.step()
    info = await a.step()
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["000001-market-t001.json", "000002-policy-t001.json", "000003-market-t002.json"]
    assert stat.S_IMODE((tmp_path / "checkpoints").stat().st_mode) == 0o700
    assert stat.S_IMODE(info.path.stat().st_mode) == 0o600
    document = json.loads(info.path.read_bytes())
    assert document["sha256"] == hashlib.sha256(canonical_json(document["body"])).hexdigest()
    assert document["body"]["prev"] == "000001-market-t001"
    assert info.size_bytes == info.path.stat().st_size


async def test_checkpoint_info_carries_what_the_listing_shows(tmp_path: Path) -> None:
    agent = Agent(CheckpointStore(tmp_path), "market")
    await agent.step()
    info = await agent.step(cost_usd=1.25, tokens=4321, agent_status="finished")
    (listed,) = [i for i in CheckpointStore(tmp_path).list() if i.id == info.id]
    assert listed == info
    assert (listed.agent_id, listed.layer, listed.turn, listed.status, listed.problem) == (
        "market", 1, 2, "ok", None
    )  # fmt: skip
    assert (listed.cost_usd, listed.tokens, listed.agent_status) == (1.25, 4321, "finished")
    assert listed.message_count == 5


async def test_a_rewritten_conversation_is_saved_as_a_full_base(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    agent = Agent(store, "market")
    for _ in range(3):
        await agent.step()
    # compaction replaces the history with a summary: a new list of new messages
    agent.messages = [{"role": "user", "content": "summary of turns 1-3"}, *_turn_messages("market", 4)]
    agent.turn = 4
    compacted = await agent.save()
    assert compacted.base and compacted.prev is None
    after = await agent.step()
    assert not after.base and after.prev == compacted.id
    assert store.load(after.id).messages == agent.messages


async def test_an_abandoned_attempt_that_shortened_the_history_writes_a_base(tmp_path: Path) -> None:
    agent = Agent(CheckpointStore(tmp_path), "market")
    await agent.step()
    await agent.step()
    del agent.messages[-2:]  # the turn is redone from its beginning
    agent.messages.extend(_turn_messages("market", 99))
    info = await agent.save()
    assert info.base
    assert CheckpointStore(tmp_path).load(info.id).messages == agent.messages


async def test_an_in_place_edit_of_the_last_saved_message_writes_a_base(tmp_path: Path) -> None:
    agent = Agent(CheckpointStore(tmp_path), "market")
    await agent.step()
    agent.messages[-1]["content"].append({"type": "text", "text": "continued after pause_turn"})
    info = await agent.save()
    assert info.base
    assert CheckpointStore(tmp_path).load(info.id).messages == agent.messages


async def test_equal_copies_of_saved_messages_still_get_a_delta(tmp_path: Path) -> None:
    """A caller that rebuilds its message dicts (e.g. from models) must not force full copies."""
    agent = Agent(CheckpointStore(tmp_path), "market")
    await agent.step()
    agent.messages = copy.deepcopy(agent.messages)
    info = await agent.step()
    assert not info.base
    assert CheckpointStore(tmp_path).load(info.id).messages == agent.messages


async def test_bytes_written_per_checkpoint_do_not_grow_with_the_run(tmp_path: Path) -> None:
    agent = Agent(CheckpointStore(tmp_path), "market")
    sizes = [(await agent.step()).size_bytes for _ in range(200)]
    assert sizes[-1] <= sizes[0] * 1.1
    assert max(sizes[1:]) <= sizes[1] * 1.1
    assert sum(len(canonical_json(m)) for m in agent.messages) > 100 * sizes[-1]


async def test_seq_continues_after_reopening_and_resumed_agents_keep_their_chain(tmp_path: Path) -> None:
    agent = Agent(CheckpointStore(tmp_path), "market")
    for _ in range(3):
        last = await agent.step()

    reopened = CheckpointStore(tmp_path)
    point = reopened.restore_point()
    resumed = Agent(reopened, "market")
    resumed.messages, resumed.turn = point.agents["market"].messages, 3
    info = await resumed.step()
    assert info.seq == last.seq + 1
    assert not info.base and info.prev == last.id
    assert reopened.load(info.id).messages == agent.messages + _turn_messages("market", 4)


async def test_a_reopened_store_continues_each_chain_without_being_primed(tmp_path: Path) -> None:
    """The engine may restore from one store and save through another: chains still continue."""
    agent = Agent(CheckpointStore(tmp_path), "market")
    for _ in range(3):
        last = await agent.step()
    restored = copy.deepcopy(CheckpointStore(tmp_path).load(last.id).messages)

    resumed = Agent(CheckpointStore(tmp_path), "market")
    resumed.messages, resumed.turn = restored, 3
    info = await resumed.step()
    assert not info.base and info.prev == last.id


async def test_a_reopened_store_skips_a_corrupt_newest_checkpoint_when_continuing(tmp_path: Path) -> None:
    agent = Agent(CheckpointStore(tmp_path), "market")
    infos = [await agent.step() for _ in range(3)]
    _flip_bit(infos[-1].path, len(infos[-1].path.read_bytes()) // 2)
    point = CheckpointStore(tmp_path).restore_point()

    resumed = Agent(CheckpointStore(tmp_path), "market")
    resumed.messages, resumed.turn = point.agents["market"].messages, 2
    info = await resumed.step()
    assert info.prev == infos[1].id
    assert CheckpointStore(tmp_path).load(info.id).messages == resumed.messages


async def test_a_conversation_that_does_not_extend_the_disk_chain_is_saved_as_a_base(tmp_path: Path) -> None:
    agent = Agent(CheckpointStore(tmp_path), "market")
    await agent.step()
    stranger = Agent(CheckpointStore(tmp_path), "market")
    stranger.messages = [{"role": "user", "content": "a different brief"}]
    info = await stranger.step()
    assert info.base
    assert CheckpointStore(tmp_path).load(info.id).messages == stranger.messages


async def test_agents_saving_concurrently_get_distinct_seqs(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    agents = [Agent(store, f"agent-{i}") for i in range(8)]
    for _ in range(3):
        await asyncio.gather(*(a.step() for a in agents))
    infos = store.list()
    assert [i.seq for i in infos] == list(range(1, 25))
    assert all(i.ok for i in infos)


async def test_invalid_agent_ids_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="agent id"):
        await Agent(CheckpointStore(tmp_path), "../escape").step()


# --- integrity ---------------------------------------------------------------------------------


async def _three_turns(tmp_path: Path) -> list[CheckpointInfo]:
    agent = Agent(CheckpointStore(tmp_path), "market")
    return [await agent.step() for _ in range(3)]


async def test_a_truncated_file_is_corrupt_and_so_is_everything_built_on_it(tmp_path: Path) -> None:
    _, second, third = await _three_turns(tmp_path)
    data = second.path.read_bytes()
    second.path.write_bytes(data[: len(data) // 2])

    infos = CheckpointStore(tmp_path).list()
    assert [i.status for i in infos] == ["ok", "corrupt", "corrupt"]
    assert infos[1].problem == "file is truncated"
    assert infos[1].agent_id == "market" and infos[1].turn == 2
    assert infos[2].problem == f"depends on corrupt checkpoint {second.id}"
    assert CheckpointStore(tmp_path).verify_all() == infos[1:]
    with pytest.raises(CheckpointCorrupt, match=f"depends on corrupt checkpoint {second.id}"):
        CheckpointStore(tmp_path).load(third.id)


@pytest.mark.parametrize("where", ["header", "checksum", "body", "tail"])
async def test_a_flipped_bit_anywhere_is_detected(tmp_path: Path, where: str) -> None:
    _, _, third = await _three_turns(tmp_path)
    data = third.path.read_bytes()
    offset = {"header": 3, "checksum": 20, "body": len(data) // 2, "tail": len(data) - 2}[where]
    _flip_bit(third.path, offset)
    infos = CheckpointStore(tmp_path).list()
    assert [i.status for i in infos] == ["ok", "ok", "corrupt"]
    with pytest.raises(CheckpointCorrupt):
        CheckpointStore(tmp_path).load(third.id)


async def test_a_self_consistent_file_that_breaks_the_chain_is_corrupt(tmp_path: Path) -> None:
    """Re-checksummed edits (a bad tool, a bug) are still caught by the conversation fingerprint."""
    _, second, _ = await _three_turns(tmp_path)
    body = json.loads(second.path.read_bytes())["body"]
    body["messages"][0]["content"] = "edited"
    payload = canonical_json(body)
    second.path.write_bytes(
        b'{"sha256":"' + hashlib.sha256(payload).hexdigest().encode() + b'","body":' + payload + b"}\n"
    )
    statuses = [(i.status, i.problem) for i in CheckpointStore(tmp_path).list()]
    assert statuses[1] == ("corrupt", "conversation fingerprint mismatch")
    assert statuses[2][0] == "corrupt"


async def test_a_missing_link_makes_its_dependants_corrupt(tmp_path: Path) -> None:
    first, second, third = await _three_turns(tmp_path)
    second.path.unlink()
    infos = CheckpointStore(tmp_path).list()
    assert [i.id for i in infos] == [first.id, third.id]
    assert infos[1].problem == f"its previous checkpoint {second.id} is missing"


async def test_restore_point_skips_corrupt_checkpoints_and_says_which(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    market, policy = Agent(store, "market"), Agent(store, "policy")
    for _ in range(3):
        await market.step()
        await policy.step()
    infos = store.list()
    newest_market = infos[-2]
    _flip_bit(newest_market.path, len(newest_market.path.read_bytes()) // 2)

    point = CheckpointStore(tmp_path).restore_point()
    assert point.agents["market"].info.turn == 2
    assert point.agents["market"].messages == market.messages[:5]
    assert point.agents["policy"].info.turn == 3
    assert [s.id for s in point.skipped] == [newest_market.id]
    assert point.ledger_checkpoint == infos[-1]
    assert point.ledger_state == {"spent": 3}


async def test_restore_point_up_to_an_earlier_seq(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    market, policy = Agent(store, "market"), Agent(store, "policy")
    for _ in range(3):
        await market.step()
        await policy.step()
    point = store.restore_point(upto_seq=3)  # market t1, policy t1, market t2
    assert {a: c.info.turn for a, c in point.agents.items()} == {"market": 2, "policy": 1}
    assert point.ledger_checkpoint is not None and point.ledger_checkpoint.seq == 3
    assert point.skipped == []


def test_an_empty_run_has_an_empty_restore_point(tmp_path: Path) -> None:
    point = CheckpointStore(tmp_path).restore_point()
    assert point.agents == {} and point.ledger_state is None and point.skipped == []
    assert CheckpointStore(tmp_path).list() == []


def test_loading_an_unknown_checkpoint_says_so(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFound):
        CheckpointStore(tmp_path).load("000009-market-t001")


async def test_a_file_renamed_to_another_slot_is_corrupt(tmp_path: Path) -> None:
    first, *_ = await _three_turns(tmp_path)
    first.path.rename(first.path.with_name("000099-market-t001.json"))
    infos = CheckpointStore(tmp_path).list()
    assert infos[-1].status == "corrupt" and "holds checkpoint" in (infos[-1].problem or "")


async def test_temp_files_and_strangers_in_the_directory_are_ignored(tmp_path: Path) -> None:
    infos = await _three_turns(tmp_path)
    (tmp_path / "checkpoints" / ".000004-market-t004.json.abc.tmp").write_text("torn")
    (tmp_path / "checkpoints" / "notes.txt").write_text("hello")
    assert CheckpointStore(tmp_path).list() == infos
    assert CheckpointStore(tmp_path)._next_seq == 4


# --- disk faults -------------------------------------------------------------------------------


async def test_a_full_disk_raises_disk_error_and_keeps_every_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CheckpointStore(tmp_path)
    agent = Agent(store, "market")
    good = [await agent.step() for _ in range(2)]
    before = _tree_hashes(tmp_path)

    def full(*args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m, pytest.raises(DiskError, match="the disk is full while writing"):
        m.setattr(os, "write", full)
        await agent.step()
    assert _tree_hashes(tmp_path) == before
    assert CheckpointStore(tmp_path).list() == good
    # once space is back, the next save continues the chain from the last good checkpoint
    after = await agent.step()
    assert after.prev == good[-1].id
    assert CheckpointStore(tmp_path).load(after.id).messages == agent.messages


async def test_an_unwritable_checkpoints_dir_raises_disk_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.persistence import atomic

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EACCES, "Permission denied")

    agent = Agent(CheckpointStore(tmp_path), "market")
    await agent.step()
    monkeypatch.setattr(atomic, "_create_temp", refuse)
    with pytest.raises(DiskError, match="is not writable"):
        await agent.step()


# --- fork --------------------------------------------------------------------------------------


async def test_fork_copies_a_consistent_prefix_and_leaves_the_original_byte_identical(
    tmp_path: Path,
) -> None:
    original = tmp_path / "original"
    store = CheckpointStore(original)
    market, policy = Agent(store, "market"), Agent(store, "policy")
    for _ in range(3):
        await market.step()
        await policy.step()
    pick = store.list()[3]  # policy t2, seq 4
    before = _tree_hashes(original)

    store.fork_into(pick.id, tmp_path / "fork")

    assert _tree_hashes(original) == before
    forked = CheckpointStore(tmp_path / "fork")
    assert [i.seq for i in forked.list()] == [1, 2, 3, 4]
    assert all(i.ok for i in forked.list())
    point = forked.restore_point()
    assert {a: c.info.turn for a, c in point.agents.items()} == {"market": 2, "policy": 2}
    assert point.agents["market"].messages == market.messages[:5]
    for path in (tmp_path / "fork" / "checkpoints").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    # the fork continues on its own: new seqs, chains extend the copied ones
    resumed = Agent(forked, "policy")
    resumed.messages, resumed.turn = point.agents["policy"].messages, 2
    info = await resumed.step()
    assert info.seq == 5 and info.prev == pick.id
    assert _tree_hashes(original) == before


def test_fork_of_an_unknown_checkpoint_fails_cleanly(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFound):
        CheckpointStore(tmp_path).fork_into("000001-market-t001", tmp_path / "fork")
    assert not (tmp_path / "fork").exists()


# --- any history the engine can produce round-trips ---------------------------------------------

_OPERATIONS = st.lists(st.sampled_from(["turn", "turn", "turn", "copy", "compact", "redo", "edit_last"]),
                       min_size=1, max_size=12)  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(operations=_OPERATIONS)
def test_every_checkpoint_of_any_history_loads_back_exactly(operations: list[str]) -> None:
    """Appends, equal copies, compactions, redone turns and edits of the last message, in any order."""

    async def play(root: Path) -> dict[str, list[Message]]:
        agent = Agent(CheckpointStore(root), "market")
        saved: dict[str, list[Message]] = {}
        for operation in operations:
            if operation == "turn":
                agent.turn += 1
                agent.messages.extend(_turn_messages("market", agent.turn, size=200))
            elif operation == "copy":
                agent.messages = copy.deepcopy(agent.messages)
            elif operation == "compact":
                agent.messages = [{"role": "user", "content": f"summary up to turn {agent.turn}"}]
            elif operation == "redo" and len(agent.messages) >= 2:
                del agent.messages[-2:]
                agent.messages.extend(_turn_messages("market", agent.turn + 100, size=200))
            elif operation == "edit_last":
                agent.messages[-1]["content"] = f"edited {len(saved)}"
            info = await agent.save()
            saved[info.id] = copy.deepcopy(agent.messages)
        return saved

    with tempfile.TemporaryDirectory() as tmp:
        saved = asyncio.run(play(Path(tmp)))
        store = CheckpointStore(Path(tmp))
        assert store.verify_all() == []
        for checkpoint_id, messages in saved.items():
            assert store.load(checkpoint_id).messages == messages


async def test_a_cancelled_save_still_lands_before_the_cancellation_propagates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopping an agent mid-save must not leave its checkpoint being written after the task ended,
    nor unrecorded: the journal's record (``on_saved``) is made once it lands, cancelled or not."""
    real_fsync = os.fsync
    syncing, disk_done = threading.Event(), threading.Event()

    def slow_fsync(fd: int) -> None:  # a disk that finishes only once the test has cancelled the save
        syncing.set()
        disk_done.wait(30)
        real_fsync(fd)

    agent = Agent(CheckpointStore(tmp_path), "market")
    first = await agent.step()
    monkeypatch.setattr(os, "fsync", slow_fsync)
    recorded: list[CheckpointInfo] = []
    saving = asyncio.create_task(agent.step(on_saved=recorded.append))
    await eventually(syncing.is_set, "the save to reach the disk")
    saving.cancel()
    disk_done.set()
    with pytest.raises(asyncio.CancelledError):
        await saving
    monkeypatch.undo()
    (second,) = [i for i in CheckpointStore(tmp_path).list() if i.id != first.id]
    assert second.ok and second.turn == 2
    assert [(i.id, i.sha256) for i in recorded] == [(second.id, second.sha256)]
    third = await agent.step()
    assert third.prev == second.id  # the store knows the cancelled save landed


async def test_each_checkpoint_lists_its_agents_own_spend_beside_the_runs(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    market, policy = Agent(store, "market"), Agent(store, "policy")
    await market.step(agent_state={"cost_usd": 0.25}, cost_usd=0.25)
    await policy.step(agent_state={"cost_usd": 0.5}, cost_usd=0.75)
    await market.step(agent_state={}, cost_usd=0.9)  # an older checkpoint format: no agent cost
    listed = {(i.agent_id, i.turn): (i.agent_cost_usd, i.cost_usd) for i in store.list()}
    assert listed == {("market", 1): (0.25, 0.25), ("policy", 1): (0.5, 0.75), ("market", 2): (0.0, 0.9)}


@given(
    ids=st.lists(st.from_regex(r"\A\d{6}-[a-z]{1,3}-t\d{3}\Z"), min_size=1, max_size=8, unique=True),
    data=st.data(),
)
def test_a_checkpoint_is_found_by_any_prefix_that_only_it_has(ids: list[str], data: st.DataObject) -> None:
    infos = [_corrupt_info((int(i[:6]), i.split("-")[1], int(i[-3:])), Path(f"{i}.json"), "x") for i in ids]
    target = data.draw(st.sampled_from(infos))
    cut = data.draw(st.integers(min_value=0, max_value=len(target.id)))
    prefix = target.id[:cut]
    sharing = [i for i in infos if i.id.startswith(prefix)]
    if prefix and (len(sharing) == 1 or prefix == target.id):
        assert find_checkpoint(infos, prefix) is target
    else:
        with pytest.raises(CheckpointNotFound):
            find_checkpoint(infos, prefix)


def test_the_ledger_state_encoded_entry_by_entry_is_canonical_json_as_agents_change() -> None:
    encoder = LedgerStateEncoder()
    entries = {f"agent-{i}": {"layer": 1, "usage": {"input_tokens": i}, "cost_usd": i / 7} for i in range(5)}
    for step in range(4):
        state = {"version": 1, "agents": dict(entries)}
        assert encoder.encode(state) == canonical_json(state)
        entries[f"agent-{step}"] = {"layer": 2, "usage": {"input_tokens": 100 + step}, "cost_usd": 1.5}
        entries[f"new-{step}"] = {"layer": 1, "usage": {}, "cost_usd": 0.0}  # sorts among the others
    assert encoder.encode({"version": 1, "agents": {}}) == canonical_json({"version": 1, "agents": {}})
    assert encoder.encode({"version": 1}) == canonical_json({"version": 1})


def test_a_saved_checkpoint_holds_the_ledger_state_it_was_given(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "run")
    agents: dict[str, Any] = {"a": {"layer": 1, "cost_usd": 0.5}}
    messages: list[Message] = []
    for turn in range(1, 4):
        messages = [*messages, *_turn_messages("a", turn, 100)]
        agents = {**agents, f"b{turn}": {"layer": 1, "cost_usd": turn / 3, "note": "\u00e9\u2028"}}
        ledger_state = {"version": 1, "agents": agents}
        info = asyncio.run(
            store.save(
                agent_id="a", layer=1, turn=turn, messages=messages,
                agent_state={"turn": turn}, ledger_state=ledger_state, cost_usd=0.5, tokens=10,
                agent_status="running",
            )
        )  # fmt: skip
        assert store.load(info.id).ledger_state == ledger_state
    assert all(i.ok for i in store.list())
