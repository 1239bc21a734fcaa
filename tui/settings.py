"""Where the app keeps what the user chose (theme, ...) and where user themes live.

XDG_CONFIG_HOME is honoured so tests (and users) can move everything with one variable.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from core.persistence.atomic import DiskError, read_regular
from core.persistence.jsontext import parse_json

APP_DIR_NAME = "research-orchestrator"


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / APP_DIR_NAME


def user_themes_dir() -> Path:
    return config_dir() / "themes"


def settings_path() -> Path:
    return config_dir() / "settings.json"


SETTINGS_LIMIT = 1 << 20  # a settings file is a few hundred bytes


def load_settings() -> dict[str, Any]:
    """The saved settings, or {} when missing or unreadable (a bad file must not stop the app)."""
    try:
        data = parse_json(read_regular(settings_path(), limit=SETTINGS_LIMIT, kind="settings"))
    except (OSError, DiskError, ValueError):  # missing, not a regular file, not JSON (or too deep)
        return {}
    return data if isinstance(data, dict) else {}


def save_settings(**changes: Any) -> None:
    """Merge ``changes`` into the settings file, atomically (never a half-written file)."""
    path = settings_path()
    data = {**load_settings(), **changes}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".settings-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
