"""The attempt lifecycle (services/attempts.py) and the consent text (services/consent.py), on the
test session's real database; the PostgreSQL tests check the row locking and the offset column."""

import threading
import time
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from proctor_app.db import engine_for, session_scope
from proctor_app.models import (
    Answer,
    Attempt,
    AttemptStatus,
    Exam,
    ProctoringEvent,
    QuestionKind,
    Role,
    User,
    utcnow,
)
from proctor_app.services import attempts
from proctor_app.services.attempts import AttemptError
from proctor_app.services.consent import capture_plan, consent_lines
from proctor_app.services.settings import update_settings
from tests.support.factories import assign, make_exam, make_user, start_attempt

pytestmark = pytest.mark.usefixtures("demo_db")

WRONG_YEAR_MS = 3 * 365 * 24 * 3600 * 1000  # a computer clock set three years wrong
QUESTIONS = [dict(position=0, kind=QuestionKind.single_choice, prompt="2+2?", options=["3", "4"]),
             dict(position=1, kind=QuestionKind.free_text, prompt="Why?")]


def _add_user(db: Session, role: str = Role.candidate) -> User:
    return make_user(db, role=role, email=f"{role}-{uuid.uuid4().hex[:8]}@example.com", name=role)


def _add_exam(db: Session, **flags) -> Exam:
    return make_exam(db, title=f"Service exam {uuid.uuid4().hex[:6]}", duration_minutes=10, questions=QUESTIONS,
                     **flags)


@pytest.fixture
def setup() -> tuple[int, int, list[int]]:
    """A fresh exam assigned to a fresh candidate: (exam id, candidate id, question ids)."""
    with session_scope() as db:
        exam = _add_exam(db)
        candidate = _add_user(db)
        assign(db, exam, candidate)
        questions = [q.id for q in attempts.questions_of(db, exam.id)]
        return exam.id, candidate.id, questions


def _started(exam_id: int, candidate_id: int, offset=0) -> int:
    with session_scope() as db:
        return start_attempt(db, exam_id, candidate_id, clock_offset_ms=offset).id


def _events(attempt_id: int, kind: str | None = None) -> list[ProctoringEvent]:
    with session_scope() as db:
        query = select(ProctoringEvent).where(ProctoringEvent.attempt_id == attempt_id)
        if kind:
            query = query.where(ProctoringEvent.kind == kind)
        return list(db.exec(query.order_by(ProctoringEvent.id)))


def _set_deadline(attempt_id: int, delta: timedelta) -> None:
    with session_scope() as db:
        attempt = db.get(Attempt, attempt_id)
        attempt.deadline_at = utcnow() + delta
        db.add(attempt)


def _call(exam_id: int, candidate_id: int, action):
    with session_scope() as db:
        return action(db, attempts.attempt_for(db, exam_id, candidate_id))


def test_only_assigned_active_candidates_get_an_attempt(setup):
    exam_id, candidate_id, _ = setup
    with session_scope() as db:
        stranger = _add_user(db)
        proctor = _add_user(db, Role.proctor)
        assign(db, exam_id, proctor)
        stranger_id, proctor_id = stranger.id, proctor.id
    with pytest.raises(AttemptError, match="not assigned"):
        _call(exam_id, stranger_id, lambda db, a: a)
    with pytest.raises(AttemptError, match="Only candidates"):
        _call(exam_id, proctor_id, lambda db, a: a)
    with pytest.raises(AttemptError, match="not assigned"):
        _call(10**9, candidate_id, lambda db, a: a)
    first = _call(exam_id, candidate_id, lambda db, a: a.id)
    assert _call(exam_id, candidate_id, lambda db, a: a.id) == first
    with session_scope() as db:
        db.get(User, candidate_id).active = False
    with pytest.raises(AttemptError, match="Only candidates"):
        _call(exam_id, candidate_id, lambda db, a: a)
    with session_scope() as db:
        assert db.exec(select(Attempt).where(Attempt.exam_id == exam_id)).all()[0].id == first
        assert len(db.exec(select(Attempt).where(Attempt.exam_id == exam_id)).all()) == 1


