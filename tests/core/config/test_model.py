"""The config model: defaults applied per agent, ``reads`` resolved, broken references rejected."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from core.config.model import SKIP_REFERENCE_CHECK, ResearchConfig, did_you_mean, reference_issues


def agent(agent_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": agent_id, "brief": f"Research {agent_id}.", **extra}


def program(*layers: tuple[str, list[dict[str, Any]]], **sections: Any) -> dict[str, Any]:
    return {
        "program": {"name": "demo", "question": "Why?"},
        "layers": [{"name": name, "agents": agents} for name, agents in layers],
        **sections,
    }


class TestResolvedAgents:
    def test_agents_take_the_program_defaults_unless_they_override_them(self) -> None:
        config = ResearchConfig.model_validate(
            program(
                ("research", [agent("a"), agent("b", model="claude-opus-5", max_turns=2, max_searches=3)]),
                defaults={"model": "claude-sonnet-5", "max_turns": 5, "max_tokens": 2000, "max_searches": 9},
            )
        )
        a, b = config.agents()
        assert (a.model, a.max_turns, a.max_tokens, a.max_searches) == ("claude-sonnet-5", 5, 2000, 9)
        assert (b.model, b.max_turns, b.max_tokens, b.max_searches) == ("claude-opus-5", 2, 2000, 3)
        assert a.title == "A"

    def test_an_agent_reads_the_previous_layer_by_default(self) -> None:
        config = ResearchConfig.model_validate(
            program(("one", [agent("a"), agent("b")]), ("two", [agent("c")]), ("three", [agent("d")]))
        )
        assert config.agent("a").reads == ()
        assert config.agent("c").reads == ("a", "b")
        assert config.agent("d").reads == ("c",)
        assert [x.layer for x in config.agents()] == [1, 1, 2, 3]

    def test_layer_names_expand_to_their_agents_without_duplicates(self) -> None:
        config = ResearchConfig.model_validate(
            program(("one", [agent("a"), agent("b")]), ("two", [agent("c", reads=["b", "one"])]))
        )
        assert config.agent("c").reads == ("b", "a")

    def test_an_explicit_empty_reads_reads_nothing(self) -> None:
        config = ResearchConfig.model_validate(
            program(("one", [agent("a")]), ("two", [agent("c", reads=[])]))
        )
        assert config.agent("c").reads == ()

    def test_unknown_agent_lookup_is_a_key_error(self) -> None:
        config = ResearchConfig.model_validate(program(("one", [agent("a")])))
        with pytest.raises(KeyError):
            config.agent("zzz")


class TestReferenceIssues:
    def test_a_well_formed_program_has_none(self) -> None:
        data = program(("one", [agent("a"), agent("b")]), ("two", [agent("c", reads=["one"])]))
        assert reference_issues(data["layers"]) == []

    def test_a_one_agent_layer_may_share_its_agents_id(self) -> None:
        data = program(("one", [agent("a")]), ("synthesis", [agent("synthesis", reads=["one"])]))
        assert reference_issues(data["layers"]) == []

    def test_a_layer_name_that_is_another_agents_id_is_ambiguous(self) -> None:
        data = program(("one", [agent("a"), agent("b")]), ("a", [agent("c"), agent("d")]))
        assert reference_issues(data["layers"]) == [
            (
                ("layers", 1, "name"),
                "layer name 'a' is also the id of the agent at layers[0].agents[0], "
                "so reading 'a' would be ambiguous: rename one",
            )
        ]

    def test_duplicate_layer_names(self) -> None:
        data = program(("one", [agent("a")]), ("one", [agent("b")]))
        assert reference_issues(data["layers"]) == [
            (
                ("layers", 1, "name"),
                "layer name 'one' is used twice (also layers[0]); layer names must be unique",
            )
        ]

    def test_an_agent_reading_itself(self) -> None:
        data = program(("one", [agent("a")]), ("two", [agent("c", reads=["a", "c"])]))
        assert reference_issues(data["layers"]) == [
            (
                ("layers", 1, "agents", 0, "reads", 1),
                "agent 'c' reads itself: an agent can only read earlier layers",
            )
        ]

    def test_a_sibling_in_the_same_layer(self) -> None:
        data = program(("one", [agent("a"), agent("b", reads=["a"])]))
        assert reference_issues(data["layers"]) == [
            (
                ("layers", 0, "agents", 1, "reads", 0),
                "agent 'b' in layer 1 reads 'a' from layer 1 (its own layer): "
                "an agent can only read earlier layers",
            )
        ]

    def test_a_later_layer_by_name(self) -> None:
        data = program(("one", [agent("a", reads=["two"])]), ("two", [agent("c")]))
        assert reference_issues(data["layers"]) == [
            (
                ("layers", 0, "agents", 0, "reads", 0),
                "agent 'a' in layer 1 reads layer 'two' (layer 2): an agent can only read earlier layers",
            )
        ]

    def test_malformed_parts_are_left_to_field_validation(self) -> None:
        layers: list[Any] = [
            "not a layer",
            {"name": 5, "agents": "nope"},
            {"name": "ok", "agents": [7, {"id": None, "reads": "x"}, {"id": "z", "reads": [3, "ghost"]}]},
        ]
        assert reference_issues(layers) == [
            (
                ("layers", 2, "agents", 2, "reads", 1),
                "agent 'z' reads 'ghost', which is not an agent or layer",
            )
        ]
        assert reference_issues(None) == []


class TestModelRejectsBrokenReferences:
    def test_when_built_directly(self) -> None:
        data = program(("one", [agent("a", reads=["nobody"])]))
        with pytest.raises(ValidationError, match="agent 'a' reads 'nobody', which is not an agent or layer"):
            ResearchConfig.model_validate(data)

    def test_unless_the_caller_reports_them_itself(self) -> None:
        data = program(("one", [agent("a", reads=["nobody"])]))
        config = ResearchConfig.model_validate(data, context={SKIP_REFERENCE_CHECK: True})
        assert config.agent("a").reads == ("nobody",)


def test_unknown_keys_are_rejected_everywhere() -> None:
    data = program(("one", [agent("a", max_turn=3)]), execution_settings={"budget": {"max_cost": 1}})
    with pytest.raises(ValidationError) as caught:
        ResearchConfig.model_validate(data)
    assert {e["loc"] for e in caught.value.errors()} == {
        ("layers", 0, "agents", 0, "max_turn"),
        ("execution_settings", "budget", "max_cost"),
    }


def test_did_you_mean() -> None:
    assert did_you_mean("max_turn", ["max_turns", "max_tokens"]) == " (did you mean 'max_turns'?)"
    assert did_you_mean("colour", ["seed", "latency_ms"]) == ""
