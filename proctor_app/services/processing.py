"""Processing an attempt's recordings: during the exam, a `grow` job (queued when the attempt
starts) keeps a clean H.264 recording's MP4 growing as chunks arrive (media/processing/growing.py);
a finalize job, queued in the transaction that ends the attempt, runs once the browser has sent all
it will (media/processing/finalize.py does the work); then, as a job of its own so it never delays
the MP4, the HLS ladder of each playable recording (media/processing/hls.py)."""

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from sqlmodel import Session, select

from proctor_app.db import session_scope
from proctor_app.media.jobs.background import BackgroundProcesses
from proctor_app.media.jobs.errors import Defer, PermanentError
from proctor_app.media.jobs.queue import enqueue
from proctor_app.media.jobs.worker import Handler, JobContext
from proctor_app.media.processing.finalize import fail_processing, finalize_attempt
from proctor_app.media.processing.growing import grow_recording
from proctor_app.media.processing.hls import make_hls
from proctor_app.models import Attempt, AttemptStatus, AuditLog, Job, JobStatus, Recording, RecordingStatus
from proctor_app.services.uploads import uploads_settled

log = logging.getLogger("proctor_app.jobs")

FINALIZE = "finalize"
GROW = "grow"
HLS = "hls"
# A grow job's steps this far apart (each a stream copy of what came since the last, within
# processing_concurrency like any job); at submit, finalize appends what came after the last one.
GROW_EVERY_S = 30.0
# A ladder that fails leaves the MP4 playing: fewer tries than a finalize.
HLS_MAX_TRIES = 3
# Processing waits for the browser's last uploads (uploads_settled); asks again after:
SETTLE_RECHECK_S = 3.0


def enqueue_finalize(db: Session, attempt_id: int, force: bool = False) -> Job:
    """Queue processing of an attempt's recordings; a job already waiting for it is reused.

    Called in the transaction that ends the attempt, so the job exists exactly when the end does.
    `force` processes again recordings that are already completed (admin "re-process").
    """
    waiting = _waiting(db, FINALIZE, attempt_id)
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


def enqueue_grow(db: Session, attempt_id: int) -> Job:
    """Queue the job that grows the attempt's MP4s during the exam (in the transaction that
    starts it); one already waiting is reused."""
    return _waiting(db, GROW, attempt_id) or enqueue(db, GROW, attempt_id)


def _waiting(db: Session, kind: str, attempt_id: int) -> Job | None:
    return db.exec(select(Job).where(Job.kind == kind, Job.attempt_id == attempt_id,
                                     Job.status == JobStatus.queued)).first()


def _without_ladder(db: Session, attempt_id: int) -> list[int]:
    """Playable recordings of the attempt that have no HLS ladder yet."""
    return list(db.exec(select(Recording.id).where(
        Recording.attempt_id == attempt_id, Recording.mp4_path != "", Recording.hls_path == "",
        Recording.status.in_([RecordingStatus.completed, RecordingStatus.partial]))))


def enqueue_hls(db: Session, attempt_id: int) -> Job | None:
    """Queue the HLS ladders of the attempt's playable recordings that have none (a job already
    waiting for it is reused); None when there is nothing to make."""
    if not _without_ladder(db, attempt_id):
        return None
    return _waiting(db, HLS, attempt_id) or enqueue(db, HLS, attempt_id, max_tries=HLS_MAX_TRIES)


def finalize_pending(db: Session, attempt_id: int) -> bool:
    """Whether processing of the attempt is queued or running."""
    return db.exec(select(Job.id).where(Job.kind == FINALIZE, Job.attempt_id == attempt_id,
                                        Job.status.in_([JobStatus.queued, JobStatus.running]))).first() is not None


def _settled(attempt_id: int) -> bool:
    with session_scope() as db:
        attempt = db.get(Attempt, attempt_id)
        if attempt is None:
            raise PermanentError(f"attempt {attempt_id} does not exist")
        recording = db.exec(select(Recording.id).where(
            Recording.attempt_id == attempt.id,
            Recording.status.in_([RecordingStatus.not_started, RecordingStatus.in_progress]))).first()
        return recording is None or uploads_settled(db, attempt)


