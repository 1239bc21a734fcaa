"""Per-agent control flags: pause at the next turn boundary, resume, kill."""

from __future__ import annotations

import asyncio


class AgentControl:
    """Shared by the orchestrator (which flips the flags) and the session (which obeys them).

    Pausing never interrupts a call in flight: the session checks :meth:`wait_if_paused` before
    it starts the next API call, so the turn that is streaming finishes and is saved.
    """

    def __init__(self) -> None:
        self._resumed = asyncio.Event()
        self._resumed.set()
        self.killed = False

    @property
    def pause_requested(self) -> bool:
        return not self._resumed.is_set()

    def pause(self) -> None:
        self._resumed.clear()

    def resume(self) -> None:
        self._resumed.set()

    async def wait_resumed(self) -> None:
        await self._resumed.wait()
