from dataclasses import dataclass

from proctor_app.auth.roles import CANDIDATE
from proctor_app.db import session_scope
from proctor_app.i18n import N_, format_number
from proctor_app.models import AttemptStatus
from proctor_app.services.attempts import assigned_exams
from proctor_app.services.review import iso_time
from proctor_app.state.auth import AuthState, requires

STATUS_LABELS = {
    AttemptStatus.not_started: N_("Not started"),
    AttemptStatus.in_progress: N_("In progress"),
    AttemptStatus.submitted: N_("Submitted"),
    AttemptStatus.expired: N_("Expired"),
}
ACTION_LABELS = {
    AttemptStatus.not_started: N_("Open"),
    AttemptStatus.in_progress: N_("Continue"),
    AttemptStatus.submitted: N_("View"),
    AttemptStatus.expired: N_("View"),
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
    # UTC ISO instants, shown in the browser's time zone; "" before they happen.
    started_at: str
    ended_at: str


class CandidateHomeState(AuthState):
    exams: list[ExamRow] = []
    loaded: bool = False

    def _time_left(self, seconds: int) -> str:
        if seconds < 60:
            return self._t("less than a minute left")
        return self._t("{minutes} min left", minutes=format_number(self.lang, seconds // 60))

    def _status_label(self, status: str, seconds_left: int | None) -> str:
        label = self._t(STATUS_LABELS[status])
        return label if seconds_left is None else f"{label}, {self._time_left(seconds_left)}"

    @requires(CANDIDATE)
    def on_load(self):
        with session_scope() as db:
            rows = assigned_exams(db, self._user.id)
        self.exams = [
            ExamRow(exam_id=row.exam_id, title=row.title,
                    duration=self._t("{minutes} min", minutes=format_number(self.lang, row.duration_minutes)),
                    status=row.status, status_label=self._status_label(row.status, row.seconds_left),
                    action_label=self._t(ACTION_LABELS[row.status]),
                    href=f"/candidate/exams/{row.exam_id}",
                    started_at=iso_time(row.started_at), ended_at=iso_time(row.ended_at))
            for row in rows]
        self.loaded = True
