"""Pydantic validation errors in plain words, naming the offending value and, for typos, the fix.

A config is written by people, not programs: "Input should be a valid integer" becomes "expected an
integer, got 'abc'", and an unknown key says which key was probably meant or where it belongs.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from core.config.model import AGENT_ID_PATTERN, Loc, ResearchConfig, did_you_mean


def trim_loc(loc: tuple[int | str, ...]) -> Loc:
    """Drop pydantic's ``[key]`` marker: the path already ends at the offending key."""
    return tuple(part for part in loc if part != "[key]")


_EXPECTED = {
    "int_parsing": "expected an integer",
    "int_type": "expected an integer",
    "int_from_float": "expected a whole number",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected text",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "dict_type": "expected a mapping (key: value pairs)",
    "model_type": "expected a mapping (key: value pairs)",
    "model_attributes_type": "expected a mapping (key: value pairs)",
    "finite_number": "expected a finite number",
}
_BOUNDS = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}


def plain_message(error: ErrorDetails) -> str:
    """What is wrong with the value at ``error["loc"]``, in the words of someone editing YAML."""
    kind, loc, value = error["type"], trim_loc(error["loc"]), error.get("input")
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    if kind == "extra_forbidden":
        return _unknown_key_message(loc)
    if kind == "missing":
        if loc and isinstance(loc[-1], int) and isinstance(value, (list, tuple)):
            return f"expected {loc[-1] + 1} items, got {len(value)}"
        return "missing required field"
    if kind in _EXPECTED:
        return f"{_EXPECTED[kind]}, got {describe(value)}"
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        return f"must be {words} {_number(ctx[key])}, got {describe(value)}"
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        hint = did_you_mean(str(value), options)
        return f"expected one of {', '.join(options)}; got {describe(value)}{hint}"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == AGENT_ID_PATTERN:
        return (
            f"{describe(value)} is not a valid name: use lowercase letters, digits, '-' and '_' "
            "(at most 64), starting with a letter or digit"
        )
    if kind == "string_too_short":
        minimum = ctx.get("min_length", 1)
        return "must not be empty" if minimum == 1 else f"must be at least {minimum} characters long"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters long, got {describe(value)}"
    if kind == "too_short":
        minimum = ctx.get("min_length", 1)
        return "must not be empty" if minimum == 1 else f"expected at least {minimum} items"
    if kind == "too_long":
        return f"expected at most {ctx.get('max_length')} items"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return error["msg"]


def _unknown_key_message(loc: Loc) -> str:
    key = str(loc[-1])
    model = _model_at(loc[:-1])
    if model is None:
        return f"unknown key '{key}'"
    homes = _homes_of(key)
    if homes:  # a real key in the wrong place is likelier than a typo that happens to spell one
        return f"unknown key '{key}' here; it belongs under {' or '.join(homes[:3])}"
    valid = list(model.model_fields)
    hint = did_you_mean(key, valid)
    if hint:
        return f"unknown key '{key}'{hint}"
    return f"unknown key '{key}' (valid keys: {', '.join(valid)})"


def _homes_of(key: str, model: type[BaseModel] = ResearchConfig, prefix: str = "") -> list[str]:
    """Where a key is valid elsewhere, e.g. ``budget`` -> ``execution_settings``: settings get misplaced."""
    homes: list[str] = []
    for name, field in model.model_fields.items():
        if name == key:
            homes.append(prefix or "the top level")
        inner = _unwrap(field.annotation)
        suffix = ""
        while typing.get_origin(inner) in (list, dict):
            suffix += "[]" if typing.get_origin(inner) is list else ".<name>"
            inner = _unwrap(typing.get_args(inner)[-1])
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            homes += _homes_of(key, inner, f"{prefix}.{name}{suffix}" if prefix else f"{name}{suffix}")
    return homes


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``loc``: used to list its valid keys."""
    annotation: object = ResearchConfig
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and isinstance(part, str):
            field = annotation.model_fields.get(part)
            if field is None:
                return None
            annotation = field.annotation
        elif typing.get_origin(annotation) in (list, tuple, dict):
            annotation = typing.get_args(annotation)[-1]
        else:
            return None
    annotation = _unwrap(annotation)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _unwrap(annotation: object) -> object:
    """``X | None`` -> ``X``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(options) == 1:
            return options[0]
    return annotation


def describe(value: object) -> str:
    """A value as a user would recognise it from their YAML."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"'{shown}'"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return str(value)


def _number(value: object) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
