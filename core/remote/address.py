"""Where a run's control socket is and whether anyone answers on it, without an event loop.

The command line asks this for ``runs`` and ``attach`` (asyncio and the server side of the channel
load only when a run is watched or served); :mod:`core.remote.channel` builds on it.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from core.errors import UserError

_SUN_PATH_MAX = 107  # Linux's sun_path holds 108 bytes, the last one the terminating NUL


class ChannelError(UserError):
    """The owner could not be reached, or answered something that is not the protocol."""


class OwnerUnreachable(ChannelError):
    """Nobody serves the run's socket (the owner has exited or died), or we may not open it."""


@contextlib.contextmanager
def socket_address(path: Path) -> Iterator[str]:
    """An address for ``path`` that fits in ``sun_path`` (long run directories go through /proc)."""
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        yield str(path)
        return
    if not Path("/proc/self/fd").is_dir():
        raise ChannelError(
            f"the run directory's path is too long for a Unix socket ({path}); use a shorter --runs-dir"
        )
    try:
        fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise OwnerUnreachable(f"cannot open the run directory {path.parent}: {exc.strerror}") from exc
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def answers(path: Path) -> bool:
    """Whether a live owner accepts connections on ``path`` (a blocking probe, for the command line)."""
    if not path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX) as sock, socket_address(path) as address:
            sock.settimeout(2.0)
            sock.connect(address)
    except (OSError, ChannelError):
        return False
    return True
