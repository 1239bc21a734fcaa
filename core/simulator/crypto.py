"""Opaque, signed ``encrypted_content`` / ``encrypted_index`` tokens.

The real API returns opaque blobs the client must send back byte for byte; an altered one is a 400.
The simulator makes them HMAC-signed so it can tell on later requests. The key is a fixed constant
(not the seed) so conversations stay valid across simulator restarts and seed changes, which a
resumed run needs; these tokens protect fidelity, not secrets.
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
_PREFIX = b"\x12\x0csim"  # a few constant leading bytes, like the real blobs' protobuf header


def seal(payload: dict[str, Any]) -> str:
    """Serialise ``payload`` into an opaque base64 token carrying a signature."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    sig = hmac.new(_KEY, body, hashlib.sha256).digest()[:_SIG_BYTES]
    return base64.b64encode(_PREFIX + body + sig).decode()


def unseal(token: object) -> dict[str, Any] | None:
    """The payload of a token this simulator issued, or ``None`` if it was altered or is foreign."""
    if not isinstance(token, str):
        return None
    try:
        raw = base64.b64decode(token.encode(), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) <= len(_PREFIX) + _SIG_BYTES or not raw.startswith(_PREFIX):
        return None
    body, sig = raw[len(_PREFIX) : -_SIG_BYTES], raw[-_SIG_BYTES:]
    expected = hmac.new(_KEY, body, hashlib.sha256).digest()[:_SIG_BYTES]
    if not hmac.compare_digest(sig, expected):
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None
