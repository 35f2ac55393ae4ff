"""The schema, created by the Alembic migrations, behaves the same on SQLite and PostgreSQL."""

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from proctor_app.auth.passwords import verify_password
from proctor_app.db import engine_for, migrate
from proctor_app.models import (
    Answer,
    Attempt,
    Exam,
    ExamAssignment,
    LoginSession,
    ProctoringEvent,
    Question,
    Role,
    Setting,
    User,
    utcnow,
)
from tests.support.factories import make_user
from tests.support.postgres import postgres_schema


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'models.db'}"
        migrate(url)
        yield engine_for(url)
        return
    with postgres_schema("models") as url:
        yield engine_for(url)


def _user(db: Session, email: str, role: str = Role.candidate) -> User:
    user = make_user(db, role=role, email=email, name=email.split("@")[0], password="pw-123456")
    db.commit()
    return user


def test_migration_creates_every_table(engine):
    tables = set(sa.inspect(engine).get_table_names())
    assert {"users", "login_sessions", "exams", "questions", "exam_assignments", "attempts",
            "answers", "proctoring_events", "settings", "alembic_version"} <= tables


def test_exam_attempt_answers_and_events_round_trip(engine):
    with Session(engine) as db:
        cand = _user(db, "c@example.com")
        exam = Exam(title="Physics", duration_minutes=45, screen_recording=True)
        db.add(exam)
        db.commit()
        q = Question(exam_id=exam.id, kind="single_choice", prompt="2+2?", options=["3", "4"])
        db.add_all([q, ExamAssignment(exam_id=exam.id, user_id=cand.id)])
        db.commit()
        started = utcnow()
        attempt = Attempt(exam_id=exam.id, candidate_id=cand.id, status="in_progress",
                          started_at=started, deadline_at=started + timedelta(minutes=45),
                          clock_offset_ms=-1234)
        db.add(attempt)
        db.commit()
        db.add_all([Answer(attempt_id=attempt.id, question_id=q.id, value="4"),
                    ProctoringEvent(attempt_id=attempt.id, kind="tab_hidden", severity="warning",
                                    data={"hidden_ms": 4100, "nested": {"a": [1, 2]}})])
        db.commit()

    with Session(engine) as db:
        attempt = db.exec(select(Attempt)).one()
        # Times come back aware and equal on both databases.
        assert attempt.started_at == started and attempt.started_at.tzinfo is not None
        assert attempt.deadline_at - attempt.started_at == timedelta(minutes=45)
        assert attempt.clock_offset_ms == -1234
        assert db.exec(select(Question)).one().options == ["3", "4"]
        event = db.exec(select(ProctoringEvent)).one()
        assert event.data == {"hidden_ms": 4100, "nested": {"a": [1, 2]}}
        assert event.server_time.tzinfo is not None


@pytest.mark.parametrize("duplicate", ["email", "assignment", "attempt", "answer"])
def test_uniqueness_is_enforced_by_the_database(engine, duplicate):
    with Session(engine) as db:
        cand = _user(db, "u@example.com")
        exam = Exam(title="E")
        db.add(exam)
        db.commit()
        q = Question(exam_id=exam.id, prompt="?", kind="free_text")
        attempt = Attempt(exam_id=exam.id, candidate_id=cand.id)
        db.add_all([q, attempt, ExamAssignment(exam_id=exam.id, user_id=cand.id)])
        db.commit()
        db.add(Answer(attempt_id=attempt.id, question_id=q.id, value="x"))
        db.commit()
        again = {
            "email": lambda: User(email="u@example.com", name="x", role="admin", password_hash="h"),
            "assignment": lambda: ExamAssignment(exam_id=exam.id, user_id=cand.id),
            "attempt": lambda: Attempt(exam_id=exam.id, candidate_id=cand.id),
            "answer": lambda: Answer(attempt_id=attempt.id, question_id=q.id, value="y"),
        }[duplicate]()
        db.add(again)
        with pytest.raises(IntegrityError):
            db.commit()


def test_foreign_keys_are_enforced(engine):
    with Session(engine) as db:
        db.add(Attempt(exam_id=999_999, candidate_id=999_999))
        with pytest.raises(IntegrityError):
            db.commit()


def test_a_commit_is_on_disk_before_it_returns(engine):
    # Uploads are acknowledged once their rows commit; a commit that a power cut could still undo
    # would lose acknowledged chunks (SQLite's WAL mode with synchronous=NORMAL does not fsync).
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        else:
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
            assert conn.exec_driver_sql("SHOW fsync").scalar() == "on"


def test_login_sessions_and_settings(engine):
    with Session(engine) as db:
        user = _user(db, "a@example.com", Role.admin)
        assert verify_password("pw-123456", user.password_hash)
        assert user.password_hash.startswith("$argon2id$")
        db.add(LoginSession(user_id=user.id, token_hash="ab" * 32, expires_at=utcnow() + timedelta(hours=1)))
        db.add(Setting(key="retention_days", value=45, updated_by=user.id))
        db.commit()
        db.add(LoginSession(user_id=user.id, token_hash="ab" * 32, expires_at=utcnow()))
        with pytest.raises(IntegrityError):
            db.commit()
    with Session(engine) as db:
        assert db.get(Setting, "retention_days").value == 45
