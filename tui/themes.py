"""Theme files (YAML or TOML) turned into Textual themes: the built-ins in ``themes/`` and the user's.

A file holds Textual's ``Theme`` fields (``name``, ``primary``, ``background``, ``dark``, ...) and
optional ``variables``; colours are validated here so a typo is reported by file, not as a crash.
The repository's ``themes/`` folder ships as the package ``tui.builtin_themes`` (pyproject.toml) and
is read through ``importlib.resources``, so it is found in an editable install and in a wheel alike.
"""

from __future__ import annotations

import tomllib
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

import yaml
from textual.color import Color, ColorParseError
from textual.theme import Theme

from core.errors import UserError

BUILTIN_THEMES_DIR: Traversable = files("tui.builtin_themes")
DEFAULT_THEME = "research-night"
THEME_SUFFIXES = (".yaml", ".yml", ".toml")
_COLOR_FIELDS = (
    "primary",
    "secondary",
    "warning",
    "error",
    "success",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)
_OTHER_FIELDS = ("dark", "luminosity_spread", "text_alpha")


class ThemeFileError(UserError, ValueError):
    pass


def parse_theme(data: Any, source: str) -> Theme:
    if not isinstance(data, dict):
        raise ThemeFileError(f"{source}: a theme file must hold a mapping")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ThemeFileError(f"{source}: 'name' is required")
    unknown = set(data) - {"name", "variables", *_COLOR_FIELDS, *_OTHER_FIELDS}
    if unknown:
        raise ThemeFileError(f"{source}: unknown keys {sorted(unknown)}")
    if "primary" not in data:
        raise ThemeFileError(f"{source}: 'primary' is required")
    for key in _COLOR_FIELDS:
        if key in data:
            try:
                Color.parse(str(data[key]))
            except ColorParseError as error:
                raise ThemeFileError(f"{source}: {key}: {error}") from None
    variables = data.get("variables") or {}
    if not isinstance(variables, dict):
        raise ThemeFileError(f"{source}: 'variables' must be a mapping")
    fields = {k: v for k, v in data.items() if k not in ("variables",)}
    return Theme(**fields, variables={str(k): str(v) for k, v in variables.items()})


def load_theme_file(path: Traversable) -> Theme:
    """A theme file (a path, or a resource of the installed package)."""
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.name.endswith(".toml") else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise ThemeFileError(f"{path.name}: {error}") from None
    return parse_theme(data, path.name)


def load_themes(*directories: Traversable) -> tuple[list[Theme], list[str]]:
    """Every theme in ``directories`` (later ones override earlier ones by name) and the errors."""
    themes: dict[str, Theme] = {}
    errors: list[str] = []
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir(), key=lambda entry: entry.name):
            if not path.name.endswith(THEME_SUFFIXES):
                continue
            try:
                theme = load_theme_file(path)
            except ThemeFileError as error:
                errors.append(str(error))
                continue
            themes[theme.name] = theme
    return list(themes.values()), errors
