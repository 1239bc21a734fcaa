"""Theme files load from the built-in and user folders; a bad one is reported, not fatal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tui.settings import load_settings, save_settings, settings_path, user_themes_dir
from tui.themes import BUILTIN_THEMES_DIR, ThemeFileError, load_theme_file, load_themes


def test_at_least_three_builtin_themes_one_of_them_light() -> None:
    themes, errors = load_themes(BUILTIN_THEMES_DIR)
    assert errors == []
    assert len(themes) >= 3
    assert any(not theme.dark for theme in themes)


def test_user_themes_override_by_name_and_bad_files_are_reported(config_home: Path) -> None:
    folder = user_themes_dir()
    folder.mkdir(parents=True)
    (folder / "mine.yaml").write_text("name: research-night\nprimary: '#ff0000'\ndark: true\n")
    (folder / "broken.toml").write_text('name = "x"\nprimary = "not-a-colour"\n')
    themes, errors = load_themes(BUILTIN_THEMES_DIR, folder)
    night = next(t for t in themes if t.name == "research-night")
    assert night.primary == "#ff0000"
    assert len(errors) == 1 and "broken.toml" in errors[0] and "primary" in errors[0]


def test_unknown_keys_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("name: t\nprimary: '#123456'\nprimery: '#000000'\n")
    with pytest.raises(ThemeFileError, match="unknown keys"):
        load_theme_file(path)


def test_settings_live_under_xdg_config_home_and_merge(config_home: Path) -> None:
    assert settings_path() == config_home / "research-orchestrator" / "settings.json"
    assert load_settings() == {}
    save_settings(theme="research-paper")
    save_settings(other=1)
    assert load_settings() == {"theme": "research-paper", "other": 1}
    settings_path().write_text("{not json")
    assert load_settings() == {}


def test_a_settings_file_nested_too_deeply_or_not_a_file_is_ignored(config_home: Path) -> None:
    """A settings file someone else wrote must never stop the app: read as none at all."""
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[" * 100_000)
    assert load_settings() == {}
    path.unlink()
    os.mkfifo(path)  # would block a plain read for ever
    assert load_settings() == {}
