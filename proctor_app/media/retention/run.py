"""A retention run: deletes what the plan lists, crash-safe, one run at a time.

Crash safety, per attempt: (1) one transaction records the intent (Attempt.media_expired_at, and
every recording "expired" with date and reason), (2) the files are deleted, (3) one transaction
records that they are gone (paths cleared, raw_deleted_at, snapshot rows removed,
Attempt.media_deleted_at) and writes the deletion to the audit log. An attempt whose intent is
recorded but not its end was interrupted: the next run finishes it, whatever changed meanwhile,
so the database and the disk agree afterwards.

One run at a time across processes: a PostgreSQL advisory lock, or on SQLite a file lock next to
the database file.
"""

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from pathlib import Path

from sqlalchemy import delete, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from proctor_app.config import config
from proctor_app.media.retention.plan import ACTIVE_JOB_STATUSES, PlanItem, RetentionPlan, plan, plan_item
from proctor_app.media.storage import Storage, storage
from proctor_app.models import (
    Attempt,
    AttemptStatus,
    AuditLog,
    Exam,
    Job,
    Recording,
    RecordingStatus,
    Snapshot,
    User,
)
from proctor_app.platform import locked_file

log = logging.getLogger("proctor_app.retention")


# First key of the PostgreSQL advisory lock; the second is the schema's hash, so deployments
# sharing one database in different schemas do not wait for each other.
ADVISORY_LOCK_CLASS = 0x52_45_54  # "RET"
# Every app process runs the daily schedule; the first one to get the lock does the work.
SCHEDULED_RUN_WINDOW = timedelta(hours=1)


class RetentionBusy(RuntimeError):
    """Another process is running retention right now."""

    def __init__(self) -> None:
        super().__init__("A retention run is already in progress; try again when it has finished.")



@dataclass
class RunResult:
    plan: RetentionPlan
    dry_run: bool
    skipped: bool = False
    deleted_attempts: list[int] = field(default_factory=list)
    files_deleted: int = 0
    bytes_freed: int = 0
    # attempt id -> what went wrong; those attempts are finished by the next run.
    errors: dict[int, str] = field(default_factory=dict)


def _sqlite_lock_path(engine: Engine) -> Path:
    database = engine.url.database
    if not database or database == ":memory:":
        return config.data_dir / "retention.lock"
    return Path(f"{database}-retention.lock")


@contextmanager
def exclusive_run(db: Session) -> Iterator[None]:
    """Hold the retention lock for the length of a run; raises RetentionBusy when another
    process has it. Either lock goes away with a crashed holder."""
    engine = db.get_bind()
    if engine.dialect.name == "postgresql":
        key = {"cls": ADVISORY_LOCK_CLASS}
        with engine.connect() as conn:
            acquired = conn.execute(text("SELECT pg_try_advisory_lock(:cls, hashtext(current_schema()))"),
                                    key).scalar()
            conn.commit()
            if not acquired:
                raise RetentionBusy()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:cls, hashtext(current_schema()))"), key)
                conn.commit()
        return
    path = _sqlite_lock_path(engine)
    path.parent.mkdir(parents=True, exist_ok=True)
    with ExitStack() as held:
        try:
            held.enter_context(locked_file(path, blocking=False))
        except BlockingIOError:
            raise RetentionBusy() from None
        yield


def _locked_attempt(db: Session, attempt_id: int) -> tuple[Attempt, list[Recording]]:
    """The attempt and its recordings as stored now (not as cached in the session), locked."""
    fresh = {"populate_existing": True}
    attempt = db.exec(select(Attempt).where(Attempt.id == attempt_id).with_for_update()
                      .execution_options(**fresh)).one()
    recordings = db.exec(select(Recording).where(Recording.attempt_id == attempt_id).with_for_update()
                         .execution_options(**fresh)).all()
    return attempt, list(recordings)


def _mark_expiring(db: Session, item: PlanItem, now: datetime) -> bool:
    """Step 1: record the intent, after checking again under the row locks that nothing (a legal
    hold, a processing job) came up since planning. Returns whether the attempt is to go."""
    attempt, recordings = _locked_attempt(db, item.attempt_id)
    active_job = db.exec(select(Job.id).where(Job.attempt_id == attempt.id,
                                              Job.status.in_(ACTIVE_JOB_STATUSES))).first()
    if (attempt.legal_hold or attempt.media_expired_at is not None or active_job is not None
            or any(r.status == RecordingStatus.processing for r in recordings)):
        db.rollback()
        return False
    attempt.media_expired_at = now
    db.add(attempt)
    for rec in recordings:
        rec.status, rec.expired_at, rec.expired_reason = RecordingStatus.expired, now, item.reason
        db.add(rec)
    db.commit()
    return True


def _delete_files(files_of: Storage, item: PlanItem) -> tuple[int, int]:
    """Step 2: the attempt's folders with everything in them (also what came after planning),
    then its planned files elsewhere. Returns (files deleted, bytes freed); files already gone
    (a rerun) count as nothing."""
    sizes = [size for folder in item.folders for size in files_of.delete_folder(files_of.absolute(folder))]
    inside = tuple(f"{folder}/" for folder in item.folders)
    for relative in item.files:
        if not relative.startswith(inside) and (size := files_of.delete_file(files_of.absolute(relative))) is not None:
            sizes.append(size)
    return len(sizes), sum(sizes)


