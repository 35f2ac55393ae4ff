"""Finalizing an ended attempt: every recording converted (convert.py) and its result saved and
signed (its evidence manifest), then raw chunks deleted (unless kept), previews dropped and
thumbnails made.

Completed or partial recordings are only tidied unless forced; a recording being processed is
marked "processing" first, so ingest refuses more chunks for it.
"""

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from sqlmodel import select

from proctor_app.db import session_scope
from proctor_app.media.evidence.manifest import manifest_path, write_manifest
from proctor_app.media.evidence.signing import install_key
from proctor_app.media.processing.convert import Outcome, convert
from proctor_app.media.processing.ffmpeg import ProgressFn
from proctor_app.media.processing.sources import Plan, load_plan
from proctor_app.media.processing.thumbnails import make_thumbnails
from proctor_app.media.processing.timeline import CAUSE_NO_MEDIA, FinalizeError
from proctor_app.media.storage import storage
from proctor_app.models import Attempt, Chunk, Recording, RecordingStatus, Segment, utcnow

log = logging.getLogger("proctor_app.finalize")


def delete_raw(chunk_paths: list[str]) -> None:
    """Remove chunk files and the folders they leave empty (idempotent)."""
    folders = set()
    for relative in chunk_paths:
        path = storage.absolute(relative)
        path.unlink(missing_ok=True)
        # The segment's, the stream's and the attempt's folders.
        folders.update((path.parent, path.parent.parent, path.parent.parent.parent))
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:  # not empty, or already gone
            pass



FINISHED = (RecordingStatus.completed, RecordingStatus.partial)
PROGRESS_EVERY_S = 2.0


def _start(attempt_id: int, force: bool) -> tuple[list[Plan], list[tuple[Recording, list[str]]]] | None:
    """Mark the recordings to convert "processing" (ingest then refuses more chunks for them),
    then read their plans; also returns the finished ones (with their chunk paths) to tidy.
    None when retention already deleted the attempt's media."""
    with session_scope() as db:
        attempt = db.get(Attempt, attempt_id)
        if attempt is None:
            raise FinalizeError(f"attempt {attempt_id} does not exist")
        if attempt.started_at is None or attempt.ended_at is None:
            raise FinalizeError("the attempt has not ended yet")
        if attempt.media_expired_at is not None:
            return None
        todo, finished = [], []
        for rec in db.exec(select(Recording).where(Recording.attempt_id == attempt_id)
                           .order_by(Recording.stream)):
            if rec.status == RecordingStatus.expired:
                continue
            if rec.status in FINISHED and not force:
                finished.append(rec)
                continue
            if rec.raw_deleted_at is not None:
                raise FinalizeError(f"the raw chunks of the {rec.stream} recording were deleted after "
                                    "processing, so it cannot be processed again")
            rec.status, rec.progress = RecordingStatus.processing, 0.0
            db.add(rec)
            todo.append(rec.id)
    with session_scope() as db:
        attempt = db.get(Attempt, attempt_id)
        plans = [load_plan(db, db.get(Recording, rec_id), attempt) for rec_id in todo]
        tidy = [(rec, list(db.exec(select(Chunk.path).join(Segment, Segment.id == Chunk.segment_id)
                                   .where(Segment.recording_id == rec.id))))
                for rec in finished]
    return plans, tidy


def _save(plan: Plan, outcome: Outcome, keep_raw: bool) -> None:
    with session_scope() as db:
        rec = db.get(Recording, plan.recording_id)
        rec.status, rec.gaps, rec.gap_count = outcome.status, [g.as_json() for g in outcome.gaps], len(outcome.gaps)
        if outcome.status != RecordingStatus.failed:
            rec.failure_reason = ""
        elif not (outcome.failure_reason == CAUSE_NO_MEDIA and rec.failure_reason):
            # (The browser's own report of why nothing came, from ingest, says more.)
            rec.failure_reason = outcome.failure_reason
        if outcome.mp4_path:
            rec.mp4_path, rec.duration_s, rec.codec = outcome.mp4_path, outcome.duration_s, outcome.codec[:40]
            rec.size_bytes, rec.sha256, rec.progress = outcome.size_bytes, outcome.sha256, 1.0
            rec.hls_path = ""  # the ladder of an earlier MP4, if any, is made again (hls job)
            rec.started_at = outcome.started_at
            rec.ended_at = outcome.started_at + timedelta(seconds=outcome.duration_s)
            # Decided with the verified result in one commit; the files follow (idempotently).
            if not keep_raw:
                rec.raw_deleted_at = utcnow()
        db.add(rec)


