"""Print a pip constraints file that pins every direct dependency to the lower bound pyproject.toml
allows, for the runtime and the given extras (``python .ci/lowest_constraints.py test``).

CI installs the project with it into a second environment and runs the tests there, so a lower
bound nobody tests cannot stay in ``pyproject.toml``: when this run fails, raise the bound.
Transitive dependencies resolve as usual (as a user with an old SDK pinned would get them).
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement


def lower_bounds(pyproject: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    specs = list(project["dependencies"])
    for extra in extras:
        specs += project["optional-dependencies"][extra]
    pins: list[str] = []
    for spec in specs:
        requirement = Requirement(spec)
        floors = [s.version for s in requirement.specifier if s.operator in (">=", "==", "~=")]
        if not floors:
            raise SystemExit(f"{pyproject}: '{spec}' has no lower bound; give it one (>=) so CI tests it")
        pins.append(f"{requirement.name}=={floors[0]}")
    return pins


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    print("\n".join(lower_bounds(root / "pyproject.toml", sys.argv[1:])))
