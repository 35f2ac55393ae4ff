"""A candidate with many attempts in progress, and submitting them (timed), for the tests of what
a submit queues and how fast it stays while the server processes recordings."""

import time
import uuid

from proctor_app.db import session_scope
from proctor_app.services import attempts
from tests.support.factories import assign, make_exam, make_user, start_attempt


def open_attempts(n: int) -> tuple[int, list[int]]:
    """A candidate with `n` exams, each attempt started (not through the browser)."""
    tag = uuid.uuid4().hex[:8]
    with session_scope() as db:
        candidate = make_user(db, email=f"jobs-{tag}@example.com", name=f"Jobs {tag}")
        exams = [make_exam(db, title=f"Jobs test exam {tag} {i}", recording=False, live_video=False)
                 for i in range(n)]
        for exam in exams:
            assign(db, exam, candidate)
        for exam in exams:
            start_attempt(db, exam, candidate, consent="ok")
        return candidate.id, [exam.id for exam in exams]


def timed_submit(candidate_id: int, exam_id: int) -> float:
    """Seconds the candidate's submit of the exam took."""
    started = time.perf_counter()
    with session_scope() as db:
        attempts.submit(db, attempts.attempt_for(db, exam_id, candidate_id))
    return time.perf_counter() - started
