"""Whom a server's certificate names, for the message of a certificate this machine does not trust.

OpenSSL's own words ("unable to get local issuer certificate") do not say *whose* certificate it
was: a corporate proxy's, a misrouted host's. So the failed host is asked again, once, without
verifying (through the same proxy the SDK's client would use), and the certificate it presents is
read: its subject and issuer go in the message. The standard library reads a certificate's fields
only once it has verified it, so the second handshake trusts that very certificate as its anchor
(a partial chain): it verifies, by construction, and says what it holds. Nothing is sent but the
handshakes (and a ``CONNECT`` to a proxy); any failure just leaves the names out.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import urllib.parse
import urllib.request
from typing import Any

PROBE_SECONDS = 5.0
_names: dict[tuple[str, int], asyncio.Task[str | None]] = {}


async def presented(host: str, port: int) -> str | None:
    """``"issued to CN=x by CN=y"`` for the certificate ``host:port`` presents, or None if unknown."""
    key = (host, port)
    task = _names.get(key)
    if task is None or (task.done() and task.cancelled()):
        task = _names[key] = asyncio.ensure_future(_probe(host, port))
    try:
        return await asyncio.shield(task)
    except Exception:
        return None


async def _probe(host: str, port: int) -> str | None:
    try:
        async with asyncio.timeout(PROBE_SECONDS):
            der = await _certificate(host, port, _unverified())
            if der is None:
                return None
            anchored = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            anchored.check_hostname = False
            anchored.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
            anchored.load_verify_locations(cadata=der)
            fields = await _peer_fields(host, port, anchored)
    except (OSError, ssl.SSLError, TimeoutError, ValueError):
        return None
    if not fields:
        return None
    return f"issued to {_name(fields.get('subject'))} by {_name(fields.get('issuer'))}"


def _unverified() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _certificate(host: str, port: int, context: ssl.SSLContext) -> bytes | None:
    writer = await _tls(host, port, context)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    finally:
        writer.close()


async def _peer_fields(host: str, port: int, context: ssl.SSLContext) -> dict[str, Any] | None:
    writer = await _tls(host, port, context)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        return ssl_object.getpeercert() if ssl_object is not None else None
    finally:
        writer.close()


async def _tls(host: str, port: int, context: ssl.SSLContext) -> asyncio.StreamWriter:
    """A TLS connection to ``host:port``, through the environment's HTTPS proxy when one applies."""
    proxy = _proxy_for(host)
    if proxy is None:
        _, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host)
        return writer
    reader, writer = await asyncio.open_connection(proxy.hostname, proxy.port or 80)
    try:
        writer.write(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode("ascii"))
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if head.split(b" ", 2)[1:2] != [b"200"]:
            raise OSError(f"the proxy refused CONNECT: {head[:80]!r}")
        await writer.start_tls(context, server_hostname=host)
    except BaseException:
        writer.close()
        raise
    return writer


def _proxy_for(host: str) -> urllib.parse.SplitResult | None:
    proxies = urllib.request.getproxies_environment()
    url = proxies.get("https") or proxies.get("all")
    if not url or urllib.request.proxy_bypass(host):
        return None
    with contextlib.suppress(ValueError):
        parsed = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        if parsed.scheme == "http" and parsed.hostname:
            return parsed
    return None


def _name(rdns: object) -> str:
    """``CN=x, O=y`` from the standard library's nested tuples."""
    short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C"}
    parts: list[str] = []
    if isinstance(rdns, tuple):
        for rdn in rdns:
            for key, value in rdn:
                if key in short:
                    parts.append(f"{short[key]}={value}")
    return ", ".join(parts) or "(no name)"
