"""Small research programs for engine tests, written as real YAML files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = ROOT / "research_config.yaml"


def agent(agent_id: str, brief: str = "", **extra: Any) -> dict[str, Any]:
    return {"id": agent_id, "brief": brief or f"Research the {agent_id} angle.", **extra}


def program(
    *layers: list[dict[str, Any]],
    max_turns: int = 2,
    simulator: dict[str, Any] | None = None,
    execution: dict[str, Any] | None = None,
    defaults: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "program": {"name": "test-program", "question": "How fast is sodium-ion storage growing?"},
        "defaults": {"max_turns": max_turns, "max_tokens": 2048, **(defaults or {})},
        "layers": [{"name": f"layer-{i}", "agents": agents} for i, agents in enumerate(layers, start=1)],
        "execution_settings": execution or {},
        "simulator": {
            "seed": 3,
            "latency_ms": 0,
            "tokens_per_second": 0,
            "pause_turn_probability": 0.0,
            **(simulator or {}),
        },
    }


def write(tmp_path: Path, data: dict[str, Any], name: str = "config.yaml") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def default_program_fast(tmp_path: Path, **simulator: Any) -> Path:
    """The shipped example program, with the simulator's pacing turned off for speed."""
    data = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    data["simulator"] = {"seed": 7, "latency_ms": 0, "tokens_per_second": 0, **simulator}
    return write(tmp_path, data)
