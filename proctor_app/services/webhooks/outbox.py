"""The outbox: every change a webhook reports writes its event, and one delivery per endpoint
that wants it, in the transaction of the change itself (flush listeners on every ORM session,
so the many places that end attempts, save recordings or delete media need not know about it).
The delivery loop (delivery.py) sends them afterwards."""

import secrets
from datetime import datetime

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, select

from proctor_app.models import (
    ApiSession,
    Attempt,
    AttemptStatus,
    Exam,
    ProctoringEvent,
    Recording,
    RecordingStatus,
    Severity,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    utcnow,
)

EVENT_TYPES = ("session.started", "session.ended", "recording.processing", "recording.completed",
               "recording.partial", "recording.failed", "media.deleted", "media.expiring",
               "event.critical", "operator.alert")
ALL = "*"
_RECORDING_EVENTS = {RecordingStatus.processing: "recording.processing",
                     RecordingStatus.completed: "recording.completed",
                     RecordingStatus.partial: "recording.partial", RecordingStatus.failed: "recording.failed"}
_ENDED = (AttemptStatus.submitted, AttemptStatus.expired)


PAUSED = "paused"


def is_paused(endpoint: WebhookEndpoint) -> bool:
    return not endpoint.enabled and endpoint.disabled_reason.startswith(PAUSED)


def subject_ids(db: Session, attempt_id: int) -> tuple[int, dict]:
    """The attempt's organisation, and the ids an integrator knows it by: the API session's id
    and external_id, else the attempt's id."""
    session = db.exec(select(ApiSession).where(ApiSession.attempt_id == attempt_id)).first()
    if session is not None:
        return session.organisation_id, {"session_id": session.public_id, "external_id": session.external_id}
    organisation_id = db.exec(select(Exam.organisation_id).join(Attempt, Attempt.exam_id == Exam.id)
                              .where(Attempt.id == attempt_id)).one()
    return organisation_id, {"attempt_id": attempt_id}


def record(db: Session, type_: str, organisation_id: int | None, data: dict,
           attempt_id: int | None = None, at: datetime | None = None) -> WebhookEvent | None:
    """Write an event and its deliveries in `db`'s transaction; None when no endpoint wants it.
    organisation_id None: for the install's own endpoint (operator alerts)."""
    owner = (WebhookEndpoint.organisation_id == organisation_id if organisation_id is not None
             else WebhookEndpoint.organisation_id.is_(None))
    # A paused endpoint keeps its events for when it is resumed; a disabled one gets none.
    endpoints = [e for e in db.exec(select(WebhookEndpoint).where(owner))
                 if (e.enabled or is_paused(e)) and (type_ in e.events or ALL in e.events)]
    if not endpoints:
        return None
    at = at or utcnow()
    row = WebhookEvent(public_id="msg_" + secrets.token_hex(12), type=type_, organisation_id=organisation_id,
                       attempt_id=attempt_id, created_at=at,
                       envelope={"type": type_, "timestamp": at.isoformat().replace("+00:00", "Z"), "data": data})
    db.add(row)
    for endpoint in endpoints:
        db.add(WebhookDelivery(event=row, endpoint_id=endpoint.id))
    return row


def _changed(obj, name: str):
    """(old, new) of an attribute changed in this flush, else None."""
    history = inspect(obj).attrs[name].history
    if not history.has_changes():
        return None
    return (history.deleted[0] if history.deleted else None), (history.added[0] if history.added else None)


def _attempt_events(db: Session, attempt: Attempt, new: bool) -> list[tuple[str, int, dict]]:
    found = []
    status = (None, attempt.status) if new else _changed(attempt, "status")
    if status and status[1] == AttemptStatus.in_progress:
        found.append(("session.started", attempt.id, {"started_at": attempt.started_at}))
    elif status and status[1] in _ENDED and status[0] not in _ENDED:
        found.append(("session.ended", attempt.id, {"status": attempt.status, "ended_at": attempt.ended_at}))
    if not new and (deleted := _changed(attempt, "media_deleted_at")) and deleted[0] is None and deleted[1]:
        reasons = {r.expired_reason for r in db.exec(select(Recording).where(Recording.attempt_id == attempt.id))
                   if r.expired_reason}
        found.append(("media.deleted", attempt.id, {"deleted_at": attempt.media_deleted_at,
                                                    "cause": "; ".join(sorted(reasons)) or "retention"}))
    return found


def _recording_events(recording: Recording) -> list[tuple[str, int, dict]]:
    status = _changed(recording, "status")
    if not status or status[1] not in _RECORDING_EVENTS or status[0] == status[1]:
        return []
    data = {"stream": recording.stream}
    if recording.status in (RecordingStatus.completed, RecordingStatus.partial):
        data |= {"duration_s": recording.duration_s, "size": recording.size_bytes}
    if recording.status == RecordingStatus.partial:
        data["gaps"] = list(recording.gaps)
    if recording.status == RecordingStatus.failed:
        data["reason"] = recording.failure_reason
    return [(_RECORDING_EVENTS[status[1]], recording.attempt_id, data)]


def _critical_events(db: Session, event_row: ProctoringEvent) -> list[tuple[str, int, dict]]:
    if event_row.severity != Severity.critical:
        return []
    attempt = db.get(Attempt, event_row.attempt_id)
    if attempt is None or attempt.status != AttemptStatus.in_progress:
        return []
    return [("event.critical", event_row.attempt_id, {"kind": event_row.kind, "data": dict(event_row.data or {})})]


def _json_ready(value):
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


PENDING = "webhook_events_found"


def _after_flush(session: OrmSession, _context) -> None:
    """Ids are assigned and each attribute's history still says what this flush changed."""
    found = session.info.setdefault(PENDING, [])
    with session.no_autoflush:
        for obj in list(session.new) + list(session.dirty):
            is_new = obj in session.new
            if isinstance(obj, Attempt):
                found += _attempt_events(session, obj, is_new)
            elif isinstance(obj, Recording) and not is_new:
                found += _recording_events(obj)
            elif isinstance(obj, ProctoringEvent) and is_new:
                found += _critical_events(session, obj)


def _after_flush_postexec(session: OrmSession, _context) -> None:
    """The events found, added to the session: the commit flushes them in the same transaction."""
    found = session.info.pop(PENDING, None)
    if not found:
        return
    with session.no_autoflush:
        for type_, attempt_id, data in found:
            organisation_id, ids = subject_ids(session, attempt_id)
            record(session, type_, organisation_id, _json_ready({**ids, **data}), attempt_id)


def _forget(session: OrmSession, *_args) -> None:
    session.info.pop(PENDING, None)


def install() -> None:
    """Register the outbox on every ORM session of this process (once)."""
    for name, listener in (("after_flush", _after_flush), ("after_flush_postexec", _after_flush_postexec),
                           ("after_rollback", _forget)):
        if not event.contains(OrmSession, name, listener):
            event.listen(OrmSession, name, listener)
