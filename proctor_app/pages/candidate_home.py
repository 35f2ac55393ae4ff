import reflex as rx

from proctor_app.components.language import t
from proctor_app.components.local_time import local_time
from proctor_app.i18n import N_
from proctor_app.pages.layout import page_frame
from proctor_app.state.candidate_home import CandidateHomeState, ExamRow
from proctor_app.state.locale import LocaleState

STATUS_COLORS = {"not_started": "gray", "in_progress": "amber", "submitted": "green", "expired": "red"}


def _moment(label: str, iso: rx.Var[str], class_name: str) -> rx.Component:
    return rx.cond(iso != "", rx.text(t(label), " ", local_time(iso=iso, lang=LocaleState.lang),
                                      size="1", color_scheme="gray", class_name=class_name))


def _exam_row(row: ExamRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(row.title),
        rx.table.cell(row.duration),
        rx.table.cell(rx.vstack(
            rx.badge(row.status_label, class_name="exam-status",
                     color_scheme=rx.match(row.status, *STATUS_COLORS.items(), "gray")),
            _moment(N_("Started"), row.started_at, "exam-started"),
            _moment(N_("Ended"), row.ended_at, "exam-ended"),
            spacing="1")),
        rx.table.cell(rx.link(rx.button(row.action_label), href=row.href)),
        class_name="exam-row",
    )


def _exam_table() -> rx.Component:
    return rx.table.root(
        rx.table.header(rx.table.row(
            rx.table.column_header_cell(t("Exam")),
            rx.table.column_header_cell(t("Duration")),
            rx.table.column_header_cell(t("Status")),
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
                    rx.text(t("No exams are assigned to you."), id="no-exams")),
            rx.spinner(),
        ),
        title=t("My exams"),
        language=CandidateHomeState.on_load,
    )
