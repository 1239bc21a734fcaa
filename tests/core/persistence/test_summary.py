"""``summary.json``: its encoding reads back as what was built, and a busy run shares its writes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.control import RunStatus
from core.lifecycle import AgentRow
from core.persistence import summary as summary_module
from core.persistence.rundir import RunDir
from core.persistence.summary import RunFacts, SummaryWriter, encode_summary
from core.usage import TokenUsage
from tests.waits import eventually

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)
rows = st.dictionaries(st.text(), values, max_size=5)


heads = st.dictionaries(st.text().filter(lambda k: k != "agents"), values, max_size=6)


@settings(max_examples=200)
@given(head=heads, agents=st.lists(rows))
def test_the_encoding_reads_back_as_the_summary_built(
    head: dict[str, Any], agents: list[dict[str, Any]]
) -> None:
    data = {**head, "agents": agents}
    text = encode_summary(data).decode("utf-8")
    assert json.loads(text) == data
    if agents:  # each agent's row on a line of its own, so a person can read 1,000 of them
        lines = text.splitlines()
        start = lines.index('  "agents": [')
        assert [json.loads(line.strip().removesuffix(",")) for line in lines[start + 1 : -2]] == agents


@dataclass
class View:
    agents: dict[str, AgentRow] = field(default_factory=dict)
    searches: int = 0


def facts() -> RunFacts:
    return RunFacts(
        program="p", simulated=True, started_at=0.0, layers=1, current_layer=1, usage=TokenUsage(),
        caps={}, parent=None, models={},
    )  # fmt: skip


async def test_callers_during_a_busy_moment_share_one_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every agent's checkpoint asks for the summary: 200 asks in a burst are one write, and the
    file says what the view says once the writer is idle (it used to write once per ask that
    arrived during a write: 185 writes of 400 rows in a 20 s run)."""
    run = RunDir.create(tmp_path, "run", "config")
    view = View({f"a{i}": AgentRow(f"a{i}", 1) for i in range(200)})
    writer = SummaryWriter(run, view, facts)
    written: list[Path] = []
    real = summary_module.write_atomic_async

    async def counting(path: Path, data: bytes) -> None:
        written.append(path)
        await real(path, data)

    monkeypatch.setattr(summary_module, "write_atomic_async", counting)
    for burst in range(2):
        for agent_id in view.agents:
            view.agents[agent_id] = replace(view.agents[agent_id], turn=burst + 1)
            writer.changed()
        await eventually(lambda: writer.idle, "the summary written")
        saved = json.loads(run.summary_path.read_text(encoding="utf-8"))
        assert {a["turns"] for a in saved["agents"]} == {burst + 1}
        assert len(written) == burst + 1
    await writer.close(RunStatus.COMPLETED)
    assert json.loads(run.summary_path.read_text(encoding="utf-8"))["status"] == "completed"
    assert len(written) == 3
