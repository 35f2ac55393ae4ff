"""Attempts as ingest and processing leave them, for the retention tests: raw chunks, processed
MP4, poster and sprite, snapshots and a stray upload file on disk, with their rows, ended at a
chosen time before the tests' fixed clock (NOW)."""

import dataclasses
import hashlib
import os
import uuid
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlmodel import Session, select

from proctor_app.media.storage import layout, storage
from proctor_app.models import AttemptStatus, Chunk, Exam, Job, Recording, RecordingStatus, Segment, Snapshot
from tests.support.factories import make_attempt, make_exam, make_user

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)


@dataclasses.dataclass
class Made:
    attempt_id: int
    files: list[str]  # relative paths of every file of the attempt


def write_stored(relative: str, data: bytes) -> None:
    path = storage.root() / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def make_media_attempt(db: Session, *, ended_ago: timedelta, ended: bool = True, hold: bool = False,
                       rec_status: str = RecordingStatus.completed, job: str | None = None,
                       chunks: int = 3, now: datetime = NOW, exam_title: str = "Retention exam") -> Made:
    """An attempt that ended (or, never ended, whose deadline passed) `ended_ago` before `now`,
    with one camera recording, raw chunks, processed files, snapshots and a stray raw file."""
    exam = db.exec(select(Exam).where(Exam.title == exam_title)).first() or make_exam(db, title=exam_title)
    user = make_user(db, email=f"retention-{uuid.uuid4().hex[:10]}@example.com", name="Retention candidate")
    end = now - ended_ago
    started = end - timedelta(minutes=30)
    attempt = make_attempt(db, exam, user, started_at=started, deadline_at=end,
                           ended_at=end if ended else None, legal_hold=hold,
                           status=AttemptStatus.submitted if ended else AttemptStatus.in_progress)
    files = []
    rec = Recording(attempt_id=attempt.id, stream="camera", status=rec_status, started_at=started,
                    ended_at=end, chunk_count=chunks)
    if rec_status in (RecordingStatus.completed, RecordingStatus.partial):
        out = layout.processed_dir(attempt.id, started)
        rec.mp4_path, rec.poster_path, rec.sprite_path = (f"{out}/camera.mp4", f"{out}/poster.jpg",
                                                          f"{out}/sprite_5s_160w.jpg")
        for path in (rec.mp4_path, rec.poster_path, rec.sprite_path):
            write_stored(path, os.urandom(300))
            files.append(path)
        rec.size_bytes = 300
    db.add(rec)
    db.flush()
    segment = Segment(recording_id=rec.id, number=0, chunk_count=chunks)
    db.add(segment)
    db.flush()
    chunk_rows = []
    for seq in range(chunks):
        path = layout.raw_chunk_path(attempt.id, started, "camera", 0, seq)
        body = os.urandom(100 + seq % 50)
        write_stored(path, body)
        files.append(path)
        chunk_rows.append(dict(segment_id=segment.id, seq=seq, size=len(body), path=path,
                               sha256=hashlib.sha256(body).hexdigest(), received_at=end, meta={}))
    db.execute(sa.insert(Chunk), chunk_rows)
    for seq in range(2):
        path = layout.snapshot_path(attempt.id, started, seq)
        write_stored(path, b"jpeg" * 10)
        files.append(path)
        db.add(Snapshot(attempt_id=attempt.id, seq=seq, path=path, size=40, sha256="0" * 64))
    # A chunk written to disk whose database row never got committed (an upload cut short).
    stray = f"{layout.attempt_raw_dir(attempt.id, started)}/camera/0/.00000099.tmp"
    write_stored(stray, b"partial")
    files.append(stray)
    if job is not None:
        db.add(Job(kind="finalize", attempt_id=attempt.id, status=job))
    db.commit()
    return Made(attempt.id, files)
