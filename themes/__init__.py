"""The built-in themes, shipped inside the package as ``tui.builtin_themes`` (see pyproject.toml)."""
