"""A JSON value that satisfies a JSON Schema: the input of a simulated ``tool_use``.

Covers what tool definitions and structured outputs use in practice (pydantic, zod, instructor,
LiteLLM): ``type`` (or a list of types), ``properties``/``required``/``additionalProperties``,
``items``/``prefixItems`` with length bounds, ``enum``/``const``, numeric bounds and ``multipleOf``,
string lengths and common ``format``s, ``anyOf``/``oneOf``/``allOf``, ``$ref`` into ``$defs``/
``definitions``, and ``default``. Every choice comes from the caller's ``random.Random``.
"""

from __future__ import annotations

import math
import random
from typing import Any

MAX_DEPTH = 6
_FORMATS = {
    "date": "2026-03-14",
    "date-time": "2026-03-14T09:30:00Z",
    "time": "09:30:00",
    "email": "someone@example.com",
    "uri": "https://www.example.com/",
    "url": "https://www.example.com/",
    "uuid": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "hostname": "www.example.com",
    "duration": "P1D",
}


class _Generator:
    def __init__(self, root: dict[str, Any], rng: random.Random, words: list[str]) -> None:
        self.root = root
        self.rng = rng
        self.words = words or ["simulated", "value"]

    def value(self, schema: Any, name: str, depth: int) -> Any:
        if not isinstance(schema, dict) or schema is True:
            return self.text(name, {})
        if "$ref" in schema:
            return self.value(self.resolve(str(schema["$ref"])), name, depth + 1)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self.rng.choice(schema["enum"])
        if "allOf" in schema and isinstance(schema["allOf"], list):
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self.resolve(part["$ref"]) if isinstance(part, dict) and "$ref" in part else part
                if isinstance(part, dict):
                    merged = _merge(merged, part)
            return self.value(merged, name, depth + 1)
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                concrete = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
                return self.value(concrete[0] if concrete else options[0], name, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = _implied_type(schema)
        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, name, depth)
        if kind == "integer":
            return self.integer(schema)
        if kind == "number":
            return self.number(schema)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self.text(name, schema)

    def resolve(self, ref: str) -> dict[str, Any]:
        node: Any = self.root
        if ref.startswith("#"):
            for part in ref.lstrip("#/").split("/"):
                if not part:
                    continue
                node = (
                    node.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(node, dict) else {}
                )
        return node if isinstance(node, dict) else {}

    def object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        declared = schema.get("properties")
        properties: dict[str, Any] = declared if isinstance(declared, dict) else {}
        required = [r for r in schema.get("required") or [] if isinstance(r, str)]
        result: dict[str, Any] = {}
        for key, sub in properties.items():
            optional = key not in required
            if optional and (depth >= MAX_DEPTH or self.rng.random() < 0.4):
                continue
            if isinstance(sub, dict) and "default" in sub and optional:
                result[key] = sub["default"]
                continue
            result[key] = self.value(sub, key, depth + 1)
        extra = schema.get("additionalProperties")
        for key in required:  # required without a declared schema
            if key not in result:
                result[key] = self.value(
                    extra if isinstance(extra, dict) else {"type": "string"}, key, depth + 1
                )
        minimum = schema.get("minProperties")
        if isinstance(minimum, int) and extra is not False:
            sub_schema = extra if isinstance(extra, dict) else {"type": "string"}
            while len(result) < minimum:
                result[f"key_{len(result)}"] = self.value(sub_schema, "value", depth + 1)
        return result

    def array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        declared = schema.get("prefixItems")
        prefix: list[Any] = declared if isinstance(declared, list) else []
        items = schema.get("items")
        low = int(schema.get("minItems", 0) or 0)
        high = schema.get("maxItems")
        count = max(low, len(prefix), 0 if depth >= MAX_DEPTH else self.rng.randint(1, 3))
        if isinstance(high, int):
            count = min(count, high)
        if items is False:
            count = min(count, len(prefix))
        values: list[Any] = []
        for i in range(count):
            sub = prefix[i] if i < len(prefix) else items if isinstance(items, dict) else {"type": "string"}
            value = self.value(sub, name, depth + 1)
            if schema.get("uniqueItems") and value in values:
                value = self.unique_variant(sub, name, depth, values)
                if value is None:
                    break
            values.append(value)
        return values

    def unique_variant(self, sub: Any, name: str, depth: int, taken: list[Any]) -> Any:
        for _ in range(20):
            value = self.value(sub, name, depth + 1)
            if value not in taken:
                return value
        return None

    def integer(self, schema: dict[str, Any]) -> int:
        low, high = _bounds(schema, integer=True)
        step = schema.get("multipleOf")
        if isinstance(step, int) and step > 0:
            first = math.ceil(low / step)
            last = math.floor(high / step)
            return step * self.rng.randint(first, max(first, last))
        return self.rng.randint(int(low), int(max(low, high)))

    def number(self, schema: dict[str, Any]) -> float | int:
        step = schema.get("multipleOf")
        if isinstance(step, (int, float)) and step > 0:
            low, high = _bounds(schema, integer=False)
            first, last = math.ceil(low / step), math.floor(high / step)
            return step * self.rng.randint(first, max(first, last))
        low, high = _bounds(schema, integer=False)
        return round(self.rng.uniform(low, high), 2) if high > low + 0.02 else low

    def text(self, name: str, schema: dict[str, Any]) -> str:
        fmt = schema.get("format")
        if isinstance(fmt, str) and fmt in _FORMATS:
            return _FORMATS[fmt]
        words = self.rng.sample(self.words, k=min(len(self.words), self.rng.randint(1, 3)))
        value = " ".join(words)
        low = int(schema.get("minLength", 0) or 0)
        high = schema.get("maxLength")
        while len(value) < low:
            value += " " + self.rng.choice(self.words)
        if isinstance(high, int):
            value = value[:high].rstrip() or value[:high]
        return value


def _implied_type(schema: dict[str, Any]) -> str:
    if "properties" in schema or "additionalProperties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")):
        return "number"
    return "string"


def _bounds(schema: dict[str, Any], *, integer: bool) -> tuple[float, float]:
    """The inclusive range a number may take (a span of 100 where the schema leaves a side open)."""
    nudge = 1 if integer else 0.01
    low: float | None = None
    high: float | None = None
    if isinstance(schema.get("minimum"), (int, float)):
        low = schema["minimum"]
    if isinstance(schema.get("exclusiveMinimum"), (int, float)):
        low = schema["exclusiveMinimum"] + nudge
    if isinstance(schema.get("maximum"), (int, float)):
        high = schema["maximum"]
    if isinstance(schema.get("exclusiveMaximum"), (int, float)):
        high = schema["exclusiveMaximum"] - nudge
    if low is None:
        low = 0 if high is None or high >= 0 else high - 100
    if high is None:
        high = low + 100
    if integer:
        low, high = math.ceil(low), math.floor(high)
    return low, max(low, high)


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    merged = {**a, **{k: v for k, v in b.items() if k not in ("properties", "required")}}
    merged["properties"] = {**(a.get("properties") or {}), **(b.get("properties") or {})}
    merged["required"] = [*(a.get("required") or []), *(b.get("required") or [])]
    if not merged["properties"]:
        del merged["properties"]
    if not merged["required"]:
        del merged["required"]
    return merged


def generate(schema: dict[str, Any], rng: random.Random, words: list[str] | None = None) -> Any:
    """A value valid against ``schema``; strings are drawn from ``words`` (the prompt's terms)."""
    return _Generator(schema, rng, list(words or [])).value(schema, "value", 0)
