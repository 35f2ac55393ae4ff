"""Uploads as the browser makes them: an attempt of a test's own, chunk URLs and headers."""

import hashlib
import json
import time
import uuid

from sqlmodel import Session, select

from proctor_app.db import session_scope
from proctor_app.models import Attempt, Recording
from proctor_app.services import attempts
from tests.support.factories import assign, make_exam, make_user, start_attempt

MIME = "video/x-matroska;codecs=avc1,opus"


def new_attempt(db: Session, recording: bool = True, screen: bool = False, start: bool = True,
                live: bool = False, snapshots: bool = True) -> Attempt:
    """A candidate of this test's own taking an exam of its own (so tests never share attempts)."""
    tag = uuid.uuid4().hex[:10]
    user = make_user(db, email=f"ingest-{tag}@example.com", name=f"Ingest {tag}")
    exam = make_exam(db, title=f"Ingest test {tag}", recording=recording, screen_recording=screen,
                     recording_required=True, live_video=live, snapshots=snapshots)
    assign(db, exam, user)
    if start:
        return start_attempt(db, exam, user)
    attempt = attempts.attempt_for(db, exam.id, user.id)
    db.flush()
    return attempt


def chunk_url(attempt_id, seq, segment=0, stream="camera") -> str:
    return f"/api/attempts/{attempt_id}/streams/{stream}/segments/{segment}/chunks/{seq}"


def chunk_headers(body: bytes, token: str | None, seq: int = 0, **overrides) -> dict:
    now = int(time.time() * 1000)
    headers = {"Content-Type": MIME, "X-Content-SHA256": hashlib.sha256(body).hexdigest(),
               "X-Chunk-Start-Ms": str(now - 3000 + seq), "X-Chunk-End-Ms": str(now + seq),
               "X-Chunk-Meta": json.dumps({"questions_viewed": [7], "questions_answered": []})}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    headers.update(overrides)
    return {k: v for k, v in headers.items() if v is not None}


def recording(attempt_id: int, stream: str = "camera") -> Recording:
    with session_scope() as db:
        return db.exec(select(Recording).where(Recording.attempt_id == attempt_id,
                                               Recording.stream == stream)).one()
