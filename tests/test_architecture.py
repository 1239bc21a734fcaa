"""Import contracts between the packages, checked over every import statement (function-level ones too).

``core`` runs without the terminal app (and so do its tests); the configuration is read without the
simulator server or the SDK; the simulator is served without the engine. A violation fails the build
with its file and line.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Contract:
    """Modules under ``source`` import nothing under any of ``forbidden`` (package prefixes)."""

    source: str
    forbidden: tuple[str, ...]
    why: str


CONTRACTS = (
    Contract("core", ("tui", "textual"), "core runs headless; the app builds on it, never the reverse"),
    Contract(
        "core.config",
        ("core.simulator", "core.engine", "aiohttp", "anthropic"),
        "reading a config (validate, --help, the app's estimate) must not load the server or the SDK",
    ),
    Contract("core.simulator", ("core.engine",), "the simulator stays importable without the engine"),
    *(
        Contract(
            shared,
            ("tui", "textual", "tests.tui"),
            "core's tests run without the app: what they share with its tests lives in tests/ itself",
        )
        for shared in ("tests.core", "tests.waits", "tests.sample_events")
    ),
)


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # what it imports (a module, or module.name for ``from module import name``)
    where: str  # file:line


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_in(source: str, module: str, *, is_package: bool, filename: str) -> Iterator[Import]:
    """Every import in ``source``: statements at any depth, and ``importlib.import_module("...")`` calls."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source, filename=filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, where)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield Import(module, base, where)
            for alias in node.names:
                yield Import(module, f"{base}.{alias.name}", where)
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))
            )
        ):
            yield Import(module, node.args[0].value, where)


def all_imports(package: str) -> list[Import]:
    found: list[Import] = []
    for path in sorted((ROOT / package.replace(".", "/")).rglob("*.py")):
        found += imports_in(
            path.read_text(encoding="utf-8"),
            module_name(path),
            is_package=path.name == "__init__.py",
            filename=str(path.relative_to(ROOT)),
        )
    return found


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(contract: Contract, imports: list[Import]) -> list[str]:
    return sorted(
        {
            f"{i.where}: {i.module} imports {i.target} ({contract.why})"
            for i in imports
            if within(i.module, contract.source) and any(within(i.target, f) for f in contract.forbidden)
        }
    )


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.source)
def test_import_contract(contract: Contract) -> None:
    imports = all_imports(contract.source.split(".")[0])
    assert any(within(i.module, contract.source) for i in imports), f"no module under {contract.source}"
    assert violations(contract, imports) == []


@pytest.mark.parametrize(
    "statement",
    [
        "def f():\n    import tui.app\n",
        "def f():\n    from tui import app\n",
        "class A:\n    def f(self):\n        from textual.app import App\n",
        "import importlib\nimportlib.import_module('tui.app')\n",
        "from ..tui import app\n",
        "if True:\n    import textual\n",
    ],
)
def test_the_checker_sees_imports_at_any_depth(statement: str) -> None:
    """The contract test can fail: hidden and nested imports of ``tui`` from core are all reported."""
    found = list(imports_in(statement, "core.cli", is_package=False, filename="core/cli.py"))
    assert violations(CONTRACTS[0], found), found


def test_relative_imports_resolve_to_their_package() -> None:
    found = imports_in(
        "from .server import x\nfrom . import sse\n",
        "core.simulator",
        is_package=True,
        filename="core/simulator/__init__.py",
    )
    assert {i.target for i in found} >= {"core.simulator.server", "core.simulator.sse"}


def test_every_package_ships_in_the_wheel() -> None:
    """pyproject lists its packages (themes/ is mapped in by name); a new sub-package must be added."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    on_disk = {module_name(init) for top in ("core", "tui") for init in (ROOT / top).rglob("__init__.py")}
    listed = set(setuptools["packages"])
    assert listed == on_disk | {"tui.builtin_themes"}, (
        f"add to [tool.setuptools] packages in pyproject.toml: {sorted(on_disk - listed)}; "
        f"remove: {sorted(listed - on_disk - {'tui.builtin_themes'})}"
    )
    assert setuptools["package-dir"] == {"tui.builtin_themes": "themes"}
    assert (ROOT / "themes" / "__init__.py").is_file()
