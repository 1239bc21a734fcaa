"""The shipped JSON Schema is exactly what the config model generates, so editors never see a stale one."""

from __future__ import annotations

import json
from pathlib import Path

from core.config.schema import SCHEMA_DIALECT, SCHEMA_PATH, render_schema, schema_document, write_schema


def test_shipped_schema_matches_the_model() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render_schema(), (
        "core/config/schema.json is stale: run `python -m core.config.schema`"
    )


def test_schema_names_its_dialect_and_the_config_sections() -> None:
    schema = schema_document()
    assert schema["$schema"] == SCHEMA_DIALECT
    assert schema["title"] == "research-orchestrator research program"
    assert set(schema["properties"]) == {
        "program",
        "defaults",
        "layers",
        "execution_settings",
        "pricing",
        "simulator",
    }
    assert schema["required"] == ["program", "layers"]
    assert schema["additionalProperties"] is False


def test_agents_forbid_unknown_keys_so_editors_flag_typos() -> None:
    agent = schema_document()["$defs"]["AgentConfig"]
    assert agent["additionalProperties"] is False
    assert {"id", "brief", "max_turns", "max_searches", "reads"} <= set(agent["properties"])


def test_write_schema_writes_the_rendered_text(tmp_path: Path) -> None:
    target = write_schema(tmp_path / "schema.json")
    assert json.loads(target.read_text(encoding="utf-8")) == schema_document()
