"""An exam with live video of a test's own: two proctors and its candidates (who sign in with the
demo password), attempts started with upload tokens; and the live events of an attempt."""

import uuid
from dataclasses import dataclass

from sqlmodel import select

from proctor_app.auth import sessions
from proctor_app.auth.sessions import SESSION_COOKIE
from proctor_app.db import session_scope
from proctor_app.demo import DEMO_PASSWORD
from proctor_app.models import ProctoringEvent, QuestionKind, Role, User
from proctor_app.services import attempts
from proctor_app.services.uploads import issue_upload_token
from tests.support.factories import assign, make_exam, make_user, start_attempt


@dataclass(frozen=True)
class LiveExam:
    exam_id: int
    candidates: tuple[str, ...]
    proctors: tuple[str, str]  # both assigned to the exam
    grants: tuple[tuple[int, str], ...] = ()  # (attempt id, upload token) per started attempt

    @property
    def candidate(self) -> str:
        return self.candidates[0]

    @property
    def attempt_id(self) -> int:
        return self.grants[0][0]

    @property
    def token(self) -> str:
        return self.grants[0][1]

    @property
    def publish_url(self) -> str:
        return publish_url(self.attempt_id)

    def view_url(self, stream: str = "camera_low") -> str:
        return f"/api/live/attempts/{self.attempt_id}/streams/{stream}/view"


def publish_url(attempt_id: int) -> str:
    return f"/api/live/attempts/{attempt_id}/publish"


def make_live_exam(live_video: bool = True, start: bool = True, candidates: int = 1,
                   screen: bool = False) -> LiveExam:
    tag = uuid.uuid4().hex[:8]
    with session_scope() as db:
        exam = make_exam(db, title=f"Live test {tag}", duration_minutes=30, live_video=live_video,
                         recording=True, screen_recording=screen, recording_required=False,
                         questions=[dict(kind=QuestionKind.free_text, prompt="Why watch live?")])
        people = [make_user(db, role=role, email=f"live-{role}{n}-{tag}@example.com",
                            name=f"Live {role} {n:02d} {tag}", password=DEMO_PASSWORD)
                  for role, n in [(Role.proctor, 1), (Role.proctor, 2)]
                  + [(Role.candidate, n) for n in range(1, candidates + 1)]]
        assign(db, exam, *people)
        grants = []
        for candidate in people[2:] if start else []:
            attempt = start_attempt(db, exam, candidate)
            grants.append((attempt.id, issue_upload_token(db, attempt).token))
        return LiveExam(exam.id, tuple(c.email for c in people[2:]), (people[0].email, people[1].email),
                        tuple(grants))


def live_events(attempt_id: int) -> list[tuple[str, str]]:
    with session_scope() as db:
        rows = db.exec(select(ProctoringEvent).where(ProctoringEvent.attempt_id == attempt_id,
                                                     ProctoringEvent.kind.startswith("live_"))
                       .order_by(ProctoringEvent.server_time, ProctoringEvent.id)).all()
        return [(e.kind, e.data.get("reason", "")) for e in rows]


def candidate_attempt_id(live: LiveExam) -> int:
    """The attempt the (first) candidate started on the exam page."""
    with session_scope() as db:
        candidate_id = db.exec(select(User.id).where(User.email == live.candidate)).one()
        return attempts.attempt_for(db, live.exam_id, candidate_id).id


def signed_in(email: str) -> dict:
    """Request headers carrying a new login session's cookie."""
    token, _ = sessions.login(email, DEMO_PASSWORD)
    return {"Cookie": f"{SESSION_COOKIE}={token}"}