def test_start_needs_consent_and_a_reload_keeps_the_deadline(setup):
    exam_id, candidate_id, _ = setup
    with pytest.raises(AttemptError, match="consent"):
        _call(exam_id, candidate_id, lambda db, a: attempts.start(db, a, 0))
    _call(exam_id, candidate_id, lambda db, a: attempts.accept_consent(db, a, "terms v1"))
    _call(exam_id, candidate_id, lambda db, a: attempts.accept_consent(db, a, "terms v1"))
    before = utcnow()
    attempt = _call(exam_id, candidate_id, lambda db, a: attempts.start(db, a, -1234.4))
    assert attempt.status == AttemptStatus.in_progress
    assert attempt.clock_offset_ms == -1234
    assert before <= attempt.started_at <= utcnow()
    assert attempt.deadline_at == attempt.started_at + timedelta(minutes=10)
    time.sleep(0.01)
    again = _call(exam_id, candidate_id, lambda db, a: attempts.start(db, a, 999))
    assert (again.deadline_at, again.clock_offset_ms) == (attempt.deadline_at, -1234)
    assert [e.data["text"] for e in _events(attempt.id, "consent_accepted")] == ["terms v1"]
    assert len(_events(attempt.id, "exam_started")) == 1
    with pytest.raises(AttemptError, match="already started"):
        _call(exam_id, candidate_id, lambda db, a: attempts.accept_consent(db, a, "terms v2"))


@pytest.mark.parametrize("measured, stored", [
    (WRONG_YEAR_MS, WRONG_YEAR_MS), (float("nan"), None), (True, None), ("12", None),
    (None, None), (1e20, None),
])
def test_unbelievable_clock_offsets_are_not_stored(setup, measured, stored):
    exam_id, candidate_id, _ = setup
    attempt_id = _started(exam_id, candidate_id, measured)
    with session_scope() as db:
        assert db.get(Attempt, attempt_id).clock_offset_ms == stored


def test_answers_are_validated_and_unchanged_saves_record_nothing(setup):
    exam_id, candidate_id, (choice, essay) = setup
    attempt_id = _started(exam_id, candidate_id)
    with session_scope() as db:
        other_question = attempts.questions_of(db, _add_exam(db).id)[0].id
    for question, value, message in [(choice, "5", "offered options"),
                                     (other_question, "3", "No such question"),
                                     (essay, "x" * (attempts.MAX_ANSWER_CHARS + 1), "at most"),
                                     (essay, {"text": "hi"}, "is text")]:
        with pytest.raises(AttemptError, match=message):
            _call(exam_id, candidate_id, lambda db, a: attempts.save_answer(db, a, question, value))
    _call(exam_id, candidate_id, lambda db, a: attempts.save_answer(db, a, choice, "3"))
    _call(exam_id, candidate_id, lambda db, a: attempts.save_answer(db, a, choice, "4"))
    _call(exam_id, candidate_id, lambda db, a: attempts.save_answer(db, a, choice, "4"))
    _call(exam_id, candidate_id, lambda db, a: attempts.save_answer(db, a, essay, "Because."))
    _call(exam_id, candidate_id, lambda db, a: attempts.view_question(db, a, essay))
    with pytest.raises(AttemptError, match="No such question"):
        _call(exam_id, candidate_id, lambda db, a: attempts.view_question(db, a, other_question))
    with session_scope() as db:
        stored = db.exec(select(Answer.question_id, Answer.value).where(Answer.attempt_id == attempt_id)).all()
    assert sorted(stored) == sorted([(choice, "4"), (essay, "Because.")])
    assert [e.data["question_id"] for e in _events(attempt_id, "answer_saved")] == [choice, choice, essay]
    assert [e.data["question_id"] for e in _events(attempt_id, "question_viewed")] == [essay]


def test_a_submitted_attempt_cannot_change(setup):
    exam_id, candidate_id, (choice, essay) = setup
    attempt_id = _started(exam_id, candidate_id)
    _call(exam_id, candidate_id, lambda db, a: attempts.save_answer(db, a, choice, "4"))
    ended = _call(exam_id, candidate_id, attempts.submit)
    assert ended.status == AttemptStatus.submitted and ended.ended_at is not None
    for action in [lambda db, a: attempts.save_answer(db, a, choice, "3"),
                   lambda db, a: attempts.save_answer(db, a, essay, "late"),
                   lambda db, a: attempts.view_question(db, a, essay)]:
        with pytest.raises(AttemptError, match="closed"):
            _call(exam_id, candidate_id, action)
    with pytest.raises(AttemptError, match="already finished"):
        _call(exam_id, candidate_id, attempts.submit)
    with pytest.raises(AttemptError, match="already finished"):
        _call(exam_id, candidate_id, lambda db, a: attempts.start(db, a, 0))
    with session_scope() as db:
        assert db.exec(select(Answer.value).where(Answer.attempt_id == attempt_id)).all() == ["4"]
        assert not attempts.ended_automatically(db, db.get(Attempt, attempt_id))
    assert [e.kind for e in _events(attempt_id)][-1] == "submitted"


