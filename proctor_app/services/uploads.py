"""The candidate's uploads: who may upload (a token per page load, issue_upload_token) and when
the browser has sent all it will (uploads_settled), which is when processing may start."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlmodel import Session

from proctor_app.auth.tokens import new_token, token_hash
from proctor_app.media.ingest.rows import recording_id
from proctor_app.media.ingest.window import upload_window_closes_at
from proctor_app.models import (
    Attempt,
    AttemptStatus,
    Exam,
    ProctoringEvent,
    Recording,
    Segment,
    Snapshot,
    StreamKind,
    UploadToken,
    utcnow,
)
from proctor_app.services.consent import capture_plan
from proctor_app.services.revocation import Revoked, notify_after_commit, revoke_upload_tokens

# The recorder's settings the admin chooses (services/settings.py); the browser has no others.
RECORDER_SETTINGS = ("chunk_interval_s", "camera_bitrate_kbps", "screen_bitrate_kbps", "camera_resolution",
                     "screen_resolution", "screen_frame_rate")
# An exam page that got its token or uploaded this recently is taken to be open (a second page
# asks before taking over); chunks come every few seconds while it records.
OPEN_PAGE_WINDOW = timedelta(seconds=45)
# Tokens an attempt keeps: each page load issues one, and only hashes are stored (none can be
# handed out again), so issuing one deletes the oldest beyond these.
MAX_TOKENS_PER_ATTEMPT = 20


@dataclass(frozen=True)
class UploadGrant:
    """What the browser needs to record and upload for one attempt."""

    token: str
    attempt_id: int
    streams: list[str]
    expires_at: datetime
    # The first segment number per stream and snapshot seq the server has not seen yet.
    next_segment: dict[str, int]
    next_snapshot_seq: int
    # 0: no snapshots in this exam.
    snapshot_interval_s: int


def open_elsewhere(db: Session, attempt: Attempt, page_id: str, now: datetime | None = None) -> bool:
    """Whether another exam page (tab, window or device) holds the attempt and seems open still:
    the newest token is another page's, and it was issued or the recordings grew lately. One that
    is gone (closed, crashed) is not asked about: the new page simply takes over."""
    now = now or utcnow()
    holder = db.execute(select(UploadToken.page_id, UploadToken.created_at)
                        .where(UploadToken.attempt_id == attempt.id, UploadToken.revoked_at.is_(None))
                        .order_by(UploadToken.id.desc()).limit(1)).first()
    if holder is None or holder.page_id in (None, page_id):
        return False
    lately = now - OPEN_PAGE_WINDOW
    last_chunk = db.execute(select(func.max(Recording.ended_at)).where(Recording.attempt_id == attempt.id)).scalar()
    return holder.created_at > lately or (last_chunk is not None and last_chunk > lately)


def issue_upload_token(db: Session, attempt: Attempt, now: datetime | None = None,
                       page_id: str | None = None) -> UploadGrant | None:
    """A new token for a started attempt whose upload window is open, when its exam is proctored
    (records, streams live or takes snapshots); None otherwise. After the end it only serves to
    flush what the browser holds.

    Its scope is the recorded streams; snapshots and browser events come with any token of the
    attempt, whatever the video flags (the live publisher authenticates with it too). Also creates the recording rows (not_started), so every
    expected stream shows up. The attempt keeps its MAX_TOKENS_PER_ATTEMPT newest tokens; an
    older one still cached by a process works there until that process restarts.

    Issued to an exam page (`page_id`: one browser tab across its reloads), it takes the attempt
    from every other page: their tokens are revoked, so their uploads and live video stop
    (services/revocation.py), whatever browser or device they are on.
    """
    now = now or utcnow()
    if attempt.status == AttemptStatus.not_started or upload_window_closes_at(attempt) <= now:
        return None
    plan = capture_plan(db, db.get(Exam, attempt.exam_id))
    streams = ([StreamKind.camera] if plan.camera_recording else []) + \
              ([StreamKind.screen] if plan.screen_recording else [])
    if not plan.proctored:
        return None
    for stream in streams:
        recording_id(db, attempt.id, stream)
    token = new_token()
    expires_at = upload_window_closes_at(attempt)
    if page_id is not None:
        taken = revoke_upload_tokens(db, [attempt.id], except_page=page_id)
        if taken:
            notify_after_commit(db, Revoked(token_hashes=taken))
    db.add(UploadToken(attempt_id=attempt.id, token_hash=token_hash(token), streams=streams,
                       expires_at=expires_at, page_id=page_id))
    db.flush()
    newest = (select(UploadToken.id).where(UploadToken.attempt_id == attempt.id)
              .order_by(UploadToken.id.desc()).limit(MAX_TOKENS_PER_ATTEMPT))
    db.execute(delete(UploadToken).where(UploadToken.attempt_id == attempt.id, UploadToken.id.not_in(newest)))
    last_segment = dict(db.execute(
        select(Recording.stream, func.max(Segment.number))
        .join(Segment, Segment.recording_id == Recording.id)
        .where(Recording.attempt_id == attempt.id).group_by(Recording.stream)).all())
    last_snapshot = db.execute(select(func.max(Snapshot.seq))
                               .where(Snapshot.attempt_id == attempt.id)).scalar()
    return UploadGrant(
        token=token, attempt_id=attempt.id, streams=[str(s) for s in streams], expires_at=expires_at,
        next_segment={str(s): (last_segment[s] + 1 if last_segment.get(s) is not None else 0)
                      for s in streams},
        next_snapshot_seq=0 if last_snapshot is None else last_snapshot + 1,
        snapshot_interval_s=plan.snapshot_interval_s if plan.snapshots else 0,
    )


def uploads_settled(db: Session, attempt: Attempt, now: datetime | None = None) -> bool:
    """Whether processing may start: the attempt ended and either its browser reported its queue
    flushed after the end, or the flush grace is over."""
    now = now or utcnow()
    if attempt.status not in (AttemptStatus.submitted, AttemptStatus.expired) or attempt.ended_at is None:
        return False
    if upload_window_closes_at(attempt) <= now:
        return True
    return db.execute(select(ProctoringEvent.id).where(
        ProctoringEvent.attempt_id == attempt.id, ProctoringEvent.kind == "uploads_flushed",
        ProctoringEvent.server_time >= attempt.ended_at)).first() is not None

