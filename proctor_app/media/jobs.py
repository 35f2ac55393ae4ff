"""Durable background jobs: the `jobs` table is the queue; every app process runs a Worker.

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

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psutil
from sqlalchemy import update
from sqlmodel import Session, select

from proctor_app.db import session_scope
from proctor_app.models import AuditLog, Job, JobStatus, utcnow
from proctor_app.services.settings import get_setting

log = logging.getLogger("proctor_app.jobs")

FINALIZE = "finalize"
HEARTBEAT_S = 5.0
STALE_AFTER = timedelta(seconds=60)
POLL_S = 1.0
BACKOFF_BASE_S = 15
BACKOFF_MAX_S = 600
MAX_ERROR_CHARS = 2000
# Processing waits for the browser's last uploads (see ingest.uploads_settled); asks again after:
SETTLE_RECHECK_S = 3.0
CONCURRENCY_TTL_S = 10.0

SessionFactory = Callable[[], AbstractContextManager[Session]]


class PermanentError(Exception):
    """Trying again cannot help: the job fails now, with this message as its reason."""


class Defer(Exception):
    """Not yet: run the job again after `seconds`, without counting a try."""

    def __init__(self, seconds: float, why: str = ""):
        super().__init__(why or f"deferred {seconds} s")
        self.seconds = seconds


# ---------------------------------------------------------------------------------------------
# Queue operations (each in the caller's session; the caller commits)


def enqueue(db: Session, kind: str, attempt_id: int | None = None, payload: dict | None = None,
            delay_s: float = 0.0, max_tries: int = 5) -> Job:
    job = Job(kind=kind, attempt_id=attempt_id, payload=payload or {}, max_tries=max_tries,
              run_after=utcnow() + timedelta(seconds=delay_s))
    db.add(job)
    db.flush()
    return job


def enqueue_finalize(db: Session, attempt_id: int, force: bool = False) -> Job:
    """Queue processing of an attempt's recordings; a job already waiting for it is reused.

    Called in the transaction that ends the attempt, so the job exists exactly when the end does.
    `force` processes again recordings that are already completed (admin "re-process").
    """
    waiting = db.exec(select(Job).where(Job.kind == FINALIZE, Job.attempt_id == attempt_id,
                                        Job.status == JobStatus.queued)).first()
    if waiting is not None:
        if force and not waiting.payload.get("force"):
            waiting.payload = {**waiting.payload, "force": True}
            db.add(waiting)
        return waiting
    return enqueue(db, FINALIZE, attempt_id, {"force": True} if force else {})


def request_reprocess(db: Session, attempt_id: int, user_id: int | None) -> Job:
    """An admin's "process this attempt again": queued and written to the audit log."""
    job = enqueue_finalize(db, attempt_id, force=True)
    db.add(AuditLog(user_id=user_id, action="reprocess_requested", target=f"attempt:{attempt_id}",
                    data={"job_id": job.id}))
    return job


def jobs_of_attempt(db: Session, attempt_id: int) -> list[Job]:
    """The attempt's jobs, newest first: status, progress (0..1), tries and last error for the UI."""
    return list(db.exec(select(Job).where(Job.attempt_id == attempt_id)
                        .order_by(Job.created_at.desc(), Job.id.desc())))


def claim(db: Session, worker: str, kinds: list[str], now: datetime | None = None) -> Job | None:
    """Take the next due job for `worker` (committed), or None."""
    now = now or utcnow()
    query = (select(Job.id).where(Job.status == JobStatus.queued, Job.run_after <= now,
                                  Job.kind.in_(kinds))
             .order_by(Job.run_after, Job.id).limit(1))
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


# ---------------------------------------------------------------------------------------------
# Workers


def _worker_id() -> str:
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


@dataclass
class JobContext:
    """What a handler gets: the job's fields, and `report(progress)` for the UI."""

    id: int
    kind: str
    attempt_id: int | None
    payload: dict
    tries: int
    max_tries: int
    progress: float = 0.0

    @property
    def last_try(self) -> bool:
        return self.tries >= self.max_tries

    def report(self, progress: float) -> None:
        self.progress = max(0.0, min(1.0, progress))


@dataclass(frozen=True)
class Handler:
    run: Callable[[JobContext], Awaitable[None]]
    # Called (in a thread) when the job ends failed, to leave its subject in a clear state.
    on_failed: Callable[[int | None, str], None] | None = None


async def _run_finalize(ctx: JobContext) -> None:
    from proctor_app.media import finalize, ingest
    from proctor_app.models import Attempt, Recording, RecordingStatus

    def settled() -> bool:
        with session_scope() as db:
            attempt = db.get(Attempt, ctx.attempt_id)
            if attempt is None:
                raise PermanentError(f"attempt {ctx.attempt_id} does not exist")
            recording = db.exec(select(Recording.id).where(
                Recording.attempt_id == attempt.id,
                Recording.status.in_([RecordingStatus.not_started, RecordingStatus.in_progress]))).first()
            return recording is None or ingest.uploads_settled(db, attempt)

    if not await asyncio.to_thread(settled):
        raise Defer(SETTLE_RECHECK_S, "waiting for the browser's last uploads")

    def ready(stream: str, status: str) -> None:
        log.info("attempt %s: %s recording %s", ctx.attempt_id, stream, status)

    await finalize.finalize_attempt(ctx.attempt_id, force=bool(ctx.payload.get("force")),
                                    last_try=ctx.last_try, on_progress=ctx.report, on_ready=ready)


