"""The shipped JSON Schema is exactly what the config model generates, so editors never see a stale one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.config.schema import (
    SCHEMA_DIALECT,
    SCHEMA_PATH,
    render_schema,
    schema_document,
    shipped_schema,
    write_schema,
)


def test_shipped_schema_matches_the_model() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render_schema(), (
        "core/config/schema.json is stale: run `python -m core.config.schema`"
    )


def test_the_schema_command_prints_the_shipped_file_or_renders_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """``research-orchestrator schema`` prints the shipped file (no model to build), else the model's."""
    assert shipped_schema() == render_schema()
    monkeypatch.setattr("core.config.schema.SCHEMA_PATH", Path("no-such-dir") / "schema.json")
    assert shipped_schema() == render_schema()


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
        "network",
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


def test_the_shipped_config_points_editors_at_the_shipped_schema() -> None:
    """The ``yaml-language-server`` modeline resolves (from the config's folder) to the schema file."""
    config = Path(__file__).resolve().parents[3] / "research_config.yaml"
    modeline = config.read_text(encoding="utf-8").splitlines()[0]
    prefix = "# yaml-language-server: $schema="
    assert modeline.startswith(prefix), modeline
    target = (config.parent / modeline.removeprefix(prefix).strip()).resolve()
    assert target == SCHEMA_PATH.resolve() and target.is_file()
