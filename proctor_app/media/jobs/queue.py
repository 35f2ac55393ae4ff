"""The job queue: the `jobs` table, and each operation on it in the caller's session.

- A job is taken by one worker at a time: on PostgreSQL with `SELECT ... FOR UPDATE SKIP LOCKED`
  (workers in other processes skip a row being taken instead of waiting for it), and on every
  database with a compare-and-set update (`... WHERE status = 'queued'`), which is what keeps
  SQLite (one writer at a time) safe.
- Every later change a worker makes is conditional on the job still being its own, so a worker
  that lost its job (it stopped heart-beating and the job was handed on) cannot overwrite it.
- A running job beats every HEARTBEAT_S; one silent for STALE_AFTER is handed back to the queue.
  At start a worker also takes back at once the jobs of a dead process on its own host.
- Errors are retried with exponential backoff until max_tries; then the job is failed with its
  reason. A PermanentError fails it at once; Defer puts it back without counting a try.
"""

import logging
import os
import secrets
import socket
from datetime import datetime, timedelta

import psutil
from sqlalchemy import case, update
from sqlmodel import Session, select

from proctor_app.models import Job, JobStatus, utcnow

log = logging.getLogger("proctor_app.jobs")

STALE_AFTER = timedelta(seconds=60)
BACKOFF_BASE_S = 15
BACKOFF_MAX_S = 600
MAX_ERROR_CHARS = 2000


# ---------------------------------------------------------------------------------------------
# Queue operations (each in the caller's session; the caller commits)


def enqueue(db: Session, kind: str, attempt_id: int | None = None, payload: dict | None = None,
            delay_s: float = 0.0, max_tries: int = 5) -> Job:
    job = Job(kind=kind, attempt_id=attempt_id, payload=payload or {}, max_tries=max_tries,
              run_after=utcnow() + timedelta(seconds=delay_s))
    db.add(job)
    db.flush()
    return job



def claim(db: Session, worker: str, kinds: list[str], now: datetime | None = None) -> Job | None:
    """Take the next due job for `worker` (committed), or None: of the kinds, the earlier ones in
    `kinds` first (an MP4 before any HLS ladder), then the oldest due."""
    now = now or utcnow()
    rank = case({kind: index for index, kind in enumerate(kinds)}, value=Job.kind)
    query = (select(Job.id).where(Job.status == JobStatus.queued, Job.run_after <= now,
                                  Job.kind.in_(kinds))
             .order_by(rank, Job.run_after, Job.id).limit(1))
    if db.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    job_id = db.exec(query).first()
    if job_id is None:
        db.rollback()
        return None
    taken = db.execute(update(Job).where(Job.id == job_id, Job.status == JobStatus.queued).values(
        status=JobStatus.running, worker=worker, tries=Job.tries + 1, started_at=now,
        heartbeat_at=now, progress=0.0, finished_at=None))
    db.commit()
    return db.get(Job, job_id) if taken.rowcount == 1 else None


def _mine(job_id: int, worker: str):
    return update(Job).where(Job.id == job_id, Job.worker == worker, Job.status == JobStatus.running)


def heartbeat(db: Session, job_id: int, worker: str, progress: float) -> bool:
    """False when the job is no longer this worker's (it was handed on as stale)."""
    return db.execute(_mine(job_id, worker).values(heartbeat_at=utcnow(),
                                                   progress=round(progress, 4))).rowcount == 1


def finish(db: Session, job_id: int, worker: str) -> bool:
    return db.execute(_mine(job_id, worker).values(status=JobStatus.done, progress=1.0,
                                                   finished_at=utcnow(), last_error="")).rowcount == 1


def backoff_s(tries: int) -> float:
    return min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, tries - 1))


def fail_or_retry(db: Session, job_id: int, worker: str, tries: int, final: bool, error: str) -> None:
    """After an error: failed if `final`, else queued again after a backoff that grows with tries."""
    now = utcnow()
    if final:
        values = {"status": JobStatus.failed, "finished_at": now}
    else:
        values = {"status": JobStatus.queued, "run_after": now + timedelta(seconds=backoff_s(tries))}
    db.execute(_mine(job_id, worker).values(last_error=error[:MAX_ERROR_CHARS], **values))


def put_back(db: Session, job_id: int, worker: str, delay_s: float, why: str) -> None:
    """Queued again without counting this try (deferred, or the worker is shutting down)."""
    db.execute(_mine(job_id, worker).values(status=JobStatus.queued, tries=Job.tries - 1, worker="",
                                            run_after=utcnow() + timedelta(seconds=delay_s),
                                            last_error=why[:MAX_ERROR_CHARS]))


def _hand_back(db: Session, jobs: list[Job], why: str, now: datetime) -> list[Job]:
    """Running jobs whose worker is gone: queued again, or failed when no tries are left.
    Each only if it is still as it was read (another worker may have handed it on meanwhile)."""
    failed = []
    for job in jobs:
        final = job.tries >= job.max_tries
        values = ({"status": JobStatus.failed, "finished_at": now, "last_error": f"{why}; no tries left"}
                  if final else {"status": JobStatus.queued, "run_after": now, "last_error": why})
        unchanged = db.execute(update(Job).where(
            Job.id == job.id, Job.status == JobStatus.running, Job.worker == job.worker,
            Job.heartbeat_at == job.heartbeat_at).values(worker="", **values)).rowcount == 1
        if unchanged and final:
            job.last_error = values["last_error"]
            failed.append(job)
    return failed


def requeue_stale(db: Session, kinds: list[str], now: datetime | None = None) -> list[Job]:
    """Hand back running jobs without a heartbeat for STALE_AFTER; returns those that failed."""
    now = now or utcnow()
    query = select(Job).where(Job.status == JobStatus.running, Job.kind.in_(kinds),
                              Job.heartbeat_at < now - STALE_AFTER)
    if db.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    stale = list(db.exec(query))
    for job in stale:
        log.warning("job %s of %s has no heartbeat since %s: handed back", job.id, job.worker,
                    job.heartbeat_at)
    return _hand_back(db, stale, "its worker stopped responding", now)



def worker_id() -> str:
    # host:pid:boot; the boot part tells a restarted process that reuses the pid from its past.
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def requeue_dead_local(db: Session, me: str, kinds: list[str], now: datetime | None = None) -> list[Job]:
    """At start: jobs running under a process of this host that no longer exists."""
    now = now or utcnow()
    host, pid, _ = me.split(":")
    dead = []
    for job in db.exec(select(Job).where(Job.status == JobStatus.running, Job.kind.in_(kinds),
                                         Job.worker.startswith(f"{host}:"))):
        _, other_pid, _ = (job.worker.split(":") + ["", ""])[:3]
        if job.worker != me and (other_pid == pid or not other_pid.isdigit()
                                 or not psutil.pid_exists(int(other_pid))):
            dead.append(job)
    return _hand_back(db, dead, "its worker process died", now)
