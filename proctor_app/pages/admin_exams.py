import reflex as rx

from proctor_app.models import QuestionKind
from proctor_app.pages.layout import page_frame
from proctor_app.services.exam_admin import DURATION_RANGE, SNAPSHOT_INTERVAL_RANGE, ExamSummary
from proctor_app.state.admin_exams import (
    NEW_EXAM,
    AdminExamEditState,
    AdminExamListState,
    AssigneeRow,
    QuestionRow,
)

State = AdminExamEditState
KIND_LABELS = {QuestionKind.single_choice: "Single choice", QuestionKind.free_text: "Free text"}
FLAG_LABELS = {
    "live_video": "Live video to proctors",
    "recording": "Record camera and microphone",
    "screen_recording": "Record the screen",
    "recording_required": "Recording required (no recording, no exam)",
    "snapshots": "Camera snapshots (also without video recording)",
}


def _error(message, id: str) -> rx.Component:
    return rx.cond(message != "", rx.callout(message, color_scheme="red", id=id, width="100%"))


# The list

def _exam_row(exam: ExamSummary) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.link(exam.title, href=f"/admin/exams/{exam.id}", id=f"exam-link-{exam.id}")),
        rx.table.cell(exam.duration_minutes, " min"),
        rx.table.cell(exam.questions),
        rx.table.cell(exam.candidates),
        rx.table.cell(exam.proctors),
        rx.table.cell(exam.attempts),
        rx.table.cell(exam.flags),
        id=f"exam-{exam.id}",
    )


def admin_exams_page() -> rx.Component:
    return page_frame(
        rx.link(rx.button("New exam", id="new-exam"), href=f"/admin/exams/{NEW_EXAM}"),
        rx.cond(
            AdminExamListState.exams.length() > 0,
            rx.table.root(
                rx.table.header(rx.table.row(
                    *[rx.table.column_header_cell(label) for label in
                      ("Title", "Duration", "Questions", "Candidates", "Proctors", "Attempts", "On")])),
                rx.table.body(rx.foreach(AdminExamListState.exams, _exam_row)),
                width="100%", margin_top="1em", id="exams-table",
            ),
            rx.text("No exams yet.", margin_top="1em"),
        ),
        title="Exams",
    )


# One exam

def _labelled(label: str, control: rx.Component) -> rx.Component:
    # A <label> around both: the control is named by the text (and a click on it focuses it).
    return rx.el.label(rx.vstack(rx.text(label, size="2", weight="medium"), control, spacing="1", width="100%"),
                       display="block", width="100%")


def _exam_form() -> rx.Component:
    return rx.form(
        rx.vstack(
            _labelled("Title", rx.input(name="title", default_value=State.title, id="exam-title",
                                        width="100%")),
            _labelled("Description", rx.text_area(name="description", default_value=State.description,
                                                  id="exam-description", width="100%")),
            rx.hstack(
                _labelled(f"Duration (minutes, {DURATION_RANGE[0]}-{DURATION_RANGE[1]})",
                          rx.input(name="duration_minutes", type="number", id="exam-duration",
                                   default_value=State.duration_minutes.to_string())),
                _labelled(f"Snapshot every (seconds, {SNAPSHOT_INTERVAL_RANGE[0]}-"
                          f"{SNAPSHOT_INTERVAL_RANGE[1]})",
                          rx.input(name="snapshot_interval_s", type="number", id="exam-snapshot-interval",
                                   default_value=State.snapshot_interval_s.to_string())),
                spacing="4", width="100%",
            ),
            *[rx.checkbox(label, name=flag, default_checked=getattr(State, flag), id=f"exam-{flag}")
              for flag, label in FLAG_LABELS.items()],
            _error(State.exam_error, "exam-error"),
            rx.button(rx.cond(State.current_exam_id == 0, "Create exam", "Save exam"),
                      type="submit", id="save-exam"),
            spacing="3", width="100%",
        ),
        on_submit=State.save_exam,
        key=State.exam_form_key,
    )


