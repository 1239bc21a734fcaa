"""The retry log keeps incidents as data: current theme colours, current width, full request ids."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from textual.app import App, ComposeResult
from textual.color import Color

from core.view import Incident
from tui.screens.incident import IncidentScreen, incident_fields
from tui.themes import BUILTIN_THEMES_DIR, load_themes
from tui.widgets.retry_log import RetryLog, describe_incident

PRINTABLE = st.characters(blacklist_categories=("Cc", "Cs"))  # what an HTTP header can carry
LONG_ID = "req_011CV8sDR4pQ7mYbT5x2Zk9WqLmN"


def incident(**overrides: object) -> Incident:
    values: dict[str, object] = {
        "at": 1_700_000_000.0,
        "agent_id": "patents",
        "kind": "rate_limit",
        "status_code": 429,
        "request_id": LONG_ID,
        "attempt": 2,
        "wait_s": 12.0,
    }
    values.update(overrides)
    return Incident(**values)  # type: ignore[arg-type]


class LogApp(App[None]):
    def compose(self) -> ComposeResult:
        yield RetryLog(id="retries")

    def on_retry_log_details_requested(self, message: RetryLog.DetailsRequested) -> None:
        self.push_screen(IncidentScreen(message.incident))  # as the main screen does

    def on_mount(self) -> None:
        for theme in load_themes(BUILTIN_THEMES_DIR)[0]:
            self.register_theme(theme)
        self.theme = "research-night"


def shown(log: RetryLog) -> list[str]:
    return [log.render_line(y).text.rstrip() for y in range(log.size.height)]


def kind_colours(log: RetryLog) -> list[Color]:
    """The colours the line's kind is drawn in."""
    return [
        Color.from_rich_color(segment.style.color)
        for y in range(log.size.height)
        for segment in log.render_line(y)
        if segment.style and segment.style.color and "rate_limit" in segment.text
    ]


def close_to(colours: list[Color], expected: str) -> bool:
    want = Color.parse(expected)
    return bool(colours) and all(
        max(abs(a - b) for a, b in zip(c.rgb, want.rgb, strict=True)) <= 2 for c in colours
    )


async def test_a_theme_switch_recolours_lines_already_written() -> None:
    app = LogApp()
    async with app.run_test(size=(70, 10)) as pilot:
        log = app.query_one(RetryLog)
        log.log_incident(incident())
        await pilot.pause()
        night = app.current_theme.warning or ""
        assert close_to(kind_colours(log), night)
        app.theme = "research-paper"
        await pilot.pause()
        paper = app.current_theme.warning or ""
        assert not close_to([Color.parse(paper)], night)
        assert close_to(kind_colours(log), paper)


async def test_the_full_request_id_is_shown_and_lines_rewrap_to_the_current_width() -> None:
    app = LogApp()
    async with app.run_test(size=(90, 10)) as pilot:
        log = app.query_one(RetryLog)
        log.log_incident(incident())
        await pilot.pause()
        assert any(LONG_ID in line for line in shown(log))
        await pilot.resize_terminal(44, 10)
        await pilot.pause()
        lines = shown(log)
        assert all(cell_len(line) <= log.size.width for line in lines)
        assert LONG_ID in "".join(line.strip() for line in lines).replace(" ", "")


async def test_enter_on_a_line_opens_its_details_and_c_copies_the_request_id() -> None:
    app = LogApp()
    async with app.run_test(size=(90, 24)) as pilot:
        log = app.query_one(RetryLog)
        log.log_incident(incident(request_id="req_first"))
        log.log_incident(incident())
        log.focus()
        assert log.highlighted == 1  # the newest line is where the log starts
        await pilot.press("up", "enter")
        await pilot.pause()
        assert isinstance(app.screen, IncidentScreen)
        assert app.screen.incident.request_id == "req_first"
        await pilot.press("c")
        assert app.clipboard == "req_first"
        await pilot.press("escape")
        assert app.screen is not None and not isinstance(app.screen, IncidentScreen)


async def test_the_log_stays_bounded() -> None:
    app = LogApp()
    async with app.run_test(size=(60, 10)) as pilot:
        log = app.query_one(RetryLog)
        for n in range(RetryLog.MAX_LINES + 5):
            log.log_incident(incident(attempt=n))
        await pilot.pause()
        assert log.option_count == len(log.entries) == RetryLog.MAX_LINES
        assert log.entries[0].attempt == 5


@settings(max_examples=60, deadline=None)
@given(
    request_id=st.one_of(st.none(), st.text(PRINTABLE, min_size=1, max_size=80)),
    message=st.text(max_size=200),
    fatal=st.booleans(),
)
def test_every_detail_row_carries_the_whole_value(request_id: str | None, message: str, fatal: bool) -> None:
    item = incident(request_id=request_id, message=message, fatal=fatal, attempt=None if fatal else 1)
    fields = dict(incident_fields(item))
    if request_id:
        assert fields["request id"] == request_id
        assert request_id in describe_incident(item).plain
    if message:
        assert fields["message"] == message
