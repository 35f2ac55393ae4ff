"""/attempts: every attempt for reviewers, with filters, candidate search and pages."""

from dataclasses import dataclass
from datetime import date


from proctor_app.auth.roles import STAFF_REVIEW
from proctor_app.db import session_scope
from proctor_app.models import RecordingStatus, ReviewStatus
from proctor_app.services import organisations, review
from proctor_app.state.attempt_video import STATUS_COLORS
from proctor_app.state.auth import AuthState, requires

ANY = "any"
REVIEW_COLORS = {ReviewStatus.not_reviewed: "gray", ReviewStatus.clear: "green",
                 ReviewStatus.suspicious: "amber", ReviewStatus.violation: "red"}
FILTERS = ("exam_filter", "review_filter", "recording_filter", "date_from", "date_to")


@dataclass
class RecordingBadge:
    stream: str
    status: str
    summary: str
    color: str


@dataclass
class AttemptRow:
    id: int
    candidate: str
    email: str
    exam: str
    # The organisation, and the caller's external id for an API session.
    origin: str
    # UTC ISO instants, shown in the viewer's time zone.
    started: str
    ended: str
    status: str
    review_status: str
    review_color: str
    recordings: list[RecordingBadge]


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


class AttemptsListState(AuthState):
    rows: list[AttemptRow] = []
    total: int = 0
    page: int = 0
    pages: int = 1
    # While a listed recording is processing, the page refreshes itself to show the progress.
    any_processing: bool = False
    exam_options: list[list[str]] = []
    exam_filter: str = ANY
    review_filter: str = ANY
    recording_filter: str = ANY
    date_from: str = ""
    date_to: str = ""
    search: str = ""

    def _reload(self) -> None:
        with session_scope() as db:
            allowed = review.reviewable_exam_ids(db, self._user)
        flt = review.AttemptFilter(
            organisation_id=organisations.visible_organisation_id(self._user),
            allowed_exam_ids=None if allowed is None else tuple(allowed),
            exam_id=int(self.exam_filter) if self.exam_filter.isdigit() else None,
            review_status="" if self.review_filter == ANY else self.review_filter,
            recording_status="" if self.recording_filter == ANY else self.recording_filter,
            started_from=_date(self.date_from), started_to=_date(self.date_to), candidate=self.search)
        with session_scope() as db:
            self.exam_options = [[str(e.id), e.title] for e in review.reviewable_exams(db, self._user, allowed)]
            listings, self.total = review.list_attempts(db, flt, self.page)
            self.pages = max(1, -(-self.total // review.PAGE_SIZE))
            if self.page >= self.pages:
                self.page = self.pages - 1
                listings, self.total = review.list_attempts(db, flt, self.page)
            origins = organisations.origin_marks(db, [item.attempt.id for item in listings])
        self.rows = [AttemptRow(
            id=item.attempt.id, candidate=item.candidate.name, email=item.candidate.email,
            exam=item.exam.title, origin=origins.get(item.attempt.id, ""),
            started=review.iso_time(item.attempt.started_at),
            ended=review.iso_time(item.attempt.ended_at), status=item.attempt.status.replace("_", " "),
            review_status=item.attempt.review_status.replace("_", " "),
            review_color=REVIEW_COLORS.get(item.attempt.review_status, "gray"),
            recordings=[RecordingBadge(stream=r.stream, status=r.status.replace("_", " "),
                                       summary=review.recording_summary(r),
                                       color=STATUS_COLORS.get(r.status, "gray"))
                        for r in item.recordings],
        ) for item in listings]
        self.any_processing = any(r.status == RecordingStatus.processing
                                  for item in listings for r in item.recordings)

    @requires(STAFF_REVIEW)
    def on_load(self):
        self._reload()

    @requires(STAFF_REVIEW)
    def refresh(self):
        self._reload()

    @requires(STAFF_REVIEW)
    def set_filter(self, name: str, value: str):
        if name not in FILTERS:
            return
        if name == "recording_filter" and value not in {ANY, review.NO_RECORDING, *RecordingStatus}:
            return
        if name == "review_filter" and value not in {ANY, *ReviewStatus}:
            return
        setattr(self, name, value.strip()[:200])
        self.page = 0
        self._reload()

    @requires(STAFF_REVIEW)
    def search_candidates(self, form: dict):
        self.search = str(form.get("search", "")).strip()[:200]
        self.page = 0
        self._reload()

    @requires(STAFF_REVIEW)
    def clear_filters(self):
        self.exam_filter = self.review_filter = self.recording_filter = ANY
        self.date_from = self.date_to = self.search = ""
        self.page = 0
        self._reload()

    @requires(STAFF_REVIEW)
    def go_to_page(self, page: int):
        self.page = max(0, min(int(page), self.pages - 1))
        self._reload()
