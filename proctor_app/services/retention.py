"""Retention as the admin and the daily schedule use it: runs with the retention period of the
settings, and the storage overview of the settings page. RetentionBusy and RunResult are part of what it answers."""

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from proctor_app.media.retention.plan import RetentionPlan, plan
from proctor_app.media.retention.run import RetentionBusy as RetentionBusy
from proctor_app.media.retention.run import ErasureRefused as ErasureRefused
from proctor_app.media.retention.run import RunResult, erase, next_daily_run, run
from proctor_app.media.retention.usage import stored_files, usage_by_exam, usage_by_month
from proctor_app.models import AuditLog, User
from proctor_app.services.settings import get_setting


def retention_plan(db: Session, at: datetime) -> RetentionPlan:
    """What a run at `at` would delete. Changes nothing."""
    return plan(db, at, get_setting(db, "retention_days"))


def run_retention(db: Session, now: datetime, dry_run: bool = False, *, user_id: int | None = None,
                  scheduled: bool = False) -> RunResult:
    return run(db, now, get_setting(db, "retention_days"), dry_run, user_id=user_id, scheduled=scheduled)


def erase_media(db: Session, attempt_id: int, now: datetime, reason: str, *, user_id: int | None = None,
                data: dict | None = None) -> bool:
    """An erasure request (the API's DELETE .../media): the attempt's media goes now, as a
    retention run would delete it. False when it was gone already."""
    return erase(db, attempt_id, now, reason, user_id=user_id, data=data)


@dataclass(frozen=True)
class StorageUsage:
    total_bytes: int
    by_month: dict[str, int]
    by_exam: dict[str, int]


def storage_usage(db: Session) -> StorageUsage:
    """What the storage folder holds, by month and by exam. Reads the whole folder: run it in a
    worker thread."""
    files = list(stored_files())
    return StorageUsage(sum(f.size for f in files), usage_by_month(files), usage_by_exam(db, files))


def next_scheduled_run(db: Session, now: datetime) -> tuple[datetime, RetentionPlan]:
    """When the daily run comes next, and what it would delete then."""
    at = next_daily_run(get_setting(db, "retention_run_at"), now)
    return at, retention_plan(db, at)


def recent_runs(db: Session, limit: int) -> list[tuple[AuditLog, str | None]]:
    """The latest retention runs (their audit entries), newest first, with who started them."""
    return list(db.exec(select(AuditLog, User.name).join(User, User.id == AuditLog.user_id, isouter=True)
                        .where(AuditLog.action == "retention_run")
                        .order_by(AuditLog.id.desc()).limit(limit)).all())
