"""Every file the code, the README or the architecture document cites exists in the repository.

A maintainer has only the repository: a comment that points at a design note or a fixture kept
somewhere else (``DESIGN.md`` outside it, ``/work/shared/…``) is a dead end for them.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A relative path with a directory and an extension we keep in the repository.
CITED = re.compile(
    r"(?<![\w/.-])(?:[A-Za-z0-9_.-]+/)+[A-Za-z0-9_.-]+\.(?:md|json|jsonl|sse|py|yaml|yml|toml|tcss)\b"
)
# Paths inside a run directory or a user's home: examples of what the product writes, not citations.
RUN_FILES = re.compile(r"^(?:runs|reports|checkpoints|inflight|r|~|\.config)/|<|\bRUN\b")
DOCUMENT_NAME = re.compile(r"\b[A-Z][A-Z_]+\.md\b")


def cited_by() -> dict[str, list[str]]:
    """Cited path -> the files that cite it, in core/, tui/, benchmarks/, the README and docs/."""
    sources = [
        *ROOT.glob("core/**/*.py"),
        *ROOT.glob("tui/**/*.py"),
        *ROOT.glob("benchmarks/*.py"),
        ROOT / "README.md",
        ROOT / "docs" / "ARCHITECTURE.md",
    ]
    cites: dict[str, list[str]] = {}
    for source in sources:
        text = source.read_text(encoding="utf-8")
        for path in [*CITED.findall(text), *DOCUMENT_NAME.findall(text)]:
            if not RUN_FILES.search(path):
                cites.setdefault(path, []).append(str(source.relative_to(ROOT)))
    return cites


def exists(path: str) -> bool:
    """A path from the repository's root, or a document in docs/."""
    return (ROOT / path).exists() or (ROOT / "docs" / Path(path).name).exists()


def test_the_architecture_document_is_in_the_repository() -> None:
    assert (ROOT / "docs" / "ARCHITECTURE.md").is_file()
    assert "docs/ARCHITECTURE.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_cited_file_exists() -> None:
    cites = cited_by()
    assert "docs/ARCHITECTURE.md" in cites  # the scan finds citations at all
    missing = {path: sources for path, sources in cites.items() if not exists(path)}
    assert not missing, f"cited but not in the repository: {missing}"


def test_a_citation_of_a_missing_file_is_found(tmp_path: Path) -> None:
    text = "see ``docs/NOWHERE.md`` and core/engine/missing.py; runs/<run_id>/summary.json is an example"
    found = [p for p in [*CITED.findall(text), *DOCUMENT_NAME.findall(text)] if not RUN_FILES.search(p)]
    assert found == ["docs/NOWHERE.md", "core/engine/missing.py", "NOWHERE.md"]
    assert not any(exists(p) for p in found)
