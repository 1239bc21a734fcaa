"""Opaque tokens round-trip, and any alteration is detected."""

from __future__ import annotations

import base64

from core.simulator.crypto import seal, unseal


def test_a_sealed_payload_round_trips() -> None:
    assert unseal(seal({"u": "https://a.example/x", "t": "text"})) == {
        "u": "https://a.example/x",
        "t": "text",
    }


def test_any_changed_character_is_detected() -> None:
    token = seal({"u": "https://a.example/x", "t": "some page text"})
    for position in range(0, len(token) - 2, 7):
        changed = token[:position] + ("A" if token[position] != "A" else "B") + token[position + 1 :]
        assert unseal(changed) is None, position


def test_foreign_or_malformed_tokens_are_rejected() -> None:
    assert unseal("EsUUCioIDBgCIiQ1NTc2NjExZi1hMWVl") is None
    assert unseal("not base64 at all!") is None
    assert unseal(None) is None
    assert unseal(base64.b64encode(b"\x12\x0csim{}" + b"0" * 16).decode()) is None
