"""The JSON Schema of ``research_config.yaml``, shipped as ``core/config/schema.json`` for editors.

Point an editor at it with ``# yaml-language-server: $schema=./core/config/schema.json`` on the first
line of the config. Regenerate after changing :mod:`core.config.model` with ``python -m core.config.schema``;
a test fails while the shipped file is stale. The ``schema`` command prints the shipped file, so it
answers without importing pydantic or building the model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).with_name("schema.json")
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_document() -> dict[str, Any]:
    """The schema as pydantic generates it, with the dialect and a title an editor can show."""
    from core.config.model import ResearchConfig  # here: printing the shipped file needs no model

    generated = ResearchConfig.model_json_schema()
    generated.pop("title", None)
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "research-orchestrator research program",
        **generated,
    }


def render_schema() -> str:
    """The exact text of the shipped file (stable key order, trailing newline)."""
    return json.dumps(schema_document(), indent=2, ensure_ascii=False) + "\n"


def shipped_schema() -> str:
    """The shipped file's text, which is :func:`render_schema`'s (a test keeps them equal); rendered
    afresh if an installation lacks the file."""
    try:
        return SCHEMA_PATH.read_text(encoding="utf-8")
    except OSError:
        return render_schema()


def write_schema(path: str | Path = SCHEMA_PATH) -> Path:
    target = Path(path)
    target.write_text(render_schema(), encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m core.config.schema [PATH]``: (re)write the schema file."""
    args = sys.argv[1:] if argv is None else argv
    written = write_schema(args[0] if args else SCHEMA_PATH)
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
