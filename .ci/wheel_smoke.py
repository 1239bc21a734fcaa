"""Smoke test of the installed wheel, as a user meets it: run by ``.ci/run`` with the wheel's venv.

Usage: ``VENV/bin/python .ci/wheel_smoke.py REPO WORKDIR``. From WORKDIR (outside the source tree, so
``core`` and ``tui`` come from site-packages), it types ``research-orchestrator run research_config.yaml
--simulate`` in a real terminal (tmux), checks the app opens in the default theme's colours, picks
every shipped theme with ``t`` as a person would and checks its colours, then quits. Where tmux
cannot be installed, the same app is driven in-process by Textual's pilot instead.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from importlib.resources import files
from pathlib import Path


def rgb(colour: str) -> str:
    """``#rrggbb`` as tmux prints it in an SGR sequence (``r;g;b``)."""
    value = colour.lstrip("#")
    return ";".join(str(int(value[i : i + 2], 16)) for i in (0, 2, 4))


def main(repo: Path, work: Path) -> int:
    import core
    import tui
    from tui.themes import BUILTIN_THEMES_DIR, DEFAULT_THEME, load_themes

    for package in (core, tui):
        location = Path(package.__file__ or "").resolve()
        assert "site-packages" in location.parts, (
            f"{package.__name__} imported from {location}, not the wheel"
        )
    themes, errors = load_themes(BUILTIN_THEMES_DIR)
    assert not errors, errors
    names = sorted(theme.name for theme in themes)
    shipped = sorted(p.name for p in (repo / "themes").iterdir() if p.suffix in (".yaml", ".yml", ".toml"))
    assert len(names) == len(shipped) >= 3 and DEFAULT_THEME in names, (names, shipped)
    for top in ("core", "tui"):  # every data file of the source tree is in the installed package
        for data in sorted((repo / top).rglob("*")):
            if data.is_file() and data.suffix not in (".py", ".pyc"):
                relative = data.relative_to(repo / top).parts
                assert files(top).joinpath(*relative).is_file(), f"{data.relative_to(repo)} not in the wheel"
    by_name = {theme.name: theme for theme in themes}

    script = Path(sys.executable).with_name("research-orchestrator")
    help_text = subprocess.run([script, "--help"], capture_output=True, text=True, check=True).stdout
    assert "usage: research-orchestrator" in help_text

    shutil.copy(repo / "research_config.yaml", work / "research_config.yaml")
    if shutil.which("tmux") is None:
        print("wheel smoke: no tmux here; the app is driven in-process instead (Textual's pilot)")
        os.environ["XDG_CONFIG_HOME"] = str(work / "config")
        outcome = asyncio.run(pilot_smoke(work, names))
        print(f"wheel smoke: ok ({', '.join(names)}; {outcome})")
        return 0

    sys.path.append(str(repo))  # after site-packages: only the tmux helper comes from the source tree
    from tests.tui.tmux import TmuxServer, wait_for_file

    exit_file = work / "exit"
    command = f"{shlex.quote(str(script))} run research_config.yaml --simulate; echo EXIT=$? > exit; sleep 60"
    env = {"XDG_CONFIG_HOME": str(work / "config"), "COLORTERM": "truecolor", "TERM": "xterm-256color"}
    tmux = TmuxServer(env=env, prefix="ro-wheel")
    try:
        pane = tmux.new_session("wheel", command, width=160, height=48, cwd=work)

        def colours_of(name: str) -> str:
            theme = by_name[name]
            wanted = [rgb(c) for c in (theme.background, theme.surface) if c]

            def shows(_: str) -> bool:
                painted = tmux.tmux("capture-pane", "-e", "-p", "-t", pane)
                return "Agents" in painted and all(f"48;2;{c}m" in painted for c in wanted)

            return tmux.wait_for_screen(pane, shows, f"the app painted in {name}'s colours", within=60)

        colours_of(DEFAULT_THEME)
        print(f"wheel smoke: the app opened in the default theme {DEFAULT_THEME}", flush=True)
        for name in [n for n in names if n != DEFAULT_THEME] + [DEFAULT_THEME]:
            tmux.send_keys(pane, "t")
            tmux.wait_for_screen(pane, lambda s: DEFAULT_THEME in s and "Agents" in s, "the theme picker")
            tmux.send_keys(pane, "-l", name)
            tmux.wait_for_screen(pane, lambda s, n=name: n in s, f"{name} offered by the picker")
            tmux.send_keys(pane, "Enter")
            colours_of(name)
            print(f"wheel smoke: picked {name}", flush=True)
        tmux.send_keys(pane, "C-q")
        deadline = time.monotonic() + 30
        while not exit_file.exists() and time.monotonic() < deadline:
            if "Stop and quit" in tmux.capture(pane):
                tmux.send_keys(pane, "y")
            time.sleep(0.2)
        code = wait_for_file(exit_file, "the app to exit").strip()
        assert re.fullmatch(r"EXIT=(0|130)", code), code
    finally:
        tmux.kill()
    print(f"wheel smoke: ok ({', '.join(names)}; {code})")
    return 0


async def pilot_smoke(work: Path, names: list[str]) -> str:
    """The same checks without a terminal: the app on the simulator, its default theme, every theme picked."""
    from tui.app import ResearchApp
    from tui.data import start_factory
    from tui.themes import DEFAULT_THEME

    app = ResearchApp(
        control_factory=start_factory(work / "research_config.yaml", work / "runs", simulate=True),
        runs_dir=work / "runs",
    )
    async with app.run_test(size=(160, 48)) as pilot:
        deadline = time.monotonic() + 60
        while app.control is None:
            assert time.monotonic() < deadline, f"the run did not start: {app.start_error}"
            await pilot.pause(0.1)
        assert app.theme == DEFAULT_THEME, app.theme
        print(f"wheel smoke: the app opened in the default theme {DEFAULT_THEME}", flush=True)
        for name in names:
            app.theme = name
            await pilot.pause()
            assert app.current_theme.name == name
            print(f"wheel smoke: picked {name}", flush=True)
        await app.stop_run()
    assert app.outcome is not None, app.run_error
    return app.outcome.status.value


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()))
