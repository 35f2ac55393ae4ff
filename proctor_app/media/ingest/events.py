"""Proctoring events from the browser's durable queue (tab, focus, fullscreen, devices, uploads)."""

import json
import re
from datetime import datetime

from sqlalchemy import select, update
from sqlmodel import Session

from proctor_app.db import session_scope
from proctor_app.media.ingest.checks import parse_client_ms
from proctor_app.media.ingest.errors import IngestError
from proctor_app.media.ingest.rows import recording_id
from proctor_app.media.ingest.tokens import TokenScope
from proctor_app.media.ingest.window import check_accepting
from proctor_app.models import Attempt, ProctoringEvent, Recording, RecordingStatus, Severity

MAX_EVENTS_PER_BATCH = 200
MAX_EVENT_DATA_BYTES = 2048
_CLIENT_ID = re.compile(r"[\w-]{1,40}", re.ASCII)

# The browser events the server accepts, with the severity it files them under.
BROWSER_EVENTS: dict[str, str] = {
    "tab_hidden": Severity.warning,
    "tab_visible": Severity.info,
    "window_blur": Severity.warning,
    "window_focus": Severity.info,
    "fullscreen_exit": Severity.warning,
    "fullscreen_enter": Severity.info,
    "offline": Severity.warning,
    "online": Severity.info,
    "camera_lost": Severity.critical,
    "camera_regained": Severity.info,
    "microphone_lost": Severity.critical,
    "microphone_regained": Severity.info,
    "screen_lost": Severity.critical,
    "screen_regained": Severity.info,
    "recording_started": Severity.info,
    "recording_failed": Severity.critical,
    "recording_stopped": Severity.info,
    "segment_started": Severity.info,
    "recorder_error": Severity.warning,
    "upload_retry": Severity.info,
    "upload_recovered": Severity.info,
    "upload_rejected": Severity.critical,
    "storage_quota": Severity.warning,
    "chunks_missing": Severity.critical,
    "uploads_flushed": Severity.info,
    "snapshot_failed": Severity.warning,
    "storage_persistence": Severity.info,
}


def _check_event(raw, now: datetime) -> tuple[str, str, datetime | None, dict]:
    if not isinstance(raw, dict):
        raise IngestError(400, "bad_event", "Each event is a JSON object.")
    client_id, kind, data = raw.get("id"), raw.get("kind"), raw.get("data", {})
    if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
        raise IngestError(400, "bad_event", "Each event needs an id (letters, digits, - or _).")
    if kind not in BROWSER_EVENTS:
        raise IngestError(400, "bad_event_kind", f"Unknown event kind: {str(kind)[:60]!r}.")
    if not isinstance(data, dict) or len(json.dumps(data)) > MAX_EVENT_DATA_BYTES:
        raise IngestError(400, "bad_event", f"Event data is a JSON object of at most "
                                            f"{MAX_EVENT_DATA_BYTES} bytes.")
    at = raw.get("at")
    client_time = None if at is None else parse_client_ms(str(at), "at", now)
    return client_id, kind, client_time, data


def record_browser_events(scope: TokenScope, attempt_id: int, events, now: datetime) -> dict:
    """A batch from the browser's durable queue; the server stamps its own time on each event.

    Events carry the browser's id, so a batch sent again (its answer was lost) is stored once.
    The token's scope was checked by the caller. A reported recording failure marks a recording that has no chunks as failed, with its cause.
    """
    if not isinstance(events, list) or len(events) > MAX_EVENTS_PER_BATCH:
        raise IngestError(400, "bad_batch", f"Send a list of at most {MAX_EVENTS_PER_BATCH} events.")
    checked = [_check_event(raw, now) for raw in events]
    with session_scope() as db:
        attempt = db.get(Attempt, attempt_id)
        check_accepting(attempt, now)
        ids = [c[0] for c in checked]
        seen = set(db.execute(select(ProctoringEvent.client_id).where(
            ProctoringEvent.attempt_id == attempt_id, ProctoringEvent.client_id.in_(ids))).scalars())
        stored = 0
        for client_id, kind, client_time, data in checked:
            if client_id in seen:
                continue
            seen.add(client_id)
            db.add(ProctoringEvent(attempt_id=attempt_id, kind=kind, severity=BROWSER_EVENTS[kind],
                                   client_time=client_time, data=data, client_id=client_id,
                                   server_time=now))
            stored += 1
            if kind == "recording_failed" and data.get("stream") in scope.streams:
                _mark_failed(db, attempt_id, data["stream"], str(data.get("reason", ""))[:500])
    return {"stored": stored, "duplicates": len(checked) - stored}


def _mark_failed(db: Session, attempt_id: int, stream: str, reason: str) -> None:
    """Only a recording with nothing stored is failed; otherwise the cause stays as an event."""
    rec_id = recording_id(db, attempt_id, stream)
    db.execute(update(Recording).where(Recording.id == rec_id, Recording.chunk_count == 0,
                                       Recording.status.in_([RecordingStatus.not_started,
                                                             RecordingStatus.in_progress,
                                                             RecordingStatus.failed]))
               .values(status=RecordingStatus.failed, failure_reason=reason or "recording failed"))
