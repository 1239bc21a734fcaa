"""Networks for tests: a throwaway CA, an HTTPS endpoint in front of the simulator, a forward proxy.

Everything listens on 127.0.0.1 and is made by the test: the CA's key lives in the test's
temporary directory, nothing is added to the machine's trust store. The endpoints run on an event
loop in a thread of their own, so a test can run the command line as a subprocess meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from core.simulator import Simulator, SimulatorSettings
from tests.waits import wait_until

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Authority:
    """A CA made for one test, and a server certificate it signed for localhost and 127.0.0.1."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        pytest.skip(
            "needs the openssl command to make a throwaway CA (.ci/run installs it: apt-get install openssl)"
        )
    return found


def make_authority(directory: Path, name: str = "Throwaway Test Root CA") -> Authority:
    """A CA and a server certificate, made with the openssl command (keys stay in ``directory``)."""
    tool = openssl()
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    extensions = directory / "server.ext"
    extensions.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")

    def run(*args: str) -> None:
        subprocess.run([tool, *args], check=True, capture_output=True, timeout=60)

    curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    org = "O=research-orchestrator tests"
    run("req", "-x509", *curve, "-keyout", str(ca_key), "-out", str(ca_cert), "-days", "2",
        "-subj", f"/CN={name}/{org}")  # fmt: skip
    run("req", *curve, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN=localhost/{org}")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(extensions))  # fmt: skip
    return Authority(ca_cert, cert, key)


class BackgroundLoop:
    """An event loop in a thread: servers for a test that runs subprocesses synchronously."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-network", daemon=True)
        self._thread.start()

    def run(self, coroutine: Awaitable[T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)  # type: ignore[arg-type]

    def close(self) -> None:
        async def cancel_the_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(cancel_the_rest(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def tls_front(authority: Authority, target_port: int) -> asyncio.Server:
    """An HTTPS endpoint on 127.0.0.1 that forwards to ``target_port`` (a TLS-terminating proxy)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(authority.server_cert, authority.server_key)

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return await asyncio.start_server(forward, "127.0.0.1", 0, ssl=context)


async def _closed(server: asyncio.Server) -> None:
    server.close()


@contextlib.contextmanager
def https_simulator(authority: Authority, settings: SimulatorSettings | None = None) -> Iterator[str]:
    """A simulator behind an HTTPS endpoint signed by ``authority``; yields the base URL."""
    background = BackgroundLoop()
    simulator = Simulator(settings or SimulatorSettings(seed=3, pause_turn_probability=0.0))
    try:
        background.run(simulator.start())
        front = background.run(tls_front(authority, simulator.port))
        port = front.sockets[0].getsockname()[1]
        yield f"https://localhost:{port}"
        background.run(_closed(front))  # on its own loop: an asyncio server is not thread-safe
        background.run(simulator.stop())
    finally:
        background.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mitmdump() -> str:
    """The mitmproxy command .ci/run installs (in .venv-tools); skipped, saying why, without it."""
    for candidate in (shutil.which("mitmdump"), str(ROOT / ".venv-tools" / "bin" / "mitmdump")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("needs mitmproxy's mitmdump: .ci/run installs it (python3 -m venv .venv-tools && "
                ".venv-tools/bin/pip install mitmproxy)")  # fmt: skip


@contextlib.contextmanager
def forward_proxy(
    directory: Path, *, intercept: bool, upstream_ca: Path | None = None
) -> Iterator[tuple[str, Path]]:
    """mitmdump as a forward proxy on 127.0.0.1; yields its URL and its log file.

    Without ``intercept`` it tunnels TLS untouched (CONNECT, logged); with it, it shows clients a
    certificate of its own CA (``directory/confdir/mitmproxy-ca-cert.pem``), as a corporate
    TLS-inspecting proxy does, and verifies the server against ``upstream_ca``.
    """
    tool = mitmdump()
    port = free_port()
    confdir = directory / "confdir"
    confdir.mkdir(parents=True, exist_ok=True)
    log = directory / "proxy.log"
    command = [tool, "--listen-host", "127.0.0.1", "--listen-port", str(port), "--set", f"confdir={confdir}",
               "--set", "termlog_verbosity=info", "--set", "flow_detail=1"]  # fmt: skip
    if not intercept:
        command += ["--ignore-hosts", ".*"]
    if upstream_ca is not None:
        command += ["--set", f"ssl_verify_upstream_trusted_ca={upstream_ca}"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: _listening(port) or process.poll() is not None, "mitmdump to listen", 60)
        if process.poll() is not None:
            raise AssertionError(f"mitmdump exited: {log.read_text(errors='replace')}")
        yield f"http://127.0.0.1:{port}", log
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without proxy or certificate settings, plus ``extra``."""
    dropped = {"HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR",
               "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k.upper() not in dropped}
    return {**env, **extra}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "core.cli", *args]


Runner = Callable[..., Any]
