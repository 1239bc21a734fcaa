"""Validation errors read as plain words about the user's YAML, not pydantic internals."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from core.config.messages import describe, plain_message, trim_loc
from core.config.model import ResearchConfig

BASE: dict[str, Any] = {
    "program": {"name": "demo", "question": "Why?"},
    "layers": [{"name": "one", "agents": [{"id": "a", "brief": "b"}]}],
}


def messages_for(**sections: Any) -> dict[str, str]:
    """``{dotted loc: message}`` for a config made of BASE plus ``sections``."""
    with pytest.raises(ValidationError) as caught:
        ResearchConfig.model_validate({**BASE, **sections})
    return {
        ".".join(map(str, trim_loc(error["loc"]))): plain_message(error)
        for error in caught.value.errors(include_url=False)
    }


@pytest.mark.parametrize(
    ("sections", "loc", "message"),
    [
        ({"defaults": {"max_tokens": 1.5}}, "defaults.max_tokens", "expected a whole number, got 1.5"),
        ({"defaults": {"max_tokens": 200_000}}, "defaults.max_tokens", "must be at most 128000, got 200000"),
        (
            {"defaults": {"caching": {"enabled": "perhaps"}}},
            "defaults.caching.enabled",
            "expected true or false, got 'perhaps'",
        ),
        ({"defaults": {"model": None}}, "defaults.model", "expected text, got an empty value"),
        ({"defaults": "fast"}, "defaults", "expected a mapping (key: value pairs), got 'fast'"),
        (
            {"execution_settings": {"context": {"compact_at_fraction": 0.05}}},
            "execution_settings.context.compact_at_fraction",
            "must be greater than 0.1, got 0.05",
        ),
        (
            {"defaults": {"web_search": {"user_location": {"country": "USA"}}}},
            "defaults.web_search.user_location.country",
            "must be at most 2 characters long, got 'USA'",
        ),
        (
            {"simulator": {"faults": {"overload": 0.1}}},
            "simulator.faults.overload",
            "expected one of rate_limit, overloaded, server_error, stream_error, disconnect, slow; "
            "got 'overload' (did you mean 'overloaded'?)",
        ),
        (
            {"simulator": {"searches_per_turn": [1]}},
            "simulator.searches_per_turn.1",
            "expected 2 items, got 1",
        ),
        ({"layers": []}, "layers", "must not be empty"),
        ({"layers": {"one": {}}}, "layers", "expected a list, got a mapping"),
    ],
)
def test_plain_messages(sections: dict[str, Any], loc: str, message: str) -> None:
    assert messages_for(**sections)[loc] == message


class TestUnknownKeys:
    def test_a_typo_gets_the_closest_key(self) -> None:
        assert messages_for(pricing={"web_search_per_100": 5})["pricing.web_search_per_100"] == (
            "unknown key 'web_search_per_100' (did you mean 'web_search_per_1000'?)"
        )

    def test_a_key_valid_elsewhere_says_where(self) -> None:
        assert messages_for(defaults={"max_cost_usd": 5})["defaults.max_cost_usd"] == (
            "unknown key 'max_cost_usd' here; it belongs under execution_settings.budget"
        )

    def test_a_key_valid_in_several_places_names_them(self) -> None:
        assert messages_for(execution_settings={"max_searches": 5})["execution_settings.max_searches"] == (
            "unknown key 'max_searches' here; it belongs under defaults or layers[].agents[] "
            "or execution_settings.budget"
        )

    def test_otherwise_the_valid_keys_are_listed(self) -> None:
        assert messages_for(program={"name": "n", "question": "q", "zzz": 1})["program.zzz"] == (
            "unknown key 'zzz' (valid keys: name, question, description)"
        )


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "an empty value"),
        (True, "true"),
        ("x" * 50, "'" + "x" * 37 + "...'"),
        ([1], "a list"),
        (3.5, "3.5"),
    ],
)
def test_describe(value: object, shown: str) -> None:
    assert describe(value) == shown
