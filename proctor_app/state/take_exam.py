"""The candidate's exam page: consent, device check, the exam, and the submitted view.

The step shown always follows the attempt in the database, so a reload lands on the right step.
Every handler re-reads the attempt through `attempt_for` (role, assignment and ownership checked)
and shows it as the database has it afterwards, also when the action was refused.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlmodel import Session

from proctor_app.auth.roles import CANDIDATE
from proctor_app.db import session_scope
from proctor_app.models import Attempt, AttemptStatus, Exam, QuestionKind
from proctor_app.services import attempts
from proctor_app.services.attempts import AttemptError
from proctor_app.services.consent import capture_plan, consent_lines
from proctor_app.services.settings import get_setting
from proctor_app.state.auth import AuthState, requires


@dataclass
class QuestionView:
    id: int = 0
    number: int = 0
    kind: str = ""
    prompt: str = ""
    options: list[str] = field(default_factory=list)
    answer: str = ""


@dataclass
class NavItem:
    index: int
    label: str
    answered: bool


class TakeExamState(AuthState):
    # consent | check | exam | done | refused; "" until the page has loaded.
    step: str = ""
    refusal: str = ""
    # Why the last action was refused (closed attempt, bad value, ...).
    notice: str = ""
    exam_title: str = ""
    exam_description: str = ""
    duration_s: int = 0

    consent: list[str] = []
    consent_checked: bool = False

    uses_camera: bool = False
    records_screen: bool = False
    devices_required: bool = False
    device_round: int = 0
    # "" while checking, then "ok" or "failed".
    device_status: str = ""
    device_error: str = ""

    clock_synced: bool = False
    # The exam records, streams or takes snapshots: the page keeps the recording indicator's place.
    proctored: bool = False
    deadline_ms: int = 0

    index: int = 0
    current: QuestionView = QuestionView()
    nav: list[NavItem] = []
    saved_note: str = ""
    answered_count: int = 0

    auto_submitted: bool = False
    review: list[QuestionView] = []

    _questions: list[QuestionView] = []
    _consent_text: str = ""
    _clock_offset_ms: int | None = None

    def _attempt(self, db: Session) -> Attempt:
        return attempts.attempt_for_route(db, self.exam_id, self._user.id)

    def _act(self, action: Callable[[Session, Attempt], object] | None = None) -> bool:
        """Run `action` on the candidate's own attempt, then show the attempt as stored."""
        try:
            with session_scope() as db:
                attempt = self._attempt(db)
                if action is not None:
                    action(db, attempt)
                self._show(db, attempt)
            return True
        except AttemptError as exc:
            message = self._t(exc.msgid, **exc.params)
        # The action was rolled back; show what is stored now, with the reason.
        try:
            with session_scope() as db:
                self._show(db, self._attempt(db))
            self.notice = message
        except AttemptError as exc:
            self.step, self.refusal = "refused", self._t(exc.msgid, **exc.params)
        return False

    def _show(self, db: Session, attempt: Attempt) -> None:
        exam = db.get(Exam, attempt.exam_id)
        self.exam_title, self.exam_description = exam.title, exam.description
        self.duration_s = exam.duration_minutes * 60
        if attempt.status == AttemptStatus.not_started:
            plan = capture_plan(db, exam)
            self.uses_camera, self.devices_required = plan.uses_camera, plan.required
            self.records_screen = plan.screen_recording
            self.consent = consent_lines(plan, get_setting(db, "retention_days"), self.lang)
            self._consent_text = "\n".join(self.consent)
            self.step = "check" if attempt.consent_at else "consent"
            return
        self._load_questions(db, attempt)
        if attempt.status == AttemptStatus.in_progress:
            if self.step != "exam":  # read as the exam shows, not again at every answer
                self.proctored = capture_plan(db, exam).proctored
            self.step = "exam"
            self.deadline_ms = int(attempt.deadline_at.timestamp() * 1000)
            self.index = min(self.index, len(self._questions) - 1) if self._questions else 0
            self._show_question()
        else:
            self.step = "done"
            self.auto_submitted = attempts.ended_automatically(db, attempt)
            self.review = self._questions

    def _load_questions(self, db: Session, attempt: Attempt) -> None:
        answers = attempts.answers_of(db, attempt)
        self._questions = [
            QuestionView(id=q.id, number=n, kind=q.kind, prompt=q.prompt, options=list(q.options),
                         answer=answers.get(q.id, ""))
            for n, q in enumerate(attempts.questions_of(db, attempt.exam_id), start=1)]
        self.answered_count = sum(1 for q in self._questions if q.answer.strip())
        self.nav = [NavItem(index=i, label=str(q.number), answered=bool(q.answer.strip()))
                    for i, q in enumerate(self._questions)]

    def _show_question(self) -> None:
        self.current = self._questions[self.index] if self._questions else QuestionView()

    def _view_current(self) -> None:
        """Record that the current question is on screen."""
        if self.step == "exam" and self._questions:
            question_id = self._questions[self.index].id
            self._act(lambda db, attempt: attempts.view_question(db, attempt, question_id))

    @requires(CANDIDATE)
    def on_load(self):
        self.reset()
        if self._act():
            self._view_current()

    @requires(CANDIDATE)
    def redraw(self):
        """The language changed: write this state's texts again (the step and the inputs stay)."""
        self.notice = self.saved_note = ""
        self._act()

    @requires(CANDIDATE)
    def set_consent_checked(self, checked: bool):
        self.consent_checked = bool(checked)

    @requires(CANDIDATE)
    def accept_consent(self):
        if not self.consent_checked:
            self.notice = self._t("Tick the box to confirm that you have read and accept the terms.")
            return
        shown, lang = self._consent_text, self.lang

        def accept(db: Session, attempt: Attempt) -> None:
            plan = capture_plan(db, db.get(Exam, attempt.exam_id))
            current = "\n".join(consent_lines(plan, get_setting(db, "retention_days"), lang))
            if current != shown:
                raise AttemptError("The terms have changed since the page was loaded: read them "
                                   "again, then accept.")
            attempts.accept_consent(db, attempt, current)

        self.notice = ""
        if not self._act(accept):
            self.consent_checked = False

    @requires(CANDIDATE)
    def device_result(self, result: dict):
        ok = result.get("ok") is True
        self.device_status = "ok" if ok else "failed"
        self.device_error = "" if ok else str(result.get("error", ""))[:500]
        self._act(lambda db, attempt: attempts.record_device_check(db, attempt, ok, result))

    @requires(CANDIDATE)
    def retry_devices(self):
        self.device_round += 1
        self.device_status = self.device_error = ""

    @requires(CANDIDATE)
    def clock_sync(self, sync: dict):
        self.clock_synced = True
        offset, rtt = sync.get("offset_ms"), sync.get("rtt_ms")
        self._clock_offset_ms = attempts.clock_offset(offset)
        if self.step == "exam" and self._clock_offset_ms is not None:
            self._act(lambda db, attempt: attempts.record_clock_sync(db, attempt, offset, rtt))

    @requires(CANDIDATE)
    def start_exam(self):
        if self.uses_camera and self.devices_required and self.device_status != "ok":
            self.notice = self._t("This exam needs a working camera and microphone: pass the check first.")
            return
        self.notice = ""
        offset = self._clock_offset_ms
        self.index = 0
        if self._act(lambda db, attempt: attempts.start(db, attempt, offset)):
            self._view_current()

    def _go_to(self, index: int) -> None:
        if (self.step != "exam" or not isinstance(index, int) or index == self.index
                or not 0 <= index < len(self._questions)):
            return
        self.index = index
        self.notice = ""
        self._view_current()

    @requires(CANDIDATE)
    def go_to(self, index: int):
        self._go_to(index)

    @requires(CANDIDATE)
    def previous_question(self):
        self._go_to(self.index - 1)

    @requires(CANDIDATE)
    def next_question(self):
        self._go_to(self.index + 1)

    def _save(self, question_id: int, value: str) -> None:
        saved = self._act(lambda db, attempt: attempts.save_answer(db, attempt, question_id, value))
        if saved:
            self.notice = ""
        self.saved_note = self._t("All answers saved") if saved else self._t("Not saved")

    @requires(CANDIDATE)
    def choose(self, value: str):
        if self.current.kind == QuestionKind.single_choice:
            self._save(self.current.id, value)

    @requires(CANDIDATE)
    def save_text(self, question_id: int, value: str):
        self._save(question_id, value)

    @requires(CANDIDATE)
    def submit(self):
        self._act(attempts.submit)

    @requires(CANDIDATE)
    def time_up(self):
        """The browser's countdown reached zero: the server closes the attempt once its own
        clock agrees (attempt_for closes overdue attempts), otherwise nothing changes."""
        self._act()
