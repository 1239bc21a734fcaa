"""No config crashes or hangs the loader: every input gives exit 0 or 2, quickly, without a traceback.

Generated inputs cover YAML structure (nesting, aliases, flow and block styles), values (huge and
non-finite numbers, control characters, odd keys) and mutations of a valid program; the hostile
cases seen in the wild (deep nesting, billion laughs, recursive aliases, oversized files) are
named explicitly.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.cli import main
from core.config.loader import MAX_CONFIG_BYTES
from tests.core import programs

DEADLINE_S = 5.0
KEYS = [
    "program", "name", "question", "layers", "agents", "id", "brief", "reads", "defaults", "model",
    "max_turns", "max_tokens", "execution_settings", "budget", "max_cost_usd", "retry", "pricing",
    "models", "input", "output", "web_search", "max_uses", "simulator", "<<", "",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["\x1b[31m", "\x00", "\u202e", "a\x07b", "1e999", "-.inf", ".nan", "0x1F", "~"]),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=12))
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.dictionaries(keys, inner, max_size=6),
    ),
    max_leaves=40,
)


def check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | bytes, commands: tuple[str, ...]
) -> None:
    path = tmp_path / "config.yaml"
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    else:
        path.write_bytes(text)
    for command in commands:
        started = time.monotonic()
        code = main([command, str(path)])
        elapsed = time.monotonic() - started
        out = capsys.readouterr()
        assert code in (0, 2), (command, code, out.err[-500:])
        assert elapsed < DEADLINE_S, (command, elapsed)
        assert "Traceback" not in out.out + out.err


def mutate(data: Any, path: list[int], value: Any) -> Any:
    """Replace the node reached by following ``path`` (indexes modulo each container's size)."""
    if not path or not isinstance(data, dict | list) or not data:
        return value
    if isinstance(data, dict):
        key = list(data)[path[0] % len(data)]
        return {**data, key: mutate(data[key], path[1:], value)}
    index = path[0] % len(data)
    return [*data[:index], mutate(data[index], path[1:], value), *data[index + 1 :]]


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(document=documents, flow=st.booleans())
def test_any_yaml_structure_exits_0_or_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: Any, flow: bool
) -> None:
    text = yaml.safe_dump(document, default_flow_style=flow, allow_unicode=True)
    check(tmp_path, capsys, text, ("validate",))


@FUZZ
@given(path=st.lists(st.integers(min_value=0, max_value=50), max_size=6), value=documents)
def test_any_mutation_of_a_valid_program_exits_0_or_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], path: list[int], value: Any
) -> None:
    data = programs.program([programs.agent("a"), programs.agent("b")], [programs.agent("c", reads=["a"])])
    text = yaml.safe_dump(mutate(data, path, value), allow_unicode=True)
    check(tmp_path, capsys, text, ("validate",))


@FUZZ
@given(text=st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_any_text_or_bytes_exit_0_or_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | bytes
) -> None:
    check(tmp_path, capsys, text, ("validate",))


def _laughs(levels: int, fan: int) -> str:
    lines = ["l0: &l0 [" + ", ".join(["lol"] * fan) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * fan) + "]")
    return "\n".join(lines) + "\n"


VALID = yaml.safe_dump(programs.program([programs.agent("a")]))
HOSTILE = {
    "100k nested [": "program: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "100k nested {": "a: " + "{b: " * 100_000 + "c" + "}" * 100_000 + "\n",
    "deep block mapping": "".join("  " * i + f"k{i}:\n" for i in range(500)) + "  " * 500 + "v\n",
    "billion laughs": _laughs(9, 10),
    "laughs as a program": _laughs(9, 10) + VALID,
    "recursive alias": "a: &a [*a]\n",
    "recursive mapping": "a: &a {b: *a}\n",
    "alias chain": "".join(f"a{i}: &a{i} [*a{i - 1}]\n" if i else "a0: &a0 [x]\n" for i in range(3000)),
    "5000-digit integer": VALID.replace("max_turns: 2", "max_turns: " + "9" * 5000),
    "control characters in names": VALID.replace("name: test-program", 'name: "x\\e]0;pwned\\a"'),
    "oversized file": "program: {name: x, question: '" + "q" * MAX_CONFIG_BYTES + "'}\n",
    "NUL byte": "program:\x00\n",
    "merge key bomb": "a: &a {x: 1}\n" + "".join(f"b{i}: &b{i} {{<<: [*a, *a]}}\n" for i in range(200)),
    # The numeric bounds of the model (issue 9): refused before anything is sized by them.
    "max_turns 1e9": VALID.replace("max_turns: 2", "max_turns: 1000000000"),
    "max_turns 1e9 as a float": VALID.replace("max_turns: 2", "max_turns: 1.0e9"),
    "max_uses 1e6": VALID.replace("max_turns: 2", "max_turns: 2\n  web_search: {max_uses: 1000000}"),
    "an infinite price": VALID + "pricing:\n  models:\n    claude-sonnet-5: {input: .inf, output: 1}\n",
    "a NaN cap": VALID.replace(
        "execution_settings: {}", "execution_settings: {budget: {max_cost_usd: .nan}}"
    ),
    "20,000 agents": yaml.safe_dump(programs.program([programs.agent(f"a{i}") for i in range(20_000)])),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_configs_are_refused_quickly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    check(tmp_path, capsys, HOSTILE[case], ("validate", "estimate"))


def test_a_fifo_or_a_device_is_refused_not_read_forever(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        started = time.monotonic()
        assert main(["validate", str(path)]) == 2
        assert time.monotonic() - started < DEADLINE_S
        assert "Traceback" not in capsys.readouterr().out
