"""A Worker takes jobs from the queue and runs their handlers, at most `concurrency()` at once,
heart-beating each; what a try's outcome means for the job is decided here (done, retried with
backoff, failed, or put back without counting the try)."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from proctor_app.db import SessionFactory, session_scope
from proctor_app.logs import current_attempt
from proctor_app.media.jobs.errors import Defer, PermanentError
from proctor_app.media.jobs.queue import (
    claim,
    fail_or_retry,
    finish,
    heartbeat,
    put_back,
    requeue_dead_local,
    requeue_stale,
    worker_id,
)
from proctor_app.metrics import job_seconds
from proctor_app.models import Job

log = logging.getLogger("proctor_app.jobs")

HEARTBEAT_S = 5.0
# A job queued in another transaction (a submit's finalize) is claimed within this: the MP4 of a
# grown recording is ready ~0.5 s after that (bench/finalize.py --submit-to-ready). An idle
# round is one indexed SELECT.
POLL_S = 0.25


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



@dataclass
class Worker:
    """Takes and runs jobs, at most `concurrency` at once: a number, or a function asked before
    each round (the admin setting, through the settings cache)."""

    handlers: dict[str, Handler]
    concurrency: int | Callable[[], int] = 1
    sessions: SessionFactory = session_scope
    poll_s: float = POLL_S
    name: str = field(default_factory=worker_id)

    def __post_init__(self):
        self._active: dict[int, asyncio.Task] = {}
        # time.monotonic() of the last round of the loop (None: not running): readiness reads it.
        self.round_at: float | None = None

    def _limit_now(self) -> int:
        return self.concurrency() if callable(self.concurrency) else self.concurrency

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
                self.round_at = time.monotonic()
                try:
                    limit = await asyncio.to_thread(self._limit_now)
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
                # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancel that arrives
                # while the event is set (a job ending as the worker stops), and the loop ran on.
                try:
                    async with asyncio.timeout(self.poll_s):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            self.round_at = None
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
        current_attempt.set(ctx.attempt_id)  # on every log line of the job (its tasks and threads)
        started = time.monotonic()
        outcome = await self._try(ctx)
        seconds = time.monotonic() - started
        job_seconds.labels(ctx.kind, outcome).observe(seconds)
        # A job waiting for something (deferred) comes back every few seconds: not an operator's news.
        level = {"retry": logging.WARNING, "failed": logging.WARNING, "deferred": logging.DEBUG}.get(
            outcome, logging.INFO)
        log.log(level, "job %s (%s) %s after %.1f s", ctx.id, ctx.kind, outcome, seconds)

    async def _try(self, ctx: JobContext) -> str:
        """Runs the handler once; the outcome: done, deferred, retry or failed."""
        handler = self.handlers[ctx.kind]
        runner = asyncio.create_task(handler.run(ctx))
        beat = asyncio.create_task(self._beat(ctx, runner))
        try:
            await runner
        except asyncio.CancelledError:
            if not runner.cancelled():
                runner.cancel()
            log.info("job %s (%s) interrupted: put back", ctx.id, ctx.kind)
            # Shutting down (or the job was handed on): not the job's fault, no try counted.
            await asyncio.shield(asyncio.to_thread(self._write, put_back, ctx.id, self.name, 0,
                                                   "interrupted: the worker stopped"))
            raise
        except Defer as exc:
            await asyncio.to_thread(self._write, put_back, ctx.id, self.name, exc.seconds, str(exc))
            return "deferred"
        except Exception as exc:
            permanent = isinstance(exc, PermanentError)
            if not permanent:
                log.exception("job %s (%s) failed on try %s", ctx.id, ctx.kind, ctx.tries)
            reason = str(exc) or type(exc).__name__
            final = permanent or ctx.last_try
            if final:
                log.error("job %s (%s) failed for good: %s", ctx.id, ctx.kind, reason)
                # Its subject first: should the process die now, the job runs again.
                await asyncio.to_thread(self._failed_hook, ctx.kind, ctx.attempt_id, reason)
            await asyncio.to_thread(self._write, fail_or_retry, ctx.id, self.name, ctx.tries, final, reason)
            return "failed" if final else "retry"
        else:
            await asyncio.to_thread(self._write, finish, ctx.id, self.name)
            return "done"
        finally:
            beat.cancel()
