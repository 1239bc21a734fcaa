"""``run.json``'s base URL: whatever ``ANTHROPIC_BASE_URL`` holds, a clear error or a URL with no secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.persistence.runmeta import BaseUrlError, public_url
from tests.core import programs

TOKEN = "Tok3nValue"  # a credential in the URL's user part: never shown, never written
URLS = st.builds(
    "{}://{}{}{}".format,
    st.sampled_from(["http", "https", "ftp", ""]),
    st.sampled_from(["", f"user:{TOKEN}@", f"{TOKEN}@"]),
    st.text(alphabet="ab1:[]%.\x1b/", max_size=12),
    st.sampled_from(["", ":8080", ":99999", ":-1", f"/v1?key={TOKEN}#f"]),
)


@given(url=st.text(max_size=40))
def test_any_text_is_a_url_or_a_base_url_error_never_another_exception(url: str) -> None:
    try:
        public_url(url)
    except BaseUrlError as error:
        assert "\x1b" not in str(error) and "ANTHROPIC_BASE_URL" in str(error)


@given(url=URLS)
def test_credentials_in_a_base_url_are_never_shown_nor_kept(url: str) -> None:
    try:
        shown = public_url(url)
    except BaseUrlError as error:
        assert f"{TOKEN}@" not in str(error) and f"key={TOKEN}" not in str(error)
        return
    assert shown is None or (f"{TOKEN}@" not in shown and "?" not in shown)


@pytest.mark.parametrize("url", ["http://[::1", "http://a\x1b[2J", f"http://user:{TOKEN}@api.example:99999/"])
@pytest.mark.parametrize("detach", [False, True])
def test_a_base_url_that_is_not_one_is_one_line_exit_2_and_creates_nothing(
    tmp_path: Path, url: str, detach: bool
) -> None:
    """Before, a ``[`` or an out-of-range port in ANTHROPIC_BASE_URL ended ``run`` in a traceback."""
    config = programs.write(tmp_path, programs.program([programs.agent("a")], max_turns=1))
    mode = "--detach" if detach else "--headless"
    env = {**os.environ, "ANTHROPIC_API_KEY": "sk-ant-test-0000000000", "ANTHROPIC_BASE_URL": url}
    done = subprocess.run(
        [sys.executable, "-m", "core.cli", "run", str(config), mode, "--runs-dir", "runs"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "is not a URL" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert TOKEN not in done.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
