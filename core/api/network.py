"""Whose certificates the API connection trusts, beyond the HTTP client's own defaults.

Left to itself the SDK's client (httpx2) already honours ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``
and ``SSL_CERT_FILE``/``SSL_CERT_DIR``, and on macOS and Windows verifies against the system's
store. ``network.trust: system`` (or ``--trust system``) makes the operating system's trust store
the judge everywhere through ``truststore``, as pip and uv do, so a machine whose IT installed a
corporate root certificate in that store works with no file to find. ``truststore`` is a base
dependency: httpx2 requires it already, so declaring it costs nothing and keeps the import honest.
The SDK's HTTP client is built with it in :mod:`core.api.sdk` (the only module that sees the SDK).
"""

from __future__ import annotations

import ssl


def system_trust_context() -> ssl.SSLContext:
    """A client context that verifies against the operating system's trust store (truststore)."""
    import truststore  # loaded only when asked for

    return truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
