from dataclasses import dataclass

from proctor_app.auth.roles import CANDIDATE
from proctor_app.db import session_scope
from proctor_app.models import AttemptStatus
from proctor_app.services.attempts import assigned_exams
from proctor_app.state.auth import AuthState, requires

STATUS_LABELS = {
    AttemptStatus.not_started: "Not started",
    AttemptStatus.in_progress: "In progress",
    AttemptStatus.submitted: "Submitted",
    AttemptStatus.expired: "Expired",
}
ACTION_LABELS = {
    AttemptStatus.not_started: "Open",
    AttemptStatus.in_progress: "Continue",
    AttemptStatus.submitted: "View",
    AttemptStatus.expired: "View",
}


@dataclass
class ExamRow:
    exam_id: int
    title: str
    duration: str
    status: str
    status_label: str
    action_label: str
    href: str


def _time_left(seconds: int) -> str:
    return "less than a minute left" if seconds < 60 else f"{seconds // 60} min left"


class CandidateHomeState(AuthState):
    exams: list[ExamRow] = []
    loaded: bool = False

    @requires(CANDIDATE)
    def on_load(self):
        with session_scope() as db:
            rows = assigned_exams(db, self._user.id)
        self.exams = [
            ExamRow(exam_id=row.exam_id, title=row.title, duration=f"{row.duration_minutes} min",
                    status=row.status,
                    status_label=STATUS_LABELS[row.status] + (
                        f", {_time_left(row.seconds_left)}" if row.seconds_left is not None else ""),
                    action_label=ACTION_LABELS[row.status],
                    href=f"/candidate/exams/{row.exam_id}")
            for row in rows]
        self.loaded = True
