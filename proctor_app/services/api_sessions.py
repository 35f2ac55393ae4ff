"""Proctoring sessions of the integration API.

A session is an attempt of a hidden exam of its own (Exam.api_session) taken by a candidate user of
its own, so ingest, processing, live video, review and retention treat it like any other attempt
and show it beside them; the exam carries the session's settings, api_sessions the caller's id
(unique per organisation), metadata, return URL and launch link. Everything is looked up within
the caller's organisation: another organisation's session is "not found".
"""

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import Select, bindparam, func, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from proctor_app.config import config
from proctor_app.models import (
    ApiSession,
    Attempt,
    AttemptStatus,
    AuditLog,
    Exam,
    ExamAssignment,
    ProctoringEvent,
    Recording,
    Role,
    User,
    utcnow,
)
from proctor_app.services import attempts
from proctor_app.services.processing import enqueue_finalize

# How long the candidate's launch link works after the session was created.
LAUNCH_TTL = timedelta(hours=24)
LAUNCH_PATH = "/launch/"
# The candidate users of API sessions cannot sign in: no password hash matches this.
NO_PASSWORD = "!api-session"


class SessionNotFound(LookupError):
    """No such session in the caller's organisation."""


class BadCursor(ValueError):
    """A pagination cursor this server did not make."""


@dataclass(frozen=True)
class NewSession:
    external_id: str
    candidate_name: str
    candidate_email: str | None
    metadata: dict
    return_url: str | None
    camera: bool
    screen: bool
    live: bool
    snapshots_interval_s: int
    required: bool
    duration_minutes: int


def launch_token(public_id: str) -> str:
    """The session's launch token: derived from the install's secret, so asking again for the same
    session answers the same link; the table keeps only its hash."""
    mac = hmac.new(config.secret_key.encode(), f"launch\n{public_id}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def launch_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def launch_path(session: ApiSession) -> str:
    return LAUNCH_PATH + launch_token(session.public_id)


def _existing(db: Session, organisation_id: int, external_id: str) -> ApiSession | None:
    return db.exec(select(ApiSession).where(ApiSession.organisation_id == organisation_id,
                                            ApiSession.external_id == external_id)).first()


def create_session(db: Session, organisation_id: int, key_id: int | None, spec: NewSession,
                   now: datetime | None = None) -> tuple[ApiSession, bool]:
    """(session, created): the same external_id again gives the existing session, unchanged."""
    existing = _existing(db, organisation_id, spec.external_id)
    if existing is not None:
        return existing, False
    now = now or utcnow()
    public_id = "ses_" + secrets.token_hex(12)
    try:
        # A savepoint: when a concurrent request created it first, only this is undone.
        with db.begin_nested():
            exam = Exam(title=spec.external_id[:200], organisation_id=organisation_id, api_session=True,
                        duration_minutes=spec.duration_minutes, live_video=spec.live,
                        recording=spec.camera, screen_recording=spec.screen,
                        recording_required=spec.required, snapshot_interval_s=spec.snapshots_interval_s)
            candidate = User(email=f"{public_id}@api-session.invalid", name=spec.candidate_name,
                             role=Role.candidate, password_hash=NO_PASSWORD,
                             organisation_id=organisation_id)
            db.add(exam)
            db.add(candidate)
            db.flush()
            db.add(ExamAssignment(exam_id=exam.id, user_id=candidate.id))
            attempt = Attempt(exam_id=exam.id, candidate_id=candidate.id)
            db.add(attempt)
            db.flush()
            session = ApiSession(
                public_id=public_id, organisation_id=organisation_id, attempt_id=attempt.id,
                external_id=spec.external_id, meta=spec.metadata, return_url=spec.return_url,
                candidate_name=spec.candidate_name, candidate_email=spec.candidate_email,
                launch_token_hash=launch_token_hash(launch_token(public_id)),
                launch_expires_at=now + LAUNCH_TTL, created_by_key=key_id, created_at=now)
            db.add(session)
            db.flush()
    except IntegrityError:
        existing = _existing(db, organisation_id, spec.external_id)
        if existing is None:
            raise
        return existing, False
    return session, True


def session_of(db: Session, organisation_id: int, public_id: str) -> tuple[ApiSession, Attempt]:
    row = db.exec(select(ApiSession, Attempt).join(Attempt, Attempt.id == ApiSession.attempt_id)
                  .where(ApiSession.public_id == public_id,
                         ApiSession.organisation_id == organisation_id)).first()
    if row is None:
        raise SessionNotFound(public_id)
    return row


def _encode_cursor(*values) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).rstrip(b"=").decode()


def _decode_cursor(cursor: str, arity: int) -> list:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursor(cursor) from exc
    if not isinstance(values, list) or len(values) != arity:
        raise BadCursor(cursor)
    return values


# What a listed session shows: plain columns, no ORM objects (a page is 100 rows), unpacked in this order.
LISTED = (ApiSession.id, ApiSession.public_id, ApiSession.external_id, Attempt.status, ApiSession.created_at,
          Attempt.started_at, Attempt.ended_at)
MAX_ROW_ID = 2**31 - 1


