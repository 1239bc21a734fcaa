"""Generated tool inputs satisfy their JSON Schema, checked by pydantic (an independent validator)."""

from __future__ import annotations

import random
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field

from core.simulator.schema_values import generate


class Units(StrEnum):
    CELSIUS = "c"
    FAHRENHEIT = "f"


class Weather(BaseModel):
    model_config = ConfigDict(extra="forbid")
    location: str
    units: Units


class Address(BaseModel):
    street: str
    city: Annotated[str, Field(min_length=2, max_length=12)]
    postcode: str | None = None


class Person(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    age: Annotated[int, Field(ge=0, le=130)]
    score: Annotated[float, Field(gt=0, lt=1)]
    tags: Annotated[list[str], Field(min_length=2, max_length=4)]
    address: Address
    friends: list[Address] = []
    role: Literal["admin", "user"]
    born: date
    seen: datetime
    ratings: dict[str, int] = {}
    flag: bool
    maybe: int | None
    step: Annotated[int, Field(multiple_of=5, ge=10, le=40)]
    pair: tuple[int, str]


class Tree(BaseModel):
    label: str
    children: list[Tree] = []


class Union(BaseModel):
    value: Weather | Person
    kind: Literal["fixed"] = "fixed"


MODELS: list[type[BaseModel]] = [Weather, Address, Person, Tree, Union]


@pytest.mark.parametrize("model", MODELS, ids=[m.__name__ for m in MODELS])
@given(seed=st.integers(0, 2**32))
def test_generated_values_validate_against_the_pydantic_schema(model: type[BaseModel], seed: int) -> None:
    schema = model.model_json_schema()
    value = generate(schema, random.Random(seed), ["grid", "storage", "sodium"])

    model.model_validate(value)


RAW: list[tuple[dict[str, Any], Any]] = [
    ({"type": "integer", "exclusiveMinimum": 3, "exclusiveMaximum": 5}, {4}),
    ({"type": "number", "maximum": -10}, None),
    ({"const": "exact"}, {"exact"}),
    ({"enum": [1, "two", None]}, {1, "two", None}),
    ({"type": ["null", "boolean"]}, {True, False}),
    ({"type": "array", "items": {"enum": ["a", "b"]}, "uniqueItems": True, "minItems": 2}, None),
    ({"type": "string", "minLength": 30}, None),
    ({"type": "object", "additionalProperties": False}, [{}]),
]


@pytest.mark.parametrize(("schema", "allowed"), RAW, ids=[str(s) for s, _ in RAW])
def test_raw_schemas_get_valid_values(schema: dict[str, Any], allowed: Any) -> None:
    for seed in range(30):
        value = generate(schema, random.Random(seed), ["word"])
        if allowed is not None:
            assert value in allowed, value
        if schema.get("type") == "number":
            assert value <= -10
        if schema.get("uniqueItems"):
            assert sorted(value) == ["a", "b"]
        if schema.get("minLength"):
            assert len(value) >= 30
