"""Failures that say the API cannot be reached as this machine is set up: no retry can fix them.

A certificate this machine does not trust (what a TLS-inspecting corporate proxy looks like) and a
host name that does not resolve (no network, no DNS, a typo) used to be retried as blips, seven
times per agent, layer after layer, with the cause only in ``events.jsonl``. They are read here
from the error's chain, as :mod:`core.api.failure` reads the transport's phase: the OS's or
OpenSSL's own error (``ssl.SSLCertVerificationError``, ``socket.gaierror``) is inside the transport
error, as its cause, its context or its argument, whatever the SDK wraps around it. Each becomes
one message naming the cause and the fix.
"""

from __future__ import annotations

import enum
import os
import socket
import ssl
from dataclasses import dataclass

from core.api.failure import causes

DNS_CONFIRMATIONS = 3
"""Attempts before a name that does not resolve is taken as final: a resolver may blink."""

_DNS_ERRORS = frozenset(
    code
    for name in ("EAI_NONAME", "EAI_AGAIN", "EAI_FAIL", "EAI_NODATA", "EAI_ADDRFAMILY")
    if (code := getattr(socket, name, None)) is not None
)
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


class Reach(enum.Enum):
    UNTRUSTED = "certificate"  # the server's certificate did not verify
    UNRESOLVED = "dns"  # the host name did not resolve


@dataclass(frozen=True, slots=True)
class Unreachable:
    reach: Reach
    host: str  # host[:port] of the request, as far as it is known
    detail: str  # OpenSSL's or the resolver's own words
    address: tuple[str, int] | None = None  # (host, port) when the request's URL was known

    @property
    def kind(self) -> str:
        """The ``ErrorInfo.kind`` of this failure."""
        return self.reach.value

    def message(self, *, issued: str = "", tries: int = 1, seconds: float = 0.0) -> str:
        """What happened and what to do about it (``issued``: whom the certificate names, if known)."""
        if self.reach is Reach.UNTRUSTED:
            issued = f", {issued}" if issued else ""
            return (
                f"the certificate of {self.host} is not trusted by this machine ({self.detail}{issued}): "
                "a proxy or firewall that inspects TLS, common on corporate networks, shows its own "
                "certificate. Trust its root certificate: set SSL_CERT_FILE to a PEM file that holds it "
                "(or SSL_CERT_DIR to a directory of them), or, where IT installed it in the operating "
                "system's store, add --trust system (config: network.trust: system); then resume the run"
            )
        over = f" ({tries} tries over {seconds:.0f} s)" if tries > 1 else ""
        return (
            f"the API's host {self.host} does not resolve: {self.detail}{over}{_through_proxy()}. This "
            "machine has no network or no working DNS, or the name is mistyped (ANTHROPIC_BASE_URL). "
            "Check the connection, or work offline with --simulate; then resume the run"
        )


def unreachable_of(error: BaseException) -> Unreachable | None:
    """The reachability failure inside ``error``'s chain, or None when it is something else."""
    chain = list(causes(error))
    innermost = chain[-1]
    inside = [innermost.__context__, *(a for a in innermost.args if isinstance(a, BaseException))]
    for link in [*chain, *(link for link in inside if link is not None)]:
        if isinstance(link, ssl.SSLCertVerificationError):
            detail = link.verify_message or link.reason or str(link)
            shown, address = _host(chain)
            return Unreachable(Reach.UNTRUSTED, shown, str(detail), address)
        if isinstance(link, socket.gaierror) and link.errno in _DNS_ERRORS:
            shown, address = _host(chain)
            return Unreachable(Reach.UNRESOLVED, shown, link.strerror or str(link), address)
    return None


async def explained(unreachable: Unreachable) -> str:
    """The message, with whom the certificate names when it is one (asked of the server again)."""
    if unreachable.reach is not Reach.UNTRUSTED or unreachable.address is None:
        return unreachable.message()
    from core.api.certificate import presented

    return unreachable.message(issued=await presented(*unreachable.address) or "")


def _host(chain: list[BaseException]) -> tuple[str, tuple[str, int] | None]:
    """``host[:port]`` of the request an error in ``chain`` carries (SDK and httpx errors do)."""
    for link in chain:
        try:
            url = getattr(link, "request", None)
            url = getattr(url, "url", None)
        except RuntimeError:  # httpx raises when an error was made without its request
            continue
        host = getattr(url, "host", None)
        if isinstance(host, str) and host:
            port = getattr(url, "port", None)
            default = 443 if getattr(url, "scheme", "") == "https" else 80
            shown = f"{host}:{port}" if port else host
            return shown, (host, int(port or default))
    return "the API's host", None


def _through_proxy() -> str:
    for name in _PROXY_VARIABLES:
        if os.environ.get(name):
            return f" (requests go through the proxy in {name}: check that its host resolves too)"
    return ""
