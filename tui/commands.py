"""The command palette: every action of the current screen, searchable by name."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Protocol, runtime_checkable

from textual.command import DiscoveryHit, Hit, Hits, Provider

PaletteCommand = tuple[str, str, Callable[[], object]]


@runtime_checkable
class HasPaletteCommands(Protocol):
    def palette_commands(self) -> list[PaletteCommand]: ...


class ScreenCommands(Provider):
    """Commands the active screen offers, plus the app-wide ones (help, runs, theme, quit)."""

    def _commands(self) -> list[PaletteCommand]:
        commands: list[PaletteCommand] = []
        if isinstance(self.screen, HasPaletteCommands):
            commands.extend(self.screen.palette_commands())
        app = self.app
        commands.append(("Help", "?: the keys", partial(app.run_action, "help")))
        commands.append(("Choose theme", "t: pick a theme (remembered)", app.search_themes))
        commands.append(("Quit", "ctrl+q: stops an active run first (asks)", partial(app.run_action, "quit")))
        return commands

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
