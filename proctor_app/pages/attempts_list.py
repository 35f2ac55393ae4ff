"""/attempts: the reviewers' list of attempts with their review and recording state."""

import reflex as rx

from proctor_app.components.attempt_player import every_interval
from proctor_app.components.local_time import local_time
from proctor_app.models import RecordingStatus, ReviewStatus
from proctor_app.pages.layout import page_frame, pager
from proctor_app.services.review import NO_RECORDING
from proctor_app.state.attempts_list import ANY, AttemptRow, AttemptsListState, RecordingBadge

PROGRESS_POLL_MS = 5000


def _label(value: str) -> str:
    return value.replace("_", " ")


def _filter_select(field: str, value, items: list[tuple[str, str]], dynamic=None, id: str = "",
                   label: str = "") -> rx.Component:
    return rx.select.root(
        rx.select.trigger(id=id, aria_label=label),
        rx.select.content(*[rx.select.item(label, value=key) for key, label in items], *(dynamic or [])),
        value=value, on_change=lambda v: AttemptsListState.set_filter(field, v),
    )


def _filters() -> rx.Component:
    state = AttemptsListState
    return rx.hstack(
        _filter_select("exam_filter", state.exam_filter, [(ANY, "All exams")],
                       [rx.foreach(state.exam_options, lambda o: rx.select.item(o[1], value=o[0]))],
                       id="filter-exam", label="Exam"),
        _filter_select("review_filter", state.review_filter,
                       [(ANY, "Any review")] + [(s.value, _label(s.value)) for s in ReviewStatus],
                       id="filter-review", label="Review"),
        _filter_select("recording_filter", state.recording_filter,
                       [(ANY, "Any recording"), (NO_RECORDING, "no recording")]
                       + [(s.value, _label(s.value)) for s in RecordingStatus],
                       id="filter-recording", label="Recording"),
        rx.text("Started from", size="2"),
        rx.input(type="date", value=state.date_from, id="filter-from", aria_label="Started from",
                 on_change=lambda v: state.set_filter("date_from", v)),
        rx.text("to", size="2"),
        rx.input(type="date", value=state.date_to, id="filter-to", aria_label="Started until",
                 on_change=lambda v: state.set_filter("date_to", v)),
        rx.form(rx.hstack(rx.input(name="search", placeholder="Candidate name or email",
                                   default_value=state.search, id="filter-search",
                                   aria_label="Search candidates by name or email"),
                          rx.button("Search", type="submit", id="search-submit")),
                on_submit=state.search_candidates),
        rx.button("Clear", variant="soft", on_click=state.clear_filters, id="clear-filters"),
        wrap="wrap", spacing="2", align="center",
    )


def _recording_badge(badge: RecordingBadge) -> rx.Component:
    return rx.badge(badge.stream, ": ", badge.summary, color_scheme=badge.color, class_name="recording-badge",
                    custom_attrs={"data-status": badge.status})


def _row(row: AttemptRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.vstack(rx.text(row.candidate), rx.text(row.email, size="1", color_scheme="gray"),
                                spacing="0")),
        rx.table.cell(rx.vstack(rx.text(row.exam), rx.text(row.origin, size="1", color_scheme="gray",
                                                            class_name="attempt-origin"), spacing="0")),
        rx.table.cell(rx.text(local_time(iso=row.started), size="2", class_name="attempt-started")),
        rx.table.cell(rx.text(local_time(iso=row.ended), size="2", class_name="attempt-ended")),
        rx.table.cell(row.status),
        rx.table.cell(rx.badge(row.review_status, color_scheme=row.review_color)),
        rx.table.cell(rx.flex(rx.foreach(row.recordings, _recording_badge),
                              rx.cond(row.recordings.length() == 0, rx.text("none", size="2", color_scheme="gray")),
                              direction="column", spacing="1")),
        rx.table.cell(rx.link("Open", href=f"/attempts/{row.id}/video", id=f"open-attempt-{row.id}")),
        class_name="attempt-row", custom_attrs={"data-attempt-id": row.id},
    )


def attempts_list_page() -> rx.Component:
    return page_frame(
        rx.vstack(
            _filters(),
            rx.cond(AttemptsListState.any_processing,
                    every_interval(ms=PROGRESS_POLL_MS, on_tick=AttemptsListState.refresh)),
            rx.table.root(
                rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in (
                    "Candidate", "Exam", "Started", "Ended", "Attempt", "Review", "Recording", "")])),
                rx.table.body(rx.foreach(AttemptsListState.rows, _row)),
                width="100%", id="attempts-table",
            ),
            rx.cond(AttemptsListState.total == 0, rx.text("No attempts match.", id="no-attempts")),
            pager(AttemptsListState, "attempt", "attempts"),
            width="100%", spacing="4",
        ),
        title="Attempts",
    )