def _question_card(question: QuestionRow) -> rx.Component:
    return rx.card(
        rx.hstack(
            rx.vstack(
                rx.hstack(rx.text(question.number, ".", weight="bold"),
                          rx.badge(rx.match(question.kind, *KIND_LABELS.items(), question.kind)),
                          rx.text(question.prompt, id=f"question-prompt-{question.id}")),
                rx.foreach(question.options, lambda option: rx.text("• ", option, size="2")),
                spacing="1",
            ),
            rx.spacer(),
            rx.button("↑", size="1", variant="soft", id=f"question-up-{question.id}",
                      on_click=State.move_question(question.id, -1)),
            rx.button("↓", size="1", variant="soft", id=f"question-down-{question.id}",
                      on_click=State.move_question(question.id, 1)),
            rx.button("Edit", size="1", variant="soft", id=f"question-edit-{question.id}",
                      on_click=State.edit_question(question.id)),
            rx.button("Delete", size="1", variant="soft", color_scheme="red",
                      id=f"question-delete-{question.id}", on_click=State.delete_question(question.id)),
            align="start", width="100%",
        ),
        id=f"question-{question.id}", width="100%",
    )


def _question_form() -> rx.Component:
    return rx.card(
        rx.form(
            rx.vstack(
                rx.heading(rx.cond(State.editing_question_id == 0, "New question", "Edit question"),
                           size="3"),
                rx.el.select(*[rx.el.option(label, value=kind) for kind, label in KIND_LABELS.items()],
                             name="kind", value=State.question_kind, on_change=State.choose_kind,
                             id="question-kind", aria_label="Kind of question"),
                _labelled("Question", rx.text_area(name="prompt", default_value=State.question_prompt,
                                                   id="question-prompt", width="100%")),
                rx.cond(State.question_kind == QuestionKind.single_choice,
                        _labelled("Options, one per line",
                                  rx.text_area(name="options", default_value=State.question_options,
                                               id="question-options", width="100%", rows="4"))),
                _error(State.question_error, "question-error"),
                rx.hstack(
                    rx.button(rx.cond(State.editing_question_id == 0, "Add question", "Save question"),
                              type="submit", id="save-question"),
                    rx.cond(State.editing_question_id != 0,
                            rx.button("Cancel", type="button", variant="soft", id="cancel-question",
                                      on_click=State.cancel_question_edit)),
                ),
                spacing="3", width="100%",
            ),
            on_submit=State.save_question,
            key=State.question_form_key,
        ),
        width="100%",
    )


def _assignee(person: AssigneeRow) -> rx.Component:
    return rx.checkbox(
        rx.text(person.name, " <", person.email, "> ", person.role,
                rx.cond(person.active, "", " (deactivated)")),
        name=f"assign-{person.id}", default_checked=person.assigned, id=f"assign-{person.id}",
    )


def _assignments_form() -> rx.Component:
    return rx.form(
        rx.vstack(
            rx.foreach(State.people, _assignee),
            _error(State.assign_error, "assign-error"),
            rx.button("Save assignments", type="submit", id="save-assignments"),
            spacing="2",
        ),
        on_submit=State.save_assignments,
        key=State.assign_form_key,
    )


def _exam_details() -> rx.Component:
    return rx.vstack(
        rx.heading("Questions", size="4", margin_top="1em"),
        rx.foreach(State.questions, _question_card),
        _question_form(),
        rx.heading("Assigned candidates and proctors", size="4", margin_top="1em"),
        _assignments_form(),
        spacing="3", width="100%",
    )


def admin_exam_edit_page() -> rx.Component:
    return page_frame(
        rx.link("← All exams", href="/admin/exams"),
        rx.cond(
            State.not_found != "",
            rx.callout(State.not_found, color_scheme="red", id="exam-not-found", margin_top="1em"),
            rx.vstack(
                rx.cond(State.notice != "",
                        rx.callout(State.notice, color_scheme="green", id="exam-notice", width="100%")),
                _exam_form(),
                rx.cond(State.current_exam_id == 0,
                        rx.text("Create the exam first; then add its questions and assign people."),
                        _exam_details()),
                spacing="3", width="100%", margin_top="1em",
            ),
        ),
        title="Exam",
    )
