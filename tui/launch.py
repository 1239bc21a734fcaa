"""The ``research-orchestrator`` console script: core's command line with the terminal app as its front end.

It lives in ``tui`` because only here may both be seen (``core`` never imports ``tui``). The app, and
Textual with it, is imported only when a command opens it, so ``--help``, ``validate`` and ``runs``
start without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from core import cli


def open_app(
    *,
    runs_dir: Path,
    config_path: Path | None = None,
    control_factory: cli.Factory | None = None,
    simulate: bool | None = None,
) -> int:
    """Run the terminal app until the user quits (see :func:`tui.app.run_app`)."""
    from tui.app import run_app

    return run_app(
        runs_dir=runs_dir, config_path=config_path, control_factory=control_factory, simulate=simulate
    )


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main(argv, open_app=open_app)


if __name__ == "__main__":
    raise SystemExit(main())
