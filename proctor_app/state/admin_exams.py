import re
from collections.abc import Callable
from dataclasses import dataclass

import reflex as rx
from sqlmodel import Session

from proctor_app.auth.roles import ADMIN
from proctor_app.db import session_scope
from proctor_app.models import QuestionKind
from proctor_app.services import exam_admin, organisations
from proctor_app.services.exam_admin import ExamSummary
from proctor_app.state.auth import AuthState, requires

NEW_EXAM = "new"


class AdminExamListState(AuthState):
    exams: list[ExamSummary] = []

    @requires(ADMIN)
    def on_load(self):
        with session_scope() as db:
            self.exams = exam_admin.list_exams(db, organisations.visible_organisation_id(self._user))


@dataclass
class QuestionRow:
    id: int
    number: int
    kind: str
    prompt: str
    options: list[str]


@dataclass
class AssigneeRow:
    id: int
    name: str
    email: str
    role: str
    active: bool
    assigned: bool


class AdminExamEditState(AuthState):
    # The exam being edited; 0 while a new one is being written (route /admin/exams/new).
    current_exam_id: int = 0
    not_found: str = ""
    title: str = ""
    description: str = ""
    duration_minutes: int = 0
    snapshot_interval_s: int = 0
    live_video: bool = False
    recording: bool = False
    screen_recording: bool = False
    recording_required: bool = False
    snapshots: bool = False
    questions: list[QuestionRow] = []
    people: list[AssigneeRow] = []
    # The question form: editing_question_id 0 adds a new question.
    editing_question_id: int = 0
    question_kind: str = QuestionKind.single_choice
    question_prompt: str = ""
    question_options: str = ""
    # The forms are uncontrolled; bumping a key rebuilds that form from the saved values.
    exam_form_key: int = 0
    question_form_key: int = 0
    assign_form_key: int = 0
    exam_error: str = ""
    question_error: str = ""
    assign_error: str = ""
    notice: str = ""

    def _show_exam(self, fields: dict) -> None:
        for name, value in fields.items():
            setattr(self, name, value)

    def _reload(self, db: Session) -> None:
        exam = exam_admin.get_exam(db, self._user.id, self.current_exam_id)
        self._show_exam(exam_admin.exam_fields(exam))
        self.questions = [QuestionRow(id=q.id, number=i + 1, kind=q.kind, prompt=q.prompt,
                                      options=list(q.options))
                          for i, q in enumerate(exam_admin.list_questions(db, exam.id))]
        assigned = exam_admin.assigned_user_ids(db, exam.id)
        self.people = [AssigneeRow(id=u.id, name=u.name, email=u.email, role=u.role,
                                   active=u.active, assigned=u.id in assigned)
                       for u in exam_admin.assignable_users(db, exam.organisation_id)]

    def _clear_question_form(self) -> None:
        self.editing_question_id = 0
        self.question_kind = QuestionKind.single_choice
        self.question_prompt = self.question_options = ""
        self.question_form_key += 1

    def _change(self, error_field: str, change: Callable[[Session], None], done: str) -> bool:
        """Run one change to the exam; show the result, or the rule it broke next to its form."""
        try:
            with session_scope() as db:
                change(db)
        except exam_admin.ExamAdminError as exc:
            setattr(self, error_field, str(exc))
            self.notice = ""
            return False
        self.exam_error = self.question_error = self.assign_error = ""
        self.notice = done
        with session_scope() as db:
            self._reload(db)
        return True

    @requires(ADMIN)
    def on_load(self):
        self.exam_error = self.question_error = self.assign_error = self.notice = self.not_found = ""
        self.questions, self.people = [], []
        self._clear_question_form()
        self.exam_form_key += 1
        self.assign_form_key += 1
        raw_id = self.exam_id
        self.current_exam_id = 0
        with session_scope() as db:
            if raw_id == NEW_EXAM:
                self._show_exam(exam_admin.new_exam_defaults(db))
                return
            try:
                # At most 18 digits: anything longer is no row id and would overflow the database integer.
                if not re.fullmatch(r"[0-9]{1,18}", raw_id):
                    raise exam_admin.ExamAdminError(f"There is no exam with id {raw_id}.")
                exam_admin.get_exam(db, self._user.id, int(raw_id))
            except exam_admin.ExamAdminError as exc:
                self.not_found = str(exc)
                return
            self.current_exam_id = int(raw_id)
            self._reload(db)

    @requires(ADMIN)
    def save_exam(self, form: dict):
        # Unchecked boxes are simply absent from a submitted form.
        fields = {**form, **{flag: flag in form for flag in exam_admin.FLAGS}}
        actor, exam_id = self._user.id, self.current_exam_id
        if exam_id:
            if self._change("exam_error", lambda db: exam_admin.update_exam(db, actor, exam_id, fields),
                            "Exam saved."):
                self.exam_form_key += 1
            return
        try:
            with session_scope() as db:
                exam = exam_admin.create_exam(db, actor, fields)
        except exam_admin.ExamAdminError as exc:
            self.exam_error = str(exc)
            return
        return rx.redirect(f"/admin/exams/{exam.id}")

    @requires(ADMIN)
    def choose_kind(self, kind: str):
        self.question_kind = kind

    @requires(ADMIN)
    def edit_question(self, question_id: int):
        row = next((q for q in self.questions if q.id == int(question_id)), None)
        if row is None:
            return
        self.editing_question_id, self.question_kind = row.id, row.kind
        self.question_prompt, self.question_options = row.prompt, "\n".join(row.options)
        self.question_error = ""
        self.question_form_key += 1

    @requires(ADMIN)
    def cancel_question_edit(self):
        self._clear_question_form()
        self.question_error = ""

    @requires(ADMIN)
    def save_question(self, form: dict):
        actor, question_id, kind = self._user.id, self.editing_question_id, form.get("kind", "")
        prompt, options = form.get("prompt", ""), exam_admin.split_options(form.get("options", ""))
        if question_id:
            saved = self._change("question_error", lambda db: exam_admin.update_question(
                db, actor, question_id, kind, prompt, options), "Question saved.")
        else:
            exam_id = self.current_exam_id
            saved = self._change("question_error", lambda db: exam_admin.add_question(
                db, actor, exam_id, kind, prompt, options), "Question added.")
        if saved:
            self._clear_question_form()

    @requires(ADMIN)
    def delete_question(self, question_id: int):
        actor = self._user.id
        if self._change("question_error",
                        lambda db: exam_admin.delete_question(db, actor, int(question_id)),
                        "Question deleted.") and self.editing_question_id == int(question_id):
            self._clear_question_form()

    @requires(ADMIN)
    def move_question(self, question_id: int, offset: int):
        actor = self._user.id
        self._change("question_error",
                     lambda db: exam_admin.move_question(db, actor, int(question_id), int(offset)),
                     "Order saved.")

    @requires(ADMIN)
    def save_assignments(self, form: dict):
        actor, exam_id = self._user.id, self.current_exam_id
        chosen = [person.id for person in self.people if f"assign-{person.id}" in form]
        if self._change("assign_error",
                        lambda db: exam_admin.set_assignments(db, actor, exam_id, chosen),
                        "Assignments saved."):
            self.assign_form_key += 1
