"""Every number of the config is finite, positive where it is a price, cap or limit, and bounded:
``.inf``, ``nan`` and ``true`` are errors naming the key, and so is a limit no run could use."""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel

from core.config.loader import ConfigError, load_config
from core.config.model import AgentConfig, BudgetSettings, ExecutionSettings, PricingSettings, ResearchConfig

BASE: dict[str, Any] = {
    "program": {"name": "p", "question": "q"},
    "layers": [{"name": "l", "agents": [{"id": "a", "brief": "b"}]}],
}


def _numeric(annotation: Any) -> bool:
    if annotation in (int, float):
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_numeric(a) for a in get_args(annotation))
    return False


def _model(annotation: Any) -> type[BaseModel] | None:
    """The section a field holds (itself or optional), not a list or mapping of them."""
    if get_origin(annotation) not in (None, Union, types.UnionType):
        return None
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def numeric_paths(model: type[BaseModel], prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """Key paths of every number the product's own sections hold (the simulator's are not money)."""
    for name, field in model.model_fields.items():
        if _numeric(field.annotation):
            yield (*prefix, name)
        elif (sub := _model(field.annotation)) is not None and name != "simulator":
            yield from numeric_paths(sub, (*prefix, name))


PATHS = [
    *numeric_paths(ResearchConfig, ()),
    *(("pricing", "models", "m", name) for name in ("input", "output", "cache_write_5m", "cache_read")),
    *(("layers", 0, "agents", 0, n) for n, f in AgentConfig.model_fields.items() if _numeric(f.annotation)),
]


def config_with(tmp_path: Path, path: tuple[Any, ...], value: Any) -> Path:
    data = yaml.safe_load(yaml.safe_dump(BASE))
    node = data
    for key in path[:-1]:
        if isinstance(key, int):
            node = node[key]
        else:
            node = node.setdefault(key, {} if key != "m" else {"input": 1.0, "output": 1.0})
    node[path[-1]] = value
    target = tmp_path / "research_config.yaml"
    target.write_text(yaml.safe_dump(data), encoding="utf-8")
    return target


def test_the_walk_finds_the_money_and_the_limits() -> None:
    names = {p[-1] for p in PATHS}
    expected = {"max_cost_usd", "max_searches", "max_turns", "max_uses", "max_tokens", "input", "max_delay_s"}
    assert expected <= names
    assert len(PATHS) >= 25


@pytest.mark.parametrize("path", PATHS, ids=lambda p: ".".join(map(str, p)))
@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan"), True, False, 10**15])
def test_a_bad_number_is_an_error_naming_its_key(tmp_path: Path, path: tuple[Any, ...], bad: Any) -> None:
    if bad == 10**15 and path[-1] in ("reserve_for_later_layers", "compact_at_fraction"):
        bad = 2  # shares have their own upper bound of one
    with pytest.raises(ConfigError) as caught:
        load_config(config_with(tmp_path, path, bad))
    dotted = ".".join(f"[{k}]" if isinstance(k, int) else k for k in path).replace(".[", "[")
    assert dotted in str(caught.value), str(caught.value)


@pytest.mark.parametrize(
    "section", [BudgetSettings, PricingSettings, ExecutionSettings], ids=lambda m: m.__name__
)
def test_the_defaults_are_valid(section: type[BaseModel]) -> None:
    section()


def test_checkpoints_cannot_be_disabled_for_a_capped_run(tmp_path: Path) -> None:
    settings = {"checkpoints": {"enabled": False}, "budget": {"max_cost_usd": 1.0}}
    data = {**BASE, "execution_settings": settings}
    path = tmp_path / "research_config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"checkpoints\.enabled: false cannot be used with budget caps"):
        load_config(path)
    settings["budget"] = {}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    load_config(path)  # an uncapped run may skip checkpoints
