"""Timed background work: the daily retention run, at the time (UTC) the admin set (then the
media.expiring webhooks), and a health sample every minute (kept 30 days) for the Health page
(then the operator.alert webhooks of alerts it started).

Started from the server's lifespan, so every app process has one; the retention lock and the
run's own check let only the first of them do the day's work.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import timezone

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from proctor_app.clock import Clock
from proctor_app.db import session_scope
from proctor_app.media.retention.run import RetentionBusy
from proctor_app.metrics import retention_freed_bytes, retention_runs, storage_bytes
from proctor_app.services import health
from proctor_app.services.retention import run_retention
from proctor_app.services.settings import get_setting
from proctor_app.services.webhooks.notices import announce_expiring, announce_started_alerts

log = logging.getLogger("proctor_app.schedule")

RETENTION_JOB_ID = "retention"
# How often the run time is read again: a change saved by any process is followed within this.
SETTING_CHECK_S = 60


def _daily_at(run_at: str) -> CronTrigger:
    hour, minute = (int(part) for part in run_at.split(":"))
    return CronTrigger(hour=hour, minute=minute, timezone=timezone.utc)


def _retention_run_at() -> str:
    with session_scope() as db:
        return get_setting(db, "retention_run_at")


def run_scheduled_retention(clock: Clock) -> None:
    """The daily job (in a worker thread): one retention run, logged; never raises."""
    try:
        with session_scope() as db:
            result = run_retention(db, clock.now(), scheduled=True)
    except RetentionBusy:
        retention_runs.labels("busy").inc()
        log.info("retention: another process is running it")
        return
    except Exception:
        retention_runs.labels("failed").inc()
        log.exception("retention run failed")
        return
    retention_runs.labels("skipped" if result.skipped else "done").inc()
    if result.skipped:
        log.info("retention: today's run was done already (another process)")
    else:
        retention_freed_bytes.inc(result.bytes_freed)
        log.info("retention: %d attempts, %d files, %d bytes freed, %d errors",
                 len(result.deleted_attempts), result.files_deleted, result.bytes_freed,
                 len(result.errors))
        try:  # by the process that did the day's run, so once a day
            with session_scope() as db:
                log.info("webhooks: %d media.expiring notices", announce_expiring(db, clock.now()))
        except Exception:
            log.exception("media.expiring notices failed")


def store_health_sample(clock: Clock, live_publishers: int) -> None:
    """One health sample (in a worker thread): walks the storage folder, then writes the row."""
    stored = health.storage_bytes()
    storage_bytes.set(stored)
    with session_scope() as db:
        if health.take_sample(db, clock.now(), live_publishers, stored) is not None:
            db.flush()
            announce_started_alerts(db, clock.now())  # by the process whose sample it is


class Schedule:
    def __init__(self, clock: Clock, live_publishers: Callable[[], int] = lambda: 0) -> None:
        self.clock = clock
        self.live_publishers = live_publishers
        self.scheduler = AsyncIOScheduler(timezone=timezone.utc)
        self.run_at = ""

    def start(self) -> None:
        """Needs the running event loop (call it from the lifespan)."""
        self.run_at = _retention_run_at()
        self.scheduler.add_job(run_scheduled_retention, _daily_at(self.run_at), args=[self.clock],
                               id=RETENTION_JOB_ID,
                               coalesce=True, max_instances=1, misfire_grace_time=3600)
        self.scheduler.add_job(self.follow_setting, "interval", seconds=SETTING_CHECK_S,
                               id="retention-time", coalesce=True, max_instances=1)
        self.scheduler.add_job(self.sample_health, "interval",
                               seconds=health.SAMPLE_EVERY.total_seconds(), id="health-sample",
                               coalesce=True, max_instances=1)
        self.scheduler.start()

    async def follow_setting(self) -> None:
        """Move the daily run when the admin changed its time."""
        try:
            run_at = await asyncio.to_thread(_retention_run_at)
        except Exception:
            log.exception("reading the retention time failed")
            return
        if run_at != self.run_at:
            self.scheduler.reschedule_job(RETENTION_JOB_ID, trigger=_daily_at(run_at))
            log.info("retention: daily run moved from %s to %s UTC", self.run_at, run_at)
            self.run_at = run_at

    async def sample_health(self) -> None:
        publishers = self.live_publishers()  # on the event loop, where the relay lives
        try:
            await asyncio.to_thread(store_health_sample, self.clock, publishers)
        except Exception:
            log.exception("taking a health sample failed")

    def shutdown(self) -> None:
        self.scheduler.shutdown(wait=False)
