"""The platform's health figures: read from the database, storage and disk, sampled once a minute
into `health_samples` for the Health page (and pruned), and read at scrape time for /metrics."""

import shutil
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func
from sqlmodel import Session, select

from proctor_app.media.storage import storage
from proctor_app.models import HealthSample, Job, JobStatus, WebhookAttempt
from proctor_app.services.processing import FINALIZE

SAMPLE_EVERY = timedelta(minutes=1)
KEEP_SAMPLES = timedelta(days=30)
WINDOW = timedelta(hours=1)


def queue_figures(db: Session, now: datetime) -> tuple[int, float]:
    """Jobs due and waiting, and how long (s) the oldest has waited since it became due."""
    depth, oldest = db.exec(select(func.count(Job.id), func.min(Job.run_after))
                            .where(Job.status == JobStatus.queued, Job.run_after <= now)).one()
    if oldest is None:
        return 0, 0.0
    return depth, max(0.0, (now - _aware(oldest, now)).total_seconds())


def _aware(moment: datetime, like: datetime) -> datetime:
    # SQLite's MIN() hands back the stored text without the column type's conversion.
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=like.tzinfo)


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def disk_space(root: Path) -> tuple[int, int]:
    """(free, total) bytes of the file system holding `root` (or where it will be made)."""
    while not root.exists() and root.parent != root:
        root = root.parent
    usage = shutil.disk_usage(root)
    return usage.free, usage.total


def storage_bytes() -> int:
    """Bytes in the storage folder (walks it: call it in a thread, about once a minute)."""
    return sum(size for _, size in storage.files_under(""))


def take_sample(db: Session, now: datetime, live_publishers: int, stored_bytes: int) -> HealthSample | None:
    """Store the figures at `now`, unless another process took a sample in this minute already."""
    newest = db.exec(select(func.max(HealthSample.taken_at))).one()
    if newest is not None and now - _aware(newest, now) < SAMPLE_EVERY * 0.8:
        return None
    ended = db.exec(select(Job.status, Job.started_at, Job.finished_at).where(
        Job.kind == FINALIZE, Job.finished_at > now - WINDOW,
        Job.status.in_([JobStatus.done, JobStatus.failed]))).all()
    durations = [(finished - started).total_seconds() for status, started, finished in ended
                 if status == JobStatus.done and started and finished]
    depth, oldest = queue_figures(db, now)
    tries = Counter(db.exec(select(WebhookAttempt.ok).where(WebhookAttempt.at > now - WINDOW)).all())
    free, total = disk_space(storage.root())
    sample = HealthSample(
        taken_at=now, jobs_done=sum(1 for row in ended if row[0] == JobStatus.done),
        jobs_failed=sum(1 for row in ended if row[0] == JobStatus.failed),
        processing_p95_s=_percentile(durations, 0.95), queue_depth=depth, oldest_wait_s=oldest,
        storage_bytes=stored_bytes, disk_free_bytes=free, disk_total_bytes=total,
        live_publishers=live_publishers, webhook_tries_ok=tries[True], webhook_tries_failed=tries[False])
    db.add(sample)
    db.exec(delete(HealthSample).where(HealthSample.taken_at < now - KEEP_SAMPLES))
    db.commit()
    return sample


def recent_samples(db: Session, now: datetime, span: timedelta) -> list[HealthSample]:
    """The samples of the last `span`, oldest first."""
    return list(db.exec(select(HealthSample).where(HealthSample.taken_at > now - span)
                        .order_by(HealthSample.taken_at)).all())
