"""Opaque tokens round-trip, and any alteration is detected."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

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


def test_tokens_are_opaque_and_shaped_like_the_real_ones() -> None:
    token = seal({"u": "https://a.example/x", "t": "some readable page text"})
    raw = base64.b64decode(token)

    assert token.startswith("E") and b"readable" not in raw and b"a.example" not in raw
    assert seal({"u": "https://a.example/x", "t": "some readable page text"}) == token  # deterministic


def test_tokens_of_the_earlier_readable_format_still_unseal() -> None:
    """Conversations saved by an earlier simulator version resume."""
    key = hashlib.sha256(b"research-orchestrator simulator signing key v1").digest()
    body = json.dumps({"u": "x"}, separators=(",", ":"), sort_keys=True).encode()
    legacy = base64.b64encode(
        b"\x12\x0csim" + body + hmac.new(key, body, hashlib.sha256).digest()[:16]
    ).decode()

    assert unseal(legacy) == {"u": "x"}
