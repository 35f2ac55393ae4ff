from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, UniqueConstraint
from sqlmodel import Field, SQLModel

from proctor_app.models.base import json_column, utcnow
from proctor_app.models.organisations import DEFAULT_ORGANISATION_ID


class QuestionKind(StrEnum):
    single_choice = "single_choice"
    free_text = "free_text"


class AttemptStatus(StrEnum):
    not_started = "not_started"
    in_progress = "in_progress"
    submitted = "submitted"
    expired = "expired"


class ReviewStatus(StrEnum):
    not_reviewed = "not_reviewed"
    clear = "clear"
    suspicious = "suspicious"
    violation = "violation"


class Severity(StrEnum):
    info = "info"
    warning = "warning"
    critical = "critical"


class Exam(SQLModel, table=True):
    __tablename__ = "exams"
    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=200)
    description: str = ""
    duration_minutes: int = 30
    live_video: bool = True
    recording: bool = True
    screen_recording: bool = False
    recording_required: bool = True
    # Camera stills every snapshot_interval_s, whether or not video is recorded.
    snapshots: bool = True
    snapshot_interval_s: int = 60
    organisation_id: int = Field(default=DEFAULT_ORGANISATION_ID, foreign_key="organisations.id", index=True)
    # The hidden exam of one API session: it carries the session's settings, and the exam pages
    # do not list it.
    api_session: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Question(SQLModel, table=True):
    __tablename__ = "questions"
    id: int | None = Field(default=None, primary_key=True)
    exam_id: int = Field(foreign_key="exams.id", index=True)
    position: int = 0
    kind: str = Field(default=QuestionKind.single_choice, max_length=20)
    prompt: str
    # For single choice: the list of option texts.
    options: list = Field(default_factory=list, sa_column=json_column())


class ExamAssignment(SQLModel, table=True):
    """A user assigned to an exam: candidates take it, proctors watch it."""

    __tablename__ = "exam_assignments"
    __table_args__ = (UniqueConstraint("exam_id", "user_id"),)
    id: int | None = Field(default=None, primary_key=True)
    exam_id: int = Field(foreign_key="exams.id", index=True)
    user_id: int = Field(foreign_key="users.id", index=True)


class Attempt(SQLModel, table=True):
    __tablename__ = "attempts"
    __table_args__ = (UniqueConstraint("exam_id", "candidate_id"),)
    id: int | None = Field(default=None, primary_key=True)
    exam_id: int = Field(foreign_key="exams.id", index=True)
    candidate_id: int = Field(foreign_key="users.id", index=True)
    status: str = Field(default=AttemptStatus.not_started, max_length=20, index=True)
    consent_at: datetime | None = None
    started_at: datetime | None = None
    deadline_at: datetime | None = None
    ended_at: datetime | None = None
    # server clock minus client clock, measured when the attempt starts; a clock set to the wrong
    # year is off by more than 32 bits of ms.
    clock_offset_ms: int | None = Field(default=None, sa_type=BigInteger)
    review_status: str = Field(default=ReviewStatus.not_reviewed, max_length=20)
    review_notes: str = ""
    reviewed_by: int | None = Field(default=None, foreign_key="users.id")
    reviewed_at: datetime | None = None
    legal_hold: bool = False
    # Retention: when it decided to delete the attempt's media, and when the files were all gone.
    # Set and not yet gone = a deletion that was interrupted; the next run completes it.
    media_expired_at: datetime | None = None
    media_deleted_at: datetime | None = None


class Answer(SQLModel, table=True):
    __tablename__ = "answers"
    __table_args__ = (UniqueConstraint("attempt_id", "question_id"),)
    id: int | None = Field(default=None, primary_key=True)
    attempt_id: int = Field(foreign_key="attempts.id", index=True)
    question_id: int = Field(foreign_key="questions.id")
    value: str = ""
    saved_at: datetime = Field(default_factory=utcnow)


class ProctoringEvent(SQLModel, table=True):
    __tablename__ = "proctoring_events"
    # A browser's event batch sent again (its answer was lost) is stored once.
    __table_args__ = (UniqueConstraint("attempt_id", "client_id"),)
    id: int | None = Field(default=None, primary_key=True)
    attempt_id: int = Field(foreign_key="attempts.id", index=True)
    server_time: datetime = Field(default_factory=utcnow, index=True)
    client_time: datetime | None = None
    kind: str = Field(max_length=60)
    severity: str = Field(default=Severity.info, max_length=20)
    data: dict = Field(default_factory=dict, sa_column=json_column())
    # The id the browser gave the event; None for events the server records itself.
    client_id: str | None = Field(default=None, max_length=40)
