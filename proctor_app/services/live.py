"""Live proctoring rules: which streams an attempt publishes, who may watch it, and what the
proctor grid lists (attempts in progress with candidate, exam, recording health, latest events).

Plain Python; the HTTP routes and the proctor page both ask here. The relay's statuses are
LiveStatus values.
"""

import asyncio
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, select

from proctor_app.auth.roles import LIVE_VIEW
from proctor_app.auth.sessions import CurrentUser
from proctor_app.db import session_scope
from proctor_app.media.live.status import LiveStatus as LiveStatus
from proctor_app.models import (
    Attempt,
    AttemptStatus,
    Exam,
    ProctoringEvent,
    Recording,
    RecordingStatus,
    Role,
    User,
    utcnow,
)
from proctor_app.services.attempts import assigned_exam_ids, record_event
from proctor_app.services.consent import capture_plan
from proctor_app.services.organisations import sees_attempt, visible_to
from proctor_app.services.settings import get_setting

# Recorded media this far behind the clock is still on its way from the browser.
PENDING_AFTER_CHUNKS = 3
PENDING_MIN_S = 15


def live_streams(db: Session, exam: Exam) -> list[str]:
    """What the candidate's browser publishes: the camera at full and low resolution (the grid's
    tiles), and the screen when the exam records it. Empty when live video is off."""
    plan = capture_plan(db, exam)
    if not plan.live_video:
        return []
    return ["camera", "camera_low"] + (["screen"] if plan.screen_recording else [])


def live_audio(db: Session, exam: Exam) -> bool:
    """Whether the candidate's microphone goes live too: only where it is recorded anyway, which
    the candidate consented to."""
    plan = capture_plan(db, exam)
    return plan.live_video and plan.camera_recording


def watchable_exam_ids(db: Session, user: CurrentUser) -> list[int] | None:
    """Exams whose attempts the user may watch: a proctor's assigned ones (of their organisation);
    None means every exam of the organisations they see (`visible_to` narrows queries to them)."""
    if user.role not in LIVE_VIEW:
        return []
    if user.role == Role.proctor:
        return assigned_exam_ids(db, user.id)
    return None


def may_watch(db: Session, user: CurrentUser, attempt: Attempt) -> bool:
    """Callers answer 404 first when `sees_attempt` is false: another organisation's attempt is not there."""
    exam_ids = watchable_exam_ids(db, user)
    return (user.role in LIVE_VIEW and sees_attempt(db, user, attempt)
            and (exam_ids is None or attempt.exam_id in exam_ids))


@dataclass(frozen=True)
class LiveFilter:
    exam_id: int | None = None
    candidate: str = ""


@dataclass(frozen=True)
class RecordingHealth:
    stream: str
    state: str  # uploaded | pending | failed | not started
    detail: str


@dataclass(frozen=True)
class LiveAttempt:
    attempt_id: int
    candidate: str
    exam_id: int
    exam: str
    started_at: datetime
    deadline_at: datetime
    streams: list[str]  # what it publishes; empty when live video is off for its exam
    recordings: list[RecordingHealth]


def exams_in_progress(db: Session, user: CurrentUser) -> list[tuple[int, str]]:
    """(id, title) of the exams the user may watch that have an attempt in progress."""
    query = select(Exam.id, Exam.title).where(
        Exam.id.in_(select(Attempt.exam_id).where(Attempt.status == AttemptStatus.in_progress)),
        visible_to(user, Exam.organisation_id))
    exam_ids = watchable_exam_ids(db, user)
    if exam_ids is not None:
        query = query.where(Exam.id.in_(exam_ids))
    return [(row.id, row.title) for row in db.exec(query.order_by(Exam.title, Exam.id))]


