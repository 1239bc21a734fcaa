"""Import contracts between the packages: the layers of ``core``, the imports it must never make, no cycles.

The contracts live in pyproject.toml (``[tool.importlinter]``) and are checked by ``lint-imports``,
in CI (.ci/run) and here: ``core`` runs without the terminal app (and so do its tests); the
configuration is read without the simulator server or the SDK; the simulator is served without the
engine; a lower layer never imports a higher one. What import-linter cannot see, a module imported
by a name in a string, is refused in the code under contract.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def lint_imports(root: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` (as CI runs it) on the tree at ``root``, with the contracts in its pyproject.toml."""
    selected = [arg for contract in contracts for arg in ("--contract", contract)]
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", *selected],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_import_contracts_hold() -> None:
    """Layers, the forbidden imports and no cycles, over every import statement (function-level and
    TYPE_CHECKING ones too): the contracts in pyproject.toml, as .ci/run checks them."""
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    assert {c["id"] for c in declared["contracts"]} >= {"layers", "core-without-app", "config-light"}
    assert f"Contracts: {len(declared['contracts'])} kept, 0 broken." in result.stdout


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the packages under contract and of pyproject.toml, checked clean once."""
    root = tmp_path_factory.mktemp("tree")
    for top in ("core", "tui", "tests"):
        shutil.copytree(ROOT / top, root / top, ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
    shutil.copy(ROOT / "pyproject.toml", root)
    clean = lint_imports(root, "layers")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    return root


@pytest.mark.parametrize(
    ("module", "upward"),
    [
        ("core/persistence/journal.py", "from core.engine import orchestrator"),  # a store reaching up
        ("core/events.py", "import core.view"),  # below the fold it feeds
        ("core/config/loader.py", "def f() -> None:\n    from core.budget import ledger"),  # in a function
    ],
)
def test_an_upward_import_breaks_the_layers_contract(tree: Path, module: str, upward: str) -> None:
    """The contract can fail: in a copy of the tree, one import from a lower layer to a higher one
    makes ``lint-imports`` exit non-zero, naming the contract and the importing module."""
    target = tree / module
    original = target.read_text(encoding="utf-8")
    target.write_text(original + "\n" + upward + "\n", encoding="utf-8")
    try:
        result = lint_imports(tree, "layers")
    finally:
        target.write_text(original, encoding="utf-8")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "core's layers" in result.stdout and "BROKEN" in result.stdout
    assert f"{module.removesuffix('.py').replace('/', '.')} -> " in result.stdout, result.stdout


#: What import-linter cannot see: a module imported by a name written in a string. Code under contract
#: has none (a name computed from what is there, such as every module of a package, is not a dependency).
DYNAMIC_IMPORTS = ("import_module", "__import__")


def dynamic_imports(source: str, filename: str) -> list[str]:
    """``importlib.import_module("...")`` and ``__import__("...")`` calls, at any depth, as file:line."""
    return [
        f"{filename}:{node.lineno}"
        for node in ast.walk(ast.parse(source, filename=filename))
        if isinstance(node, ast.Call)
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
        and (
            (isinstance(node.func, ast.Attribute) and node.func.attr in DYNAMIC_IMPORTS)
            or (isinstance(node.func, ast.Name) and node.func.id in DYNAMIC_IMPORTS)
        )
    ]


@pytest.mark.parametrize("package", ["core", "tests/core"])
def test_code_under_contract_imports_nothing_by_a_name_in_a_string(package: str) -> None:
    found = [
        where
        for path in sorted((ROOT / package).rglob("*.py"))
        for where in dynamic_imports(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    ]
    assert found == [], "import these by a statement, so the import contracts see them"


@pytest.mark.parametrize(
    "statement",
    [
        "import importlib\nimportlib.import_module('tui.app')\n",
        "from importlib import import_module\ndef f():\n    import_module('textual')\n",
        "class A:\n    def f(self):\n        __import__('tui')\n",
    ],
)
def test_the_checker_sees_dynamic_imports_at_any_depth(statement: str) -> None:
    assert dynamic_imports(statement, "core/cli.py")
    assert not dynamic_imports(
        "import importlib\nfor name in names:\n    importlib.import_module(name)\n", "x.py"
    )


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
