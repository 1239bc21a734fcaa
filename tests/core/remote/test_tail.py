"""Following a journal: every complete line exactly once, in order, whatever the write boundaries."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.remote.tail import JournalTail


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=st.lists(
        st.fixed_dictionaries({"kind": st.just("x"), "n": st.integers(), "t": st.text()}), max_size=30
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
)
async def test_every_event_is_read_once_in_order_however_the_writes_are_cut(
    tmp_path: Path, events: list[dict[str, object]], cuts: list[int]
) -> None:
    path = tmp_path / "events.jsonl"
    data = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events).encode()
    path.write_bytes(b"")
    tail = JournalTail(path, 0)
    seen: list[dict[str, object]] = []
    written = 0
    for cut in sorted({min(c, len(data)) for c in cuts} | {len(data)}):
        with path.open("ab") as file:
            file.write(data[written:cut])
        written = cut
        seen += await tail.read(written)
    tail.close()
    assert seen == events


async def test_reading_starts_at_the_offset_and_never_rereads(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    old = b'{"kind": "old"}\n'
    path.write_bytes(old + b'{"kind": "new"}\n')
    tail = JournalTail(path, len(old))
    assert await tail.read() == [{"kind": "new"}]
    assert await tail.read() == []
    with path.open("ab") as file:
        file.write(b'not json\n{"kind": "later"}\n{"kind": "par')
    assert await tail.read() == [{"kind": "later"}]
    assert tail.skipped == 1
    with path.open("ab") as file:
        file.write(b'tial"}\n')
    assert await tail.read() == [{"kind": "partial"}]
    tail.close()