def attempts_in_progress(db: Session, user: CurrentUser, flt: LiveFilter) -> list[tuple[int, str, str]]:
    """(attempt id, candidate name, exam title) of every attempt in progress the user may watch,
    by candidate name: the grid filters by live status and pages through these."""
    query = (select(Attempt.id, User.name, Exam.title)
             .join(User, User.id == Attempt.candidate_id).join(Exam, Exam.id == Attempt.exam_id)
             .where(Attempt.status == AttemptStatus.in_progress, Attempt.deadline_at > utcnow(),
                    visible_to(user, Exam.organisation_id)))
    exam_ids = watchable_exam_ids(db, user)
    if exam_ids is not None:
        query = query.where(Attempt.exam_id.in_(exam_ids))
    if flt.exam_id is not None:
        query = query.where(Attempt.exam_id == flt.exam_id)
    if flt.candidate.strip():
        needle = flt.candidate.strip()
        query = query.where(User.name.icontains(needle, autoescape=True)
                            | User.email.icontains(needle, autoescape=True))
    return [tuple(row) for row in db.exec(query.order_by(User.name, Attempt.id))]


def _health(rec: Recording, pending_after_s: float, now: datetime) -> RecordingHealth:
    if rec.status == RecordingStatus.failed:
        return RecordingHealth(rec.stream, "failed", rec.failure_reason or "failed")
    if rec.ended_at is None:
        return RecordingHealth(rec.stream, "not started", "nothing uploaded yet")
    behind = (now - rec.ended_at).total_seconds()
    state = "pending" if behind > pending_after_s else "uploaded"
    return RecordingHealth(rec.stream, state, f"{rec.chunk_count} chunks, {max(0, int(behind))} s behind")


def describe(db: Session, attempt_ids: list[int]) -> dict[int, LiveAttempt]:
    """The tiles' details for a page of attempts."""
    if not attempt_ids:
        return {}
    now = utcnow()
    pending_after_s = max(PENDING_MIN_S, PENDING_AFTER_CHUNKS * get_setting(db, "chunk_interval_s"))
    recordings: dict[int, list[RecordingHealth]] = {}
    for rec in db.exec(select(Recording).where(Recording.attempt_id.in_(attempt_ids))
                       .order_by(Recording.stream)):
        recordings.setdefault(rec.attempt_id, []).append(_health(rec, pending_after_s, now))
    streams: dict[int, list[str]] = {}
    found = {}
    for attempt, name, exam in db.exec(
            select(Attempt, User.name, Exam).join(User, User.id == Attempt.candidate_id)
            .join(Exam, Exam.id == Attempt.exam_id).where(Attempt.id.in_(attempt_ids))):
        if exam.id not in streams:
            streams[exam.id] = live_streams(db, exam)
        found[attempt.id] = LiveAttempt(attempt.id, name, exam.id, exam.title, attempt.started_at,
                                        attempt.deadline_at, streams[exam.id],
                                        recordings.get(attempt.id, []))
    return found


def latest_events(db: Session, attempt_ids: list[int], per_attempt: int) -> dict[int, list[ProctoringEvent]]:
    """The newest `per_attempt` events of each attempt, newest first."""
    if not attempt_ids:
        return {}
    rank = func.row_number().over(partition_by=ProctoringEvent.attempt_id,
                                  order_by=(ProctoringEvent.server_time.desc(), ProctoringEvent.id.desc()))
    ranked = select(ProctoringEvent.id, rank.label("rank")).where(
        ProctoringEvent.attempt_id.in_(attempt_ids)).subquery()
    events: dict[int, list[ProctoringEvent]] = {}
    for event in db.exec(select(ProctoringEvent).join(ranked, ranked.c.id == ProctoringEvent.id)
                         .where(ranked.c.rank <= per_attempt)
                         .order_by(ProctoringEvent.server_time.desc(), ProctoringEvent.id.desc())):
        events.setdefault(event.attempt_id, []).append(event)
    return events


async def store_live_transition(attempt_id: int, kind: str, severity: str, data: dict,
                                at: datetime) -> None:
    """A live status change (live_connected, live_lost, live_restored) as a proctoring event."""
    def write() -> None:
        with session_scope() as db:
            record_event(db, attempt_id, kind, severity, data).server_time = at

    await asyncio.to_thread(write)