def test_time_out_closes_the_attempt_at_its_deadline(setup):
    exam_id, candidate_id, (choice, _) = setup
    attempt_id = _started(exam_id, candidate_id)
    _set_deadline(attempt_id, -timedelta(seconds=2))
    with pytest.raises(AttemptError, match="closed"):
        _call(exam_id, candidate_id, lambda db, a: attempts.save_answer(db, a, choice, "4"))
    # The refused save rolled back; the next access closes the attempt for good.
    attempt = _call(exam_id, candidate_id, lambda db, a: a)
    assert attempt.status == AttemptStatus.submitted
    assert attempt.ended_at == attempt.deadline_at
    assert [e.kind for e in _events(attempt_id)].count("auto_submitted") == 1
    with session_scope() as db:
        assert attempts.ended_automatically(db, attempt)


def test_the_sweeper_expires_abandoned_attempts_once(setup):
    exam_id, candidate_id, _ = setup
    attempt_id = _started(exam_id, candidate_id)
    _set_deadline(attempt_id, -attempts.ABANDON_GRACE - timedelta(seconds=5))
    with session_scope() as db:
        assert attempts.close_overdue_attempts(db) >= 1
    with session_scope() as db:
        attempts.close_overdue_attempts(db)
        attempt = db.get(Attempt, attempt_id)
    assert attempt.status == AttemptStatus.expired
    assert [e.kind for e in _events(attempt_id)].count("auto_submitted") == 1


def test_assigned_exams_show_each_status(setup):
    exam_id, candidate_id, _ = setup
    with session_scope() as db:
        second = _add_exam(db)
        assign(db, second, candidate_id)
        unassigned = _add_exam(db)
        second_id, unassigned_id = second.id, unassigned.id

    def rows():
        with session_scope() as db:
            return {row.exam_id: row for row in attempts.assigned_exams(db, candidate_id)}

    assert {k: r.status for k, r in rows().items()} == {exam_id: "not_started", second_id: "not_started"}
    attempt_id = _started(exam_id, candidate_id)
    assert 9 * 60 < rows()[exam_id].seconds_left <= 10 * 60
    _set_deadline(attempt_id, -timedelta(minutes=5))
    assert rows()[exam_id].status == AttemptStatus.expired
    assert rows()[exam_id].seconds_left is None
    assert unassigned_id not in rows()


def test_device_checks_are_recorded_before_the_start_only(setup):
    exam_id, candidate_id, _ = setup
    attempt_id = _call(exam_id, candidate_id, lambda db, a: a.id)
    _call(exam_id, candidate_id, lambda db, a: attempts.record_device_check(
        db, a, False, {"ok": False, "error_name": "NotAllowedError", "width": "640", "extra": "x"}))
    _call(exam_id, candidate_id, lambda db, a: attempts.record_device_check(
        db, a, True, {"ok": True, "width": 640, "height": 480, "camera": "c" * 500}))
    _started(exam_id, candidate_id)
    _call(exam_id, candidate_id, lambda db, a: attempts.record_device_check(db, a, True, {}))
    failed, passed = _events(attempt_id, "device_check_failed"), _events(attempt_id, "device_check_passed")
    assert [(e.severity, e.data) for e in failed] == [("warning", {"error_name": "NotAllowedError"})]
    assert [e.data for e in passed] == [{"camera": "c" * 200, "width": 640, "height": 480}]