def _mark_deleted(db: Session, item: PlanItem, now: datetime, count: int, freed: int,
                  user_id: int | None, data: dict | None = None) -> None:
    """Step 3: the database says what the disk now holds, and the audit log says who did it."""
    attempt, recordings = _locked_attempt(db, item.attempt_id)
    for rec in recordings:
        rec.mp4_path = rec.poster_path = rec.sprite_path = rec.hls_path = ""
        rec.raw_deleted_at = rec.raw_deleted_at or now
        if rec.status != RecordingStatus.expired:
            rec.status, rec.expired_at, rec.expired_reason = RecordingStatus.expired, now, item.reason
        db.add(rec)
    db.execute(delete(Snapshot).where(Snapshot.attempt_id == attempt.id))
    attempt.media_deleted_at = now
    db.add(attempt)
    db.add(AuditLog(at=now, user_id=user_id, action="media_deleted", target=f"attempt:{attempt.id}",
                    data={"files": count, "bytes": freed, "reason": item.reason,
                          "recordings": [r.id for r in recordings], "resumed": item.resumed,
                          **(data or {})}))
    db.commit()
    log.info("retention: deleted media of attempt %s: %d files, %d bytes%s", attempt.id, count,
             freed, " (finishing an interrupted deletion)" if item.resumed else "")


def _scheduled_run_since(db: Session, since: datetime) -> bool:
    runs = db.exec(select(AuditLog.data).where(AuditLog.action == "retention_run",
                                               AuditLog.at >= since)).all()
    return any(data.get("scheduled") for data in runs)


def run(db: Session, now: datetime, days: int, dry_run: bool = False, *, user_id: int | None = None,
        scheduled: bool = False, files_of: Storage = storage) -> RunResult:
    """Delete what `plan` lists with a retention of `days` (interrupted deletions included). A dry
    run only plans.

    Commits as it goes (the intent must be stored before files go). Raises RetentionBusy when
    another process is running; a scheduled run is skipped when another process already did
    today's. A failure on one attempt is reported in the result and retried by the next run.
    """
    if dry_run:
        return RunResult(plan(db, now, days, files_of), dry_run=True)
    with exclusive_run(db):
        if scheduled and _scheduled_run_since(db, now - SCHEDULED_RUN_WINDOW):
            return RunResult(RetentionPlan(now, days, []), dry_run=False,
                             skipped=True)
        todo = plan(db, now, days, files_of)
        db.commit()  # ends the planning read, so each attempt is checked again on fresh rows
        result = RunResult(todo, dry_run=False)
        for item in todo.items:
            try:
                if not item.resumed and not _mark_expiring(db, item, now):
                    continue
                count, freed = _delete_files(files_of, item)
                _mark_deleted(db, item, now, count, freed, user_id)
            except Exception as exc:  # this attempt stays marked; the next run finishes it
                db.rollback()
                log.exception("retention: deleting media of attempt %s failed", item.attempt_id)
                result.errors[item.attempt_id] = f"{type(exc).__name__}: {exc}"
                continue
            result.deleted_attempts.append(item.attempt_id)
            result.files_deleted += count
            result.bytes_freed += freed
        db.add(AuditLog(at=now, user_id=user_id, action="retention_run", target="retention",
                        data={"scheduled": scheduled, "retention_days": todo.retention_days,
                              "attempts": len(result.deleted_attempts),
                              "files": result.files_deleted, "bytes": result.bytes_freed,
                              "errors": {str(k): v for k, v in result.errors.items()}}))
        db.commit()
        return result


class ErasureRefused(RuntimeError):
    """An erasure that cannot happen now; the message says why."""


def erase(db: Session, attempt_id: int, now: datetime, reason: str, *, user_id: int | None = None,
          data: dict | None = None, files_of: Storage = storage) -> bool:
    """Delete one attempt's media now, on request, with the same crash-safe steps and audit as a
    run. False when it was deleted already. Raises ErasureRefused under a legal hold, while the
    attempt records or is processed, and RetentionBusy while a run is going on."""
    with exclusive_run(db):
        attempt, _ = _locked_attempt(db, attempt_id)
        if attempt.media_deleted_at is not None:
            return False
        if attempt.legal_hold:
            raise ErasureRefused("The media is under a legal hold.")
        if attempt.status == AttemptStatus.in_progress:
            raise ErasureRefused("The session is still recording; end it first.")
        item = plan_item(db, files_of, attempt, db.get(Exam, attempt.exam_id).title,
                         db.get(User, attempt.candidate_id).email, reason,
                         resumed=attempt.media_expired_at is not None)
        db.commit()  # a fresh look under the row locks follows
        if not item.resumed and not _mark_expiring(db, item, now):
            held = db.get(Attempt, attempt_id, populate_existing=True).legal_hold
            raise ErasureRefused("The media is under a legal hold." if held
                                 else "The recordings are being processed; try again shortly.")
        count, freed = _delete_files(files_of, item)
        _mark_deleted(db, item, now, count, freed, user_id, data)
        return True


def next_daily_run(run_at: str, now: datetime) -> datetime:
    """The next moment (UTC) at the daily time "HH:MM", strictly after `now`."""
    hour, minute = (int(part) for part in run_at.split(":"))
    today = datetime.combine(now.astimezone(timezone.utc).date(), time(hour, minute), timezone.utc)
    return today if today > now else today + timedelta(days=1)

