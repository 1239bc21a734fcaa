"""A private tmux server for driving the app in a real terminal (a pseudo-terminal tmux renders).

Each :class:`TmuxServer` has its own socket (``tmux -L``) and no user config (``-f /dev/null``), so
tests never touch a developer's sessions; :meth:`TmuxServer.kill` ends only that server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.processes import alive, descendants
from tests.waits import WITHIN_S, wait_until

#: Pane modes an application may switch on and must switch off again when it exits.
MODE_FLAGS = (
    "alternate_on",
    "cursor_flag",
    "insert_flag",
    "keypad_cursor_flag",
    "keypad_flag",
    "mouse_any_flag",
    "mouse_button_flag",
    "mouse_standard_flag",
    "mouse_sgr_flag",
    "mouse_utf8_flag",
    "origin_flag",
    "wrap_flag",
)


def tmux_path() -> str | None:
    return shutil.which("tmux")


class TmuxServer:
    def __init__(self, *, env: dict[str, str] | None = None, prefix: str = "ro-test") -> None:
        binary = tmux_path()
        if binary is None:
            raise RuntimeError("tmux is not installed")
        self.binary = binary
        self.socket = f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:10]}"
        self.env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", **(env or {})}
        self.env.pop("TMUX", None)  # a test run inside tmux must not talk to the outer server

    def tmux(self, *args: str, check: bool = True) -> str:
        completed = subprocess.run(
            [self.binary, "-u", "-f", "/dev/null", "-L", self.socket, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if check and completed.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)} failed: {completed.stderr.strip()}")
        return completed.stdout

    def new_session(self, name: str, command: str, *, width: int, height: int, cwd: Path) -> str:
        """Start ``command`` (run by ``sh -c``) in a detached session; returns its pane's target."""
        self.tmux(
            "new-session", "-d", "-s", name, "-x", str(width), "-y", str(height), "-c", str(cwd), command
        )
        self.tmux("set-option", "-t", name, "remain-on-exit", "on")
        return f"{name}:0.0"

    def new_window(self, session: str, command: str, *, cwd: Path) -> str:
        out = self.tmux("new-window", "-d", "-P", "-F", "#{session_name}:#{window_index}.0", "-t", session,
                        "-c", str(cwd), command)  # fmt: skip
        return out.strip()

    def capture(self, target: str) -> str:
        """The visible screen of the pane, as plain text."""
        return self.tmux("capture-pane", "-p", "-t", target)

    def display(self, target: str, fmt: str) -> str:
        return self.tmux("display-message", "-p", "-t", target, fmt).strip()

    def modes(self, target: str) -> dict[str, str]:
        values = self.display(target, "|".join(f"#{{{flag}}}" for flag in MODE_FLAGS)).split("|")
        return dict(zip(MODE_FLAGS, values, strict=True))

    def send_keys(self, target: str, *keys: str) -> None:
        self.tmux("send-keys", "-t", target, *keys)

    def wait_for_screen(
        self, target: str, condition: Callable[[str], bool], what: str, within: float = WITHIN_S
    ) -> str:
        """Poll the pane until ``condition(screen)`` holds; the failure message shows the last screen."""
        last = ""

        def shown() -> str | None:
            nonlocal last
            last = self.capture(target)
            return last if condition(last) else None

        return wait_until(shown, what, within, poll=0.1, detail=lambda: f"the screen:\n{last}")

    def kill(self) -> None:
        """End this private server and every process in its panes: an app a failed test left running
        has no terminal after this, and must not outlive the test (it would load the machine)."""
        panes = self.tmux("list-panes", "-a", "-F", "#{pane_pid}", check=False).split()
        left = descendants({int(pid) for pid in panes if pid.isdigit()})
        self.tmux("kill-server", check=False)
        try:
            wait_until(lambda: not any(alive(pid) for pid in left), "the panes' processes to end", 10.0)
        except AssertionError:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not any(alive(pid) for pid in left), "the panes' processes to be killed")


def wait_for_file(path: Path, what: str, within: float = WITHIN_S) -> str:
    """The text of ``path`` once it exists with a whole last line (written by a shell in a pane)."""

    def whole() -> str | None:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        return text if text.endswith("\n") else None

    return wait_until(whole, f"{what} ({path})", within, poll=0.1)