def finalize_handler(settings: Callable[[], Mapping[str, Any]]) -> Handler:
    """The job handler that finalizes an attempt's recordings (keep_raw_chunks from `settings`)."""

    async def run(ctx: JobContext) -> None:
        if not await asyncio.to_thread(_settled, ctx.attempt_id):
            raise Defer(SETTLE_RECHECK_S, "waiting for the browser's last uploads")
        log.info("finalize of attempt %s started (job %s, try %s of %s)", ctx.attempt_id, ctx.id,
                 ctx.tries, ctx.max_tries)

        def ready(stream: str, status: str) -> None:
            log.info("attempt %s: %s recording %s", ctx.attempt_id, stream, status)

        keep_raw = bool((await asyncio.to_thread(settings))["keep_raw_chunks"])
        await finalize_attempt(ctx.attempt_id, keep_raw=keep_raw, force=bool(ctx.payload.get("force")),
                               last_try=ctx.last_try, on_progress=ctx.report, on_ready=ready)
        await asyncio.to_thread(_queue_hls, ctx.attempt_id)

    def failed(attempt_id: int | None, reason: str) -> None:
        if attempt_id is not None:
            fail_processing(attempt_id, reason)

    return Handler(run, failed)


def _recordings_to_grow(attempt_id: int) -> list[int] | None:
    """The attempt's recordings still taking chunks; None once it has ended (finalize appends
    the rest)."""
    with session_scope() as db:
        attempt = db.get(Attempt, attempt_id)
        if attempt is None or attempt.ended_at is not None or attempt.status != AttemptStatus.in_progress:
            return None
        return list(db.exec(select(Recording.id).where(
            Recording.attempt_id == attempt_id,
            Recording.status.in_([RecordingStatus.not_started, RecordingStatus.in_progress]))))


async def run_grow(ctx: JobContext, background: BackgroundProcesses | None = None) -> None:
    """One step for each recording of the attempt, then again in GROW_EVERY_S while the exam goes
    on and any of them may still grow (a recording that cannot is left to finalize's usual path).
    The steps run in `background`'s processes where given, else in a thread of this one."""
    todo = await asyncio.to_thread(_recordings_to_grow, ctx.attempt_id)
    if todo is None:
        return
    step = background.run if background is not None else asyncio.to_thread
    states = [await step(grow_recording, recording_id) for recording_id in todo]
    if not todo or any(state is None or not state.dead for state in states):
        raise Defer(GROW_EVERY_S, "growing the MP4s as chunks arrive")


def _queue_hls(attempt_id: int) -> None:
    with session_scope() as db:
        enqueue_hls(db, attempt_id)


def _ladders_to_make(attempt_id: int) -> list[int] | None:
    """The recordings to make ladders of; None while the attempt's MP4s are (to be) made again."""
    with session_scope() as db:
        return None if finalize_pending(db, attempt_id) else _without_ladder(db, attempt_id)


async def run_hls(ctx: JobContext) -> None:
    """The HLS ladder of each playable recording of the attempt that has none; never before its
    MP4 is ready (a finalize still to run makes a new MP4, and queues this again)."""
    todo = await asyncio.to_thread(_ladders_to_make, ctx.attempt_id)
    if todo is None:
        raise Defer(SETTLE_RECHECK_S, "waiting for the attempt's processing")
    for index, recording_id in enumerate(todo):
        await make_hls(session_scope, recording_id,
                       lambda value, i=index: ctx.report((i + value) / len(todo)))
        log.info("attempt %s: HLS ladder of recording %s made", ctx.attempt_id, recording_id)


def job_handlers(settings: Callable[[], Mapping[str, Any]],
                 background: BackgroundProcesses | None = None) -> dict[str, Handler]:
    """Every kind of job the workers run, by kind, in the order workers take them: MP4s, HLS
    ladders, then growing MP4s (a grow job of each exam in progress is due every GROW_EVERY_S: ahead
    of the ladders, a thousand of them would hold every ladder back until their exams end; held
    back themselves, finalize only has more to append). A failed grow or ladder leaves nothing to
    clean up: finalize takes its usual path, the page plays the MP4. Grow steps run in
    `background`'s processes where given (media/jobs/background.py says why)."""
    return {FINALIZE: finalize_handler(settings), HLS: Handler(run_hls),
            GROW: Handler(functools.partial(run_grow, background=background))}