def test_consent_text_follows_the_exam_flags_and_the_settings():
    with session_scope() as db:
        recorded = capture_plan(db, _add_exam(db, recording=True, screen_recording=True,
                                              live_video=False, snapshot_interval_s=45))
        nothing = capture_plan(db, _add_exam(db, recording=False, screen_recording=False,
                                             live_video=False, recording_required=False,
                                             snapshots=False))
        stills = capture_plan(db, _add_exam(db, recording=False, screen_recording=False,
                                            live_video=False, recording_required=False,
                                            snapshot_interval_s=30))
    text = "\n".join(consent_lines(recorded, 14))
    for phrase in ["camera (video) and microphone (audio) are recorded", "screen is recorded",
                   "every 45 seconds", "switch to another tab or window", "proctors, supervisors and administrators", "14 days"]:
        assert phrase in text
    assert "watch your camera live" not in text
    assert recorded.required and recorded.uses_camera
    quiet = "\n".join(consent_lines(nothing, 14))
    assert "Nothing is recorded" in quiet and "snapshot" not in quiet and "days" not in quiet
    assert "switch to another tab" not in quiet
    assert not nothing.uses_camera and not nothing.required and not nothing.proctored
    # Snapshots without any video: stills and browser events, and their deletion.
    text = "\n".join(consent_lines(stills, 14))
    for phrase in ["every 30 seconds", "switch to another tab or window", "14 days"]:
        assert phrase in text
    assert "are recorded" not in text and "Nothing is recorded" not in text
    assert stills.uses_camera and stills.proctored and not stills.required


def test_admin_switches_override_the_exam_flags():
    with session_scope() as db:
        admin_id = db.exec(select(User.id).where(User.email == "admin@example.com")).one()
        exam = _add_exam(db, recording=True, live_video=True)
        update_settings(db, {"recording_enabled": False}, admin_id)
        try:
            plan = capture_plan(db, exam)
        finally:
            update_settings(db, {"recording_enabled": True}, admin_id)
    text = "\n".join(consent_lines(plan, 30))
    assert not plan.camera_recording and "are recorded" not in text
    assert "watch your camera live" in text and plan.uses_camera


@pytest.fixture
def pg_engine(pg_url):
    """The schema in a PostgreSQL schema of this test's own, with the demo data."""
    from proctor_app.demo import seed_demo

    engine = engine_for(pg_url)
    with Session(engine) as db:
        seed_demo(db)
        db.commit()
    return engine


def _pg_ids(engine) -> tuple[int, int]:
    with Session(engine) as db:
        exam_id = db.exec(select(Exam.id)).first()
        alice = db.exec(select(User.id).where(User.email == "alice@example.com")).one()
        return exam_id, alice


@pytest.mark.postgres
def test_postgres_stores_a_wrong_year_offset_and_one_attempt_per_two_tabs(pg_engine):
    exam_id, alice = _pg_ids(pg_engine)
    first = Session(pg_engine, expire_on_commit=False)
    mine = attempts.attempt_for(first, exam_id, alice)  # inserted, not yet committed
    found = {}

    def second_tab():
        with Session(pg_engine) as db:
            found["id"] = attempts.attempt_for(db, exam_id, alice).id
            db.commit()

    tab = threading.Thread(target=second_tab)
    tab.start()
    time.sleep(0.5)  # the second tab now waits on the unique index
    attempts.accept_consent(first, mine, "terms")
    attempts.start(first, mine, -WRONG_YEAR_MS)
    first.commit()
    tab.join(10)
    first.close()
    assert found["id"] == mine.id
    with Session(pg_engine) as db:
        assert db.get(Attempt, mine.id).clock_offset_ms == -WRONG_YEAR_MS


@pytest.mark.postgres
def test_postgres_sweeper_skips_an_attempt_a_request_is_ending(pg_engine):
    exam_id, alice = _pg_ids(pg_engine)
    with Session(pg_engine) as db:
        attempt = start_attempt(db, exam_id, alice)
        attempt.deadline_at = utcnow() + timedelta(milliseconds=300)
        db.commit()
        attempt_id = attempt.id
    time.sleep(0.4)
    with Session(pg_engine) as request, Session(pg_engine) as sweeper:
        held = attempts.attempt_for(request, exam_id, alice)  # locks the row, closes it
        sweeper.exec(sa.text("SET lock_timeout = '2s'"))  # waiting on the lock fails, not hangs
        assert attempts.close_overdue_attempts(sweeper) == 0
        sweeper.commit()
        assert held.status == AttemptStatus.submitted
        request.commit()
    with Session(pg_engine) as db:
        assert attempts.close_overdue_attempts(db) == 0
        kinds = db.exec(select(ProctoringEvent.kind).where(ProctoringEvent.attempt_id == attempt_id)).all()
    assert kinds.count("auto_submitted") == 1 and "submitted" not in kinds
