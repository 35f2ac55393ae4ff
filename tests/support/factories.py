"""Database rows for tests and benchmarks: users, exams (with questions), assignments and attempts,
each with a name of its own (so tests never share or collide on rows) unless the caller gives one.

Every factory takes the session to write in (the session's database, a private SQLite file or a
PostgreSQL schema), adds and flushes, so ids are there; committing is the caller's. Keyword
arguments override any column. Also: lookups of existing users by email.
"""

import functools
import uuid

from sqlmodel import Session, select

from proctor_app.auth.passwords import hash_password
from proctor_app.auth.sessions import CurrentUser, signed_in_form
from proctor_app.db import session_scope
from proctor_app.models import Attempt, Exam, ExamAssignment, Question, Role, User
from proctor_app.services import attempts

UNUSED_PASSWORD = "not-used-1"


def unique_tag() -> str:
    return uuid.uuid4().hex[:10]


@functools.cache
def password_hash(password: str) -> str:
    """Hashed once per password and test run: hashing is slow on purpose."""
    return hash_password(password)


def make_user(db: Session, *, role: str = Role.candidate, email: str | None = None, name: str | None = None,
              password: str = UNUSED_PASSWORD, **fields) -> User:
    """A user who signs in with `password` (unless `password_hash` is given)."""
    tag = unique_tag()
    if "password_hash" not in fields:
        fields["password_hash"] = password_hash(password)
    user = User(email=email or f"{role}-{tag}@example.com", name=name or f"Test {role} {tag}", role=role,
                **fields)
    db.add(user)
    db.flush()
    return user


def make_exam(db: Session, *, questions: list[dict] = (), **fields) -> Exam:
    """An exam (the model's defaults unless overridden) with `questions` (Question fields each)."""
    fields.setdefault("title", f"Test exam {unique_tag()}")
    exam = Exam(**fields)
    db.add(exam)
    db.flush()
    if questions:
        db.add_all([Question(exam_id=exam.id, **question) for question in questions])
        db.flush()
    return exam


def _id(row: int | Exam | User) -> int:
    return row if isinstance(row, int) else row.id


def assign(db: Session, exam: int | Exam, *users: int | User) -> None:
    """The users (candidates or proctors) are assigned to the exam."""
    db.add_all([ExamAssignment(exam_id=_id(exam), user_id=_id(user)) for user in users])
    db.flush()


def start_attempt(db: Session, exam: int | Exam, candidate: int | User, *, clock_offset_ms: float = 0,
                  consent: str = "terms") -> Attempt:
    """The candidate's attempt, consented and started now, the way the exam page does it (the
    candidate must be assigned to the exam)."""
    attempt = attempts.attempt_for(db, _id(exam), _id(candidate))
    attempts.accept_consent(db, attempt, consent)
    attempts.start(db, attempt, clock_offset_ms)
    db.flush()
    return attempt


def make_attempt(db: Session, exam: int | Exam, candidate: int | User, **fields) -> Attempt:
    """An attempt row written as it is given (any status and times, in the past too), without
    the attempt service and without an assignment."""
    attempt = Attempt(exam_id=_id(exam), candidate_id=_id(candidate), **fields)
    db.add(attempt)
    db.flush()
    return attempt


def user_id(email: str) -> int:
    return current_user(email).id


def as_current(user: User) -> CurrentUser:
    """The signed-in form of a user row, as the services take it."""
    return signed_in_form(user)


def current_user(email: str) -> CurrentUser:
    with session_scope() as db:
        return as_current(db.exec(select(User).where(User.email == email)).one())
