"""What retention deletes: attempts whose retention period is over (and deletions a crash
interrupted), each with its files and the bytes they free. Changes nothing.

An attempt's media (raw chunks, MP4s, posters, sprites, snapshots, and whatever else lies in its
storage folders) expires `retention_days` after the attempt ended; for an attempt that never ended
(abandoned), after its deadline. Never while the attempt is on legal hold or one of its
recordings is being processed (recording status "processing", or a queued or running job).
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, or_
from sqlmodel import Session, select

from proctor_app.media.storage import Storage, storage
from proctor_app.media.storage.layout import attempt_folders
from proctor_app.models import (
    Attempt,
    Chunk,
    Exam,
    Job,
    JobStatus,
    Recording,
    RecordingStatus,
    Segment,
    Snapshot,
    User,
)

log = logging.getLogger("proctor_app.retention")

ACTIVE_JOB_STATUSES = (JobStatus.queued, JobStatus.running)


@dataclass
class PlanItem:
    """One attempt whose media is due for deletion (or whose interrupted deletion is to finish)."""

    attempt_id: int
    exam_title: str
    candidate_email: str
    reason: str
    resumed: bool
    # Its storage folders, deleted whole, and the files found now: relative path -> bytes.
    folders: list[str]
    files: dict[str, int]

    @property
    def bytes(self) -> int:
        return sum(self.files.values())


@dataclass
class RetentionPlan:
    now: datetime
    retention_days: int
    items: list[PlanItem]

    @property
    def total_bytes(self) -> int:
        return sum(item.bytes for item in self.items)

    @property
    def total_files(self) -> int:
        return sum(len(item.files) for item in self.items)



def _interrupted():
    return and_(Attempt.media_expired_at.is_not(None), Attempt.media_deleted_at.is_(None))


def _due(cutoff: datetime):
    being_processed = or_(
        exists().where(Recording.attempt_id == Attempt.id,
                       Recording.status == RecordingStatus.processing),
        exists().where(Job.attempt_id == Attempt.id, Job.status.in_(ACTIVE_JOB_STATUSES)),
    )
    return and_(
        Attempt.media_expired_at.is_(None),
        Attempt.legal_hold.is_(False),
        or_(Attempt.ended_at <= cutoff,
            and_(Attempt.ended_at.is_(None), Attempt.deadline_at <= cutoff)),
        ~being_processed,
    )


def expiry_reason(attempt: Attempt, retention_days: int) -> str:
    """Why an attempt's media is deleted, as the attempt page shows it."""
    if attempt.ended_at is not None:
        return (f"The retention period of {retention_days} days after the exam ended "
                f"({attempt.ended_at:%Y-%m-%d}) had passed.")
    return (f"The attempt was abandoned without ending, and the retention period of "
            f"{retention_days} days after its deadline ({attempt.deadline_at:%Y-%m-%d}) had passed.")


def attempt_files(db: Session, files_of: Storage, attempt: Attempt, folders: list[str]) -> dict[str, int]:
    """Every file of the attempt that exists now: its folders' contents and the paths the
    database knows (which may lie elsewhere), with their sizes."""
    files = {relative: size for folder in folders for relative, size in files_of.files_under(folder)}
    known: set[str] = set()
    recordings = db.exec(select(Recording).where(Recording.attempt_id == attempt.id)).all()
    for rec in recordings:
        known.update(p for p in (rec.mp4_path, rec.poster_path, rec.sprite_path) if p)
    if recordings:
        known.update(db.exec(select(Chunk.path).join(Segment, Chunk.segment_id == Segment.id)
                             .where(Segment.recording_id.in_([r.id for r in recordings]))))
    known.update(db.exec(select(Snapshot.path).where(Snapshot.attempt_id == attempt.id)))
    for relative in sorted(known - files.keys()):
        try:
            files[relative] = files_of.absolute(relative).lstat().st_size
        except FileNotFoundError:
            continue
        except ValueError:  # a stored path leading out of the storage folder: never touched
            log.warning("retention: attempt %s refers to %r outside storage", attempt.id, relative)
    return files


def plan_item(db: Session, files_of: Storage, attempt: Attempt, exam_title: str, email: str, reason: str,
              resumed: bool) -> PlanItem:
    folders = attempt_folders(attempt.id, attempt.started_at)
    return PlanItem(attempt.id, exam_title, email, reason, resumed, folders,
                    attempt_files(db, files_of, attempt, folders))


def plan(db: Session, now: datetime, days: int, files_of: Storage = storage) -> RetentionPlan:
    """What a run at `now` deletes with a retention of `days`, attempt by attempt, with the bytes
    it frees. Changes nothing."""
    cutoff = now - timedelta(days=days)
    rows = db.exec(select(Attempt, Exam.title, User.email)
                   .join(Exam, Exam.id == Attempt.exam_id)
                   .join(User, User.id == Attempt.candidate_id)
                   .where(or_(_interrupted(), _due(cutoff)))
                   .order_by(Attempt.id)).all()
    items = []
    for attempt, exam_title, email in rows:
        resumed = attempt.media_expired_at is not None
        if resumed:
            reason = db.exec(select(Recording.expired_reason).where(
                Recording.attempt_id == attempt.id, Recording.expired_reason != "")).first()
            reason = reason or expiry_reason(attempt, days)
        else:
            reason = expiry_reason(attempt, days)
        items.append(plan_item(db, files_of, attempt, exam_title, email, reason, resumed))
    return RetentionPlan(now, days, items)