def _finalize_failed(attempt_id: int | None, reason: str) -> None:
    from proctor_app.media import finalize

    if attempt_id is not None:
        finalize.fail_processing(attempt_id, reason)


HANDLERS: dict[str, Handler] = {FINALIZE: Handler(_run_finalize, _finalize_failed)}


@dataclass
class Worker:
    """Takes and runs jobs, at most `concurrency` at once (default: the admin setting)."""

    handlers: dict[str, Handler] = field(default_factory=lambda: dict(HANDLERS))
    sessions: SessionFactory = session_scope
    concurrency: int | None = None
    poll_s: float = POLL_S
    name: str = field(default_factory=_worker_id)

    def __post_init__(self):
        self._active: dict[int, asyncio.Task] = {}
        self._limit = (float("-inf"), 1)  # (when read, value) of the concurrency setting

    def _limit_now(self, loop_time: float) -> int:
        if self.concurrency is not None:
            return self.concurrency
        read_at, limit = self._limit
        if loop_time - read_at > CONCURRENCY_TTL_S:
            with self.sessions() as db:
                limit = int(get_setting(db, "processing_concurrency"))
            self._limit = (loop_time, limit)
        return limit

    def _claim(self) -> Job | None:
        with self.sessions() as db:
            return claim(db, self.name, list(self.handlers))

    def _sweep(self, at_start: bool) -> None:
        with self.sessions() as db:
            kinds = list(self.handlers)
            failed = requeue_stale(db, kinds) + (requeue_dead_local(db, self.name, kinds) if at_start else [])
            db.commit()
        for job in failed:
            self._failed_hook(job.kind, job.attempt_id, job.last_error)

    def _failed_hook(self, kind: str, attempt_id: int | None, reason: str) -> None:
        handler = self.handlers.get(kind)
        if handler and handler.on_failed:
            try:
                handler.on_failed(attempt_id, reason)
            except Exception:
                log.exception("cleaning up after failed %s job of attempt %s", kind, attempt_id)

    async def run(self) -> None:
        """Until cancelled; running jobs are then put back for the next start."""
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        await asyncio.to_thread(self._sweep, True)
        last_sweep = loop.time()
        try:
            while True:
                try:
                    limit = await asyncio.to_thread(self._limit_now, loop.time())
                    while len(self._active) < limit:
                        job = await asyncio.to_thread(self._claim)
                        if job is None:
                            break
                        ctx = JobContext(job.id, job.kind, job.attempt_id, dict(job.payload),
                                         job.tries, job.max_tries)
                        task = asyncio.create_task(self._execute(ctx))
                        self._active[job.id] = task
                        task.add_done_callback(lambda _t, job_id=job.id: self._done(job_id))
                    if loop.time() - last_sweep > HEARTBEAT_S:
                        await asyncio.to_thread(self._sweep, False)
                        last_sweep = loop.time()
                except Exception:  # a database hiccup must not end the worker
                    log.exception("job worker loop")
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)
                except TimeoutError:
                    pass
        finally:
            tasks = list(self._active.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _done(self, job_id: int) -> None:
        self._active.pop(job_id, None)
        self._wake.set()

    def _write(self, operation, *args):
        with self.sessions() as db:
            return operation(db, *args)

    async def _beat(self, ctx: JobContext, runner: asyncio.Task) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                ours = await asyncio.to_thread(self._write, heartbeat, ctx.id, self.name, ctx.progress)
            except Exception:
                log.exception("heartbeat of job %s", ctx.id)
                continue
            if not ours:
                log.warning("job %s was handed to another worker; stopping it here", ctx.id)
                runner.cancel()
                return

    async def _execute(self, ctx: JobContext) -> None:
        handler = self.handlers[ctx.kind]
        runner = asyncio.create_task(handler.run(ctx))
        beat = asyncio.create_task(self._beat(ctx, runner))
        try:
            await runner
        except asyncio.CancelledError:
            if not runner.cancelled():
                runner.cancel()
            # Shutting down (or the job was handed on): not the job's fault, no try counted.
            await asyncio.shield(asyncio.to_thread(self._write, put_back, ctx.id, self.name, 0,
                                                   "interrupted: the worker stopped"))
            raise
        except Defer as exc:
            await asyncio.to_thread(self._write, put_back, ctx.id, self.name, exc.seconds, str(exc))
        except Exception as exc:
            permanent = isinstance(exc, PermanentError)
            if not permanent:
                log.exception("job %s (%s) failed on try %s", ctx.id, ctx.kind, ctx.tries)
            reason = str(exc) or type(exc).__name__
            final = permanent or ctx.last_try
            if final:
                # Its subject first: should the process die now, the job runs again.
                await asyncio.to_thread(self._failed_hook, ctx.kind, ctx.attempt_id, reason)
            await asyncio.to_thread(self._write, fail_or_retry, ctx.id, self.name, ctx.tries, final, reason)
        else:
            await asyncio.to_thread(self._write, finish, ctx.id, self.name)
        finally:
            beat.cancel()