def fail_processing(attempt_id: int, reason: str) -> None:
    """The job gave up: recordings it left "processing" say so, with the reason."""
    with session_scope() as db:
        for rec in db.exec(select(Recording).where(Recording.attempt_id == attempt_id,
                                                   Recording.status == RecordingStatus.processing)):
            rec.status, rec.failure_reason, rec.progress = RecordingStatus.failed, reason[:500], 0.0
            db.add(rec)


def _save_progress(recording_id: int, value: float) -> None:
    with session_scope() as db:
        rec = db.get(Recording, recording_id)
        if rec is not None and rec.status == RecordingStatus.processing:
            rec.progress = value
            db.add(rec)


def _sign(recording_id: int) -> None:
    with session_scope() as db:
        write_manifest(db, db.get(Recording, recording_id), storage, install_key())


async def _thumbnails(recording_id: int) -> None:
    try:
        await make_thumbnails(session_scope, recording_id)
    except Exception:  # the video is what matters; a missing poster does not fail it
        log.exception("poster or sprite of recording %s failed", recording_id)


async def finalize_attempt(attempt_id: int, *, keep_raw: bool, force: bool = False, last_try: bool = True,
                           on_progress: ProgressFn | None = None,
                           on_ready: Callable[[str, str], None] | None = None) -> dict[str, str]:
    """Finalize every recording of an ended attempt; returns {stream: status}.

    Completed or partial recordings are only tidied (raw deletion, missing thumbnails) unless
    `force`. A transient error is raised for the job to retry, except on its `last_try`, where
    the recording ends "failed" with the reason. `on_ready(stream, status)` is called as soon as
    a recording's result is saved (playable, if completed or partial), before its thumbnails.
    """
    started = await asyncio.to_thread(_start, attempt_id, force)
    if started is None:
        return {}
    plans, finished = started
    results = {rec.stream: rec.status for rec, _ in finished}
    for rec, chunk_paths in finished:
        # Signed if an earlier run stopped before it (or predates manifests).
        if rec.mp4_path and not storage.absolute(manifest_path(rec)).exists():
            await asyncio.to_thread(_sign, rec.id)
        if rec.raw_deleted_at is not None:
            await asyncio.to_thread(delete_raw, chunk_paths)
        if not (rec.poster_path and rec.sprite_path):
            await _thumbnails(rec.id)
    current = {"index": 0, "value": 0.0}

    def progress(value: float) -> None:
        current["value"] = value
        if on_progress:
            on_progress((current["index"] + value) / len(plans))

    async def write_progress() -> None:
        written = None
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            value = (plans[current["index"]].recording_id, round(current["value"], 3))
            if value != written:
                await asyncio.to_thread(_save_progress, *value)
                written = value

    writer = asyncio.create_task(write_progress()) if plans else None
    try:
        for index, plan in enumerate(plans):
            current["index"], current["value"] = index, 0.0
            try:
                outcome = await convert(plan, progress)
            except FinalizeError as exc:
                outcome = Outcome(RecordingStatus.failed, failure_reason=str(exc))
            except Exception as exc:
                if not last_try:
                    raise
                outcome = Outcome(RecordingStatus.failed, failure_reason=f"processing failed: {exc}"[:500])
            await asyncio.to_thread(_save, plan, outcome, keep_raw)
            results[plan.stream] = outcome.status
            if on_ready:
                on_ready(plan.stream, outcome.status)
            if outcome.mp4_path:
                await asyncio.to_thread(_sign, plan.recording_id)
                # The live preview (preview.py) has served its purpose.
                for stale in storage.absolute(plan.out_dir).glob(f"{plan.stream}_preview.*"):
                    stale.unlink(missing_ok=True)
                if not keep_raw:
                    await asyncio.to_thread(delete_raw, plan.chunk_paths)
                await _thumbnails(plan.recording_id)
    finally:
        if writer:
            writer.cancel()
    return results
