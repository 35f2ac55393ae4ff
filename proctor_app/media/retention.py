"""Retention: deletes the media of attempts whose retention period is over, and nothing else.

An attempt's media (raw chunks, MP4s, posters, thumbnail sprites, snapshots, and whatever else lies
in its storage folders) expires `retention_days` after the attempt ended; for an attempt that never
ended (abandoned), after its deadline. Never while the attempt is on legal hold or one of its
recordings is being processed (recording status "processing", or a queued or running job).

Crash safety, per attempt: (1) one transaction records the intent (Attempt.media_expired_at, and
every recording "expired" with date and reason), (2) the files are deleted, (3) one transaction
records that they are gone (paths cleared, raw_deleted_at, snapshot rows removed,
Attempt.media_deleted_at) and writes the deletion to the audit log. An attempt whose intent is
recorded but not its end was interrupted: the next run finishes it, whatever changed meanwhile,
so the database and the disk agree afterwards.

One run at a time across processes: a PostgreSQL advisory lock, or on SQLite a file lock next to
the database file.
"""

import fcntl
import logging
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from pathlib import Path, PurePosixPath

from sqlalchemy import and_, delete, exists, or_, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from proctor_app.config import config
from proctor_app.media.storage import (
    absolute,
    attempt_raw_dir,
    processed_dir,
    snapshot_path,
    storage_root,
)
from proctor_app.models import (
    Attempt,
    AuditLog,
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
from proctor_app.services.settings import get_setting

log = logging.getLogger("proctor_app.retention")

# First key of the PostgreSQL advisory lock; the second is the schema's hash, so deployments
# sharing one database in different schemas do not wait for each other.
ADVISORY_LOCK_CLASS = 0x52_45_54  # "RET"
ACTIVE_JOB_STATUSES = (JobStatus.queued, JobStatus.running)
# Every app process runs the daily schedule; the first one to get the lock does the work.
SCHEDULED_RUN_WINDOW = timedelta(hours=1)
# Storage layout: <kind>/<YYYY>/<MM>/<attempt id>/..., the month being the attempt's start.
_ATTEMPT_FILE = re.compile(r"(?:raw|processed|snapshots)/(\d{4})/(\d{2})/(\d+)/", re.ASCII)
NOT_AN_ATTEMPT = "other files"


class RetentionBusy(RuntimeError):
    """Another process is running retention right now."""

    def __init__(self) -> None:
        super().__init__("A retention run is already in progress; try again when it has finished.")


class RetentionError(ValueError):
    """A request retention cannot honour; the message is shown to the user."""


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


# ---------------------------------------------------------------------------------------------
# What is due


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


def _attempt_folders(attempt: Attempt) -> list[str]:
    if attempt.started_at is None:
        return []
    snapshots = PurePosixPath(snapshot_path(attempt.id, attempt.started_at, 0)).parent
    return [attempt_raw_dir(attempt.id, attempt.started_at),
            processed_dir(attempt.id, attempt.started_at), str(snapshots)]


def _files_under(folder: str) -> Iterator[tuple[str, int]]:
    """(relative path, bytes) of every file below a storage folder; symbolic links are not
    followed."""
    try:
        entries = list(os.scandir(absolute(folder) if folder else storage_root()))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        relative = f"{folder}/{entry.name}" if folder else entry.name
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from _files_under(relative)
            else:
                yield relative, entry.stat(follow_symlinks=False).st_size
        except FileNotFoundError:
            continue


def _stored_files(db: Session, attempt: Attempt, folders: list[str]) -> dict[str, int]:
    """Every file of the attempt that exists now: its folders' contents and the paths the
    database knows (which may lie elsewhere), with their sizes."""
    files = {relative: size for folder in folders for relative, size in _files_under(folder)}
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
            files[relative] = absolute(relative).lstat().st_size
        except FileNotFoundError:
            continue
        except ValueError:  # a stored path leading out of the storage folder: never touched
            log.warning("retention: attempt %s refers to %r outside storage", attempt.id, relative)
    return files


def plan(db: Session, now: datetime) -> RetentionPlan:
    """What a run at `now` deletes, attempt by attempt, with the bytes it frees. Changes nothing."""
    days = get_setting(db, "retention_days")
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
        folders = _attempt_folders(attempt)
        items.append(PlanItem(attempt.id, exam_title, email, reason, resumed, folders,
                              _stored_files(db, attempt, folders)))
    return RetentionPlan(now, days, items)


# ---------------------------------------------------------------------------------------------
# The run


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
    with open(path, "a+b") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RetentionBusy() from None
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


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


def _delete_file(path: str | Path) -> int | None:
    """Deletes one file; its size, or None when it was already gone."""
    try:
        size = os.lstat(path).st_size
        os.unlink(path)
    except FileNotFoundError:
        return None
    return size


def _delete_folder(top: str) -> Iterator[int]:
    """Deletes a folder with everything in it (symbolic links, not what they point to); yields
    the size of each file deleted. A folder already gone yields nothing."""
    try:
        entries = list(os.scandir(top))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _delete_folder(entry.path)
        elif (size := _delete_file(entry.path)) is not None:
            yield size
    os.rmdir(top)


def _delete_files(item: PlanItem) -> tuple[int, int]:
    """Step 2: the attempt's folders with everything in them (also what came after planning),
    then its planned files elsewhere. Returns (files deleted, bytes freed); files already gone
    (a rerun) count as nothing."""
    sizes = [size for folder in item.folders for size in _delete_folder(str(absolute(folder)))]
    inside = tuple(f"{folder}/" for folder in item.folders)
    for relative in item.files:
        if not relative.startswith(inside) and (size := _delete_file(absolute(relative))) is not None:
            sizes.append(size)
    return len(sizes), sum(sizes)


def _mark_deleted(db: Session, item: PlanItem, now: datetime, count: int, freed: int,
                  user_id: int | None) -> None:
    """Step 3: the database says what the disk now holds, and the audit log says who did it."""
    attempt, recordings = _locked_attempt(db, item.attempt_id)
    for rec in recordings:
        rec.mp4_path = rec.poster_path = rec.sprite_path = ""
        rec.raw_deleted_at = rec.raw_deleted_at or now
        if rec.status != RecordingStatus.expired:
            rec.status, rec.expired_at, rec.expired_reason = RecordingStatus.expired, now, item.reason
        db.add(rec)
    db.execute(delete(Snapshot).where(Snapshot.attempt_id == attempt.id))
    attempt.media_deleted_at = now
    db.add(attempt)
    db.add(AuditLog(at=now, user_id=user_id, action="media_deleted", target=f"attempt:{attempt.id}",
                    data={"files": count, "bytes": freed, "reason": item.reason,
                          "recordings": [r.id for r in recordings], "resumed": item.resumed}))
    db.commit()
    log.info("retention: deleted media of attempt %s: %d files, %d bytes%s", attempt.id, count,
             freed, " (finishing an interrupted deletion)" if item.resumed else "")


def _scheduled_run_since(db: Session, since: datetime) -> bool:
    runs = db.exec(select(AuditLog.data).where(AuditLog.action == "retention_run",
                                               AuditLog.at >= since)).all()
    return any(data.get("scheduled") for data in runs)


def run(db: Session, now: datetime, dry_run: bool = False, *, user_id: int | None = None,
        scheduled: bool = False) -> RunResult:
    """Delete what `plan` lists (interrupted deletions included). A dry run only plans.

    Commits as it goes (the intent must be stored before files go). Raises RetentionBusy when
    another process is running; a scheduled run is skipped when another process already did
    today's. A failure on one attempt is reported in the result and retried by the next run.
    """
    if dry_run:
        return RunResult(plan(db, now), dry_run=True)
    with exclusive_run(db):
        if scheduled and _scheduled_run_since(db, now - SCHEDULED_RUN_WINDOW):
            return RunResult(RetentionPlan(now, get_setting(db, "retention_days"), []), dry_run=False,
                             skipped=True)
        todo = plan(db, now)
        db.commit()  # ends the planning read, so each attempt is checked again on fresh rows
        result = RunResult(todo, dry_run=False)
        for item in todo.items:
            try:
                if not item.resumed and not _mark_expiring(db, item, now):
                    continue
                count, freed = _delete_files(item)
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


def next_daily_run(run_at: str, now: datetime) -> datetime:
    """The next moment (UTC) at the daily time "HH:MM", strictly after `now`."""
    hour, minute = (int(part) for part in run_at.split(":"))
    today = datetime.combine(now.astimezone(timezone.utc).date(), time(hour, minute), timezone.utc)
    return today if today > now else today + timedelta(days=1)


# ---------------------------------------------------------------------------------------------
# Legal hold


def set_legal_hold(db: Session, attempt_id: int, on: bool, user_id: int, reason: str = "") -> Attempt:
    """Put an attempt on legal hold (retention keeps its media) or release it; audited, with the
    reason when one is given. The caller checks that the user is a supervisor or an admin."""
    attempt = db.exec(select(Attempt).where(Attempt.id == attempt_id).with_for_update()
                      .execution_options(populate_existing=True)).first()
    if attempt is None:
        raise RetentionError("No such attempt.")
    if on and attempt.media_expired_at is not None:
        raise RetentionError(f"The media of this attempt was already deleted on "
                             f"{attempt.media_expired_at:%Y-%m-%d}; there is nothing left to hold.")
    if attempt.legal_hold != on:
        attempt.legal_hold = on
        db.add(attempt)
        db.add(AuditLog(user_id=user_id, action="legal_hold_set" if on else "legal_hold_released",
                        target=f"attempt:{attempt_id}", data={"reason": reason} if reason else {}))
        db.flush()
    return attempt


@dataclass(frozen=True)
class HeldAttempt:
    attempt_id: int
    exam_title: str
    candidate_email: str
    ended_at: datetime | None


def legal_holds(db: Session) -> list[HeldAttempt]:
    """The attempts retention keeps because of a legal hold."""
    rows = db.exec(select(Attempt.id, Exam.title, User.email, Attempt.ended_at)
                   .join(Exam, Exam.id == Attempt.exam_id).join(User, User.id == Attempt.candidate_id)
                   .where(Attempt.legal_hold.is_(True)).order_by(Attempt.id)).all()
    return [HeldAttempt(*row) for row in rows]


# ---------------------------------------------------------------------------------------------
# Storage overview


@dataclass(frozen=True)
class StoredFile:
    path: str
    size: int
    month: str  # "YYYY-MM" of the attempt's start, or NOT_AN_ATTEMPT
    attempt_id: int | None


def stored_files() -> Iterator[StoredFile]:
    """Every file in the storage folder, with the month and attempt its path says it belongs to."""
    for relative, size in _files_under(""):
        match = _ATTEMPT_FILE.match(relative)
        if match:
            yield StoredFile(relative, size, f"{match[1]}-{match[2]}", int(match[3]))
        else:
            yield StoredFile(relative, size, NOT_AN_ATTEMPT, None)


def usage_by_month(files: Iterable[StoredFile]) -> dict[str, int]:
    usage: dict[str, int] = {}
    for f in files:
        usage[f.month] = usage.get(f.month, 0) + f.size
    return dict(sorted(usage.items()))


def usage_by_exam(db: Session, files: Iterable[StoredFile]) -> dict[str, int]:
    """Bytes per exam title (exams sharing a title are told apart by their id), largest first."""
    files = list(files)
    attempt_ids = {f.attempt_id for f in files if f.attempt_id is not None}
    exam_of: dict[int, tuple[int, str]] = {}
    if attempt_ids:
        exam_of = {attempt_id: (exam_id, title) for attempt_id, exam_id, title in db.exec(
            select(Attempt.id, Exam.id, Exam.title).join(Exam, Exam.id == Attempt.exam_id)
            .where(Attempt.id.in_(attempt_ids)))}
    titles: dict[str, set[int]] = {}
    for exam_id, title in exam_of.values():
        titles.setdefault(title, set()).add(exam_id)
    usage: dict[str, int] = {}
    for f in files:
        exam = exam_of.get(f.attempt_id) if f.attempt_id is not None else None
        if exam is None:
            label = NOT_AN_ATTEMPT
        else:
            label = exam[1] if len(titles[exam[1]]) == 1 else f"{exam[1]} (#{exam[0]})"
        usage[label] = usage.get(label, 0) + f.size
    return dict(sorted(usage.items(), key=lambda kv: -kv[1]))