def _keyset(cursor: str) -> dict:
    """The parameters of the rows after the cursor's (created_at, id)."""
    at, row_id = _decode_cursor(cursor, 2)
    try:
        at = datetime.fromisoformat(at)
    except (TypeError, ValueError) as exc:
        raise BadCursor(cursor) from exc
    if at.tzinfo is None or isinstance(row_id, bool) or not isinstance(row_id, int) or not 0 < row_id <= MAX_ROW_ID:
        raise BadCursor(cursor)
    return {"cursor_at": at, "cursor_id": row_id}


@lru_cache(maxsize=None)
def _page_query(by_status: bool, by_created_after: bool, after_cursor: bool) -> Select:
    """The statement of a page with these filters, built once (values are bound when it runs):
    building and hashing a fresh statement cost more than the query itself."""
    conditions = [ApiSession.organisation_id == bindparam("organisation_id")]
    if by_status:
        conditions.append(Attempt.status == bindparam("status"))
    if by_created_after:
        conditions.append(ApiSession.created_at > bindparam("created_after"))
    if after_cursor:
        # A row comparison: PostgreSQL starts the index scan at the cursor instead of filtering up to it.
        conditions.append(tuple_(ApiSession.created_at, ApiSession.id)
                          < tuple_(bindparam("cursor_at", type_=ApiSession.created_at.type), bindparam("cursor_id")))
    return (select(*LISTED).join(Attempt, Attempt.id == ApiSession.attempt_id).where(*conditions)
            .order_by(ApiSession.created_at.desc(), ApiSession.id.desc()).limit(bindparam("rows")))


def list_sessions(db: Session | Connection, organisation_id: int, status: str | None,
                  created_after: datetime | None, limit: int, cursor: str | None) -> tuple[list, str | None]:
    """One page of rows (LISTED columns), newest first, and the cursor of the next. The cursor is
    the last row's (created_at, id): rows created meanwhile come before it, so pages neither
    repeat nor skip. Plain columns, no ORM (a Connection from connection_scope will do)."""
    params = {"organisation_id": organisation_id, "rows": limit + 1}
    if status:
        params["status"] = status
    if created_after is not None:
        params["created_after"] = created_after
    if cursor:
        params |= _keyset(cursor)
    rows = db.execute(_page_query(bool(status), created_after is not None, bool(cursor)), params).all()
    page = rows[:limit]
    more = len(rows) > limit
    return page, _encode_cursor(page[-1].created_at.isoformat(), page[-1].id) if more else None


def end_session(db: Session, organisation_id: int, public_id: str,
                now: datetime | None = None) -> tuple[ApiSession, Attempt]:
    """End the recording and queue processing; a session that has ended already is left alone."""
    session, _ = session_of(db, organisation_id, public_id)
    attempt = db.exec(select(Attempt).where(Attempt.id == session.attempt_id).with_for_update()
                      .execution_options(populate_existing=True)).one()
    attempts.close_if_overdue(db, attempt, now)
    if attempt.status == AttemptStatus.in_progress:
        attempts.submit(db, attempt)
    elif attempt.status == AttemptStatus.not_started:
        # Never started: nothing was recorded; it ends here so it cannot start any more.
        attempt.status, attempt.ended_at = AttemptStatus.submitted, now or utcnow()
        db.add(attempt)
        attempts.record_event(db, attempt.id, "ended_by_api", data={"started": False})
        enqueue_finalize(db, attempt.id)
    return session, attempt


def events_of(db: Session, organisation_id: int, public_id: str, limit: int,
              cursor: str | None) -> tuple[Attempt, list[ProctoringEvent], str | None]:
    """A page of the session's events in time order, and the cursor of the next."""
    _, attempt = session_of(db, organisation_id, public_id)
    conditions = [ProctoringEvent.attempt_id == attempt.id]
    if cursor:
        (after_id,) = _decode_cursor(cursor, 1)
        if isinstance(after_id, bool) or not isinstance(after_id, int) or not 0 < after_id <= MAX_ROW_ID:
            raise BadCursor(cursor)
        conditions.append(ProctoringEvent.id > after_id)
    rows = list(db.exec(select(ProctoringEvent).where(*conditions).order_by(ProctoringEvent.id)
                        .limit(limit + 1)).all())
    page = rows[:limit]
    return attempt, page, _encode_cursor(page[-1].id) if len(rows) > limit else None


def event_counts(db: Session, attempt_id: int) -> dict[str, int]:
    return dict(db.exec(select(ProctoringEvent.severity, func.count())
                        .where(ProctoringEvent.attempt_id == attempt_id)
                        .group_by(ProctoringEvent.severity)).all())


def recordings_of(db: Session, attempt_id: int) -> list[Recording]:
    return list(db.exec(select(Recording).where(Recording.attempt_id == attempt_id)
                        .order_by(Recording.stream)))


def audit_api(db: Session, key_id: int, action: str, session: ApiSession, **data) -> None:
    db.add(AuditLog(action=action, target=f"attempt:{session.attempt_id}",
                    data={"api_key": key_id, "session": session.public_id, **data}))
