import reflex as rx

from proctor_app.pages.layout import page_frame
from proctor_app.state.candidate_home import CandidateHomeState, ExamRow

STATUS_COLORS = {"not_started": "gray", "in_progress": "amber", "submitted": "green", "expired": "red"}


def _exam_row(row: ExamRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(row.title),
        rx.table.cell(row.duration),
        rx.table.cell(rx.badge(row.status_label, class_name="exam-status",
                               color_scheme=rx.match(row.status, *STATUS_COLORS.items(), "gray"))),
        rx.table.cell(rx.link(rx.button(row.action_label), href=row.href)),
        class_name="exam-row",
    )


def _exam_table() -> rx.Component:
    return rx.table.root(
        rx.table.header(rx.table.row(
            rx.table.column_header_cell("Exam"),
            rx.table.column_header_cell("Duration"),
            rx.table.column_header_cell("Status"),
            rx.table.column_header_cell(""),
        )),
        rx.table.body(rx.foreach(CandidateHomeState.exams, _exam_row)),
        width="100%",
    )


def candidate_home_page() -> rx.Component:
    return page_frame(
        rx.cond(
            CandidateHomeState.loaded,
            rx.cond(CandidateHomeState.exams.length() > 0, _exam_table(),
                    rx.text("No exams are assigned to you.", id="no-exams")),
            rx.spinner(),
        ),
        title="My exams",
    )
