"""Opaque, signed ``encrypted_content`` / ``encrypted_index`` tokens.

The real API returns opaque blobs the client must send back intact; an altered one is a 400. The
simulator's tokens are shaped like the real ones (base64 of a protobuf-like record starting ``E``),
their payload is enciphered with a keystream (so nothing readable leaks into a client's view: a
client must treat them as opaque) and signed, so a later request can tell an altered one. Sealing is
deterministic, keeping answers a function of the request. The key is a fixed constant (not the seed)
so conversations stay valid across simulator restarts and seed changes, which a resumed run needs;
these tokens protect fidelity, not secrets.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

_KEY = hashlib.sha256(b"research-orchestrator simulator signing key v1").digest()
_SIG_BYTES = 16
_NONCE_BYTES = 12
_TAG = b"\x12"  # the real blobs start with a protobuf field tag (base64 "E...")
_LEGACY_PREFIX = b"\x12\x0csim"  # tokens of earlier versions (readable JSON), still accepted on resume


def _keystream(nonce: bytes, length: int) -> bytes:
    blocks = []
    for counter in range(-(-length // 32)):
        blocks.append(hmac.new(_KEY, nonce + counter.to_bytes(4, "big"), hashlib.sha256).digest())
    return b"".join(blocks)[:length]


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(raw: bytes, start: int) -> tuple[int, int] | None:
    value = shift = 0
    for index in range(start, min(len(raw), start + 10)):
        value |= (raw[index] & 0x7F) << shift
        shift += 7
        if not raw[index] & 0x80:
            return value, index + 1
    return None


def seal(payload: dict[str, Any]) -> str:
    """Serialise ``payload`` into an opaque base64 token carrying a signature."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    nonce = hmac.new(_KEY, b"nonce" + body, hashlib.sha256).digest()[:_NONCE_BYTES]
    cipher = bytes(a ^ b for a, b in zip(body, _keystream(nonce, len(body)), strict=True))
    record = nonce + cipher
    sig = hmac.new(_KEY, record, hashlib.sha256).digest()[:_SIG_BYTES]
    return base64.b64encode(_TAG + _varint(len(record)) + record + sig).decode()


def unseal(token: object) -> dict[str, Any] | None:
    """The payload of a token this simulator issued, or ``None`` if it was altered or is foreign."""
    if not isinstance(token, str):
        return None
    try:
        raw = base64.b64decode(token.encode(), validate=True)
    except (binascii.Error, ValueError):
        return None
    if raw.startswith(_LEGACY_PREFIX):
        return _unseal_legacy(raw)
    header = _read_varint(raw, 1) if raw.startswith(_TAG) else None
    if header is None:
        return None
    length, start = header
    record, sig = raw[start : start + length], raw[start + length :]
    if len(record) != length or length <= _NONCE_BYTES or len(sig) != _SIG_BYTES:
        return None
    if not hmac.compare_digest(sig, hmac.new(_KEY, record, hashlib.sha256).digest()[:_SIG_BYTES]):
        return None
    nonce, cipher = record[:_NONCE_BYTES], record[_NONCE_BYTES:]
    return _payload(bytes(a ^ b for a, b in zip(cipher, _keystream(nonce, len(cipher)), strict=True)))


def _unseal_legacy(raw: bytes) -> dict[str, Any] | None:
    if len(raw) <= len(_LEGACY_PREFIX) + _SIG_BYTES:
        return None
    body, sig = raw[len(_LEGACY_PREFIX) : -_SIG_BYTES], raw[-_SIG_BYTES:]
    expected = hmac.new(_KEY, body, hashlib.sha256).digest()[:_SIG_BYTES]
    return _payload(body) if hmac.compare_digest(sig, expected) else None


def _payload(body: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None
