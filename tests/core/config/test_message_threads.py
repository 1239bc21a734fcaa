"""``message_threads``: off by default, set for the program, overridden per layer."""

from __future__ import annotations

from core.config.model import ResearchConfig


def config(defaults: dict[str, object] | None = None, **layer: object) -> ResearchConfig:
    return ResearchConfig.model_validate(
        {
            "program": {"name": "p", "question": "Q?"},
            "defaults": defaults or {},
            "layers": [
                {"name": "research", "agents": [{"id": "a", "brief": "b"}], **layer},
                {"name": "synthesis", "agents": [{"id": "s", "brief": "b"}]},
            ],
        }
    )


def test_threads_are_off_unless_the_program_or_a_layer_says_so() -> None:
    assert [a.message_threads for a in config().agents()] == [False, False]
    assert [a.message_threads for a in config({"message_threads": True}).agents()] == [True, True]
    assert [a.message_threads for a in config(message_threads=True).agents()] == [True, False]
    assert [a.message_threads for a in config({"message_threads": True}, message_threads=False).agents()] == [
        False,
        True,
    ]
