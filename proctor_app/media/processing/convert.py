"""Raw chunks of one recording -> one verified, seekable MP4 on the exam's wall-clock timeline.

Three ways, all ffmpeg: the file growing.py kept growing during the exam, its last chunks
appended; a stream copy when one clean H.264 segment spans the exam (the audio stays Opus:
encoding an hour of AAC alone takes ~10 s here); else every segment placed on the timeline and
encoded (graphs.py). The MP4 is verified (moov before mdat, decodes to its last frame,
duration as planned) before anything says so; it is written under a temporary name and renamed.
"""

import asyncio
import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from proctor_app.media.processing.ffmpeg import FfmpegError, ProgressFn, run_ffmpeg
from proctor_app.media.processing.graphs import copy_graph, timeline_graph
from proctor_app.media.processing.growing import discard, grow_recording, growing_path
from proctor_app.media.processing.mp4 import probe_mp4, verify_mp4
from proctor_app.media.processing.sources import Plan, check_chunks, probe_sources
from proctor_app.media.processing.timeline import (
    CAUSE_NO_MEDIA,
    FILL_MIN_S,
    FinalizeError,
    Gap,
    blame_lost,
    copyable,
    may_copy,
    plan_gaps,
)
from proctor_app.media.storage import storage
from proctor_app.media.storage.local import file_sha256
from proctor_app.models import RecordingStatus
from proctor_app.platform import sha256_of_state

log = logging.getLogger("proctor_app.finalize")


@dataclass
class Outcome:
    status: str
    mp4_path: str = ""
    duration_s: float | None = None
    codec: str = ""
    size_bytes: int | None = None
    sha256: str = ""
    gaps: list[Gap] = field(default_factory=list)
    started_at: datetime | None = None
    failure_reason: str = ""



async def _cancel(task: asyncio.Task | None) -> None:
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _copied(plan: Plan, copy: asyncio.Task, tmp: Path) -> bool:
    """Whether the copy started on the rows' word is the result: its own sample tables show
    one clean, seekable H.264 segment spanning the exam."""
    if plan.sources[0].damaged:
        return False
    try:
        await copy
    except FfmpegError as exc:
        log.warning("recording %s: copy failed, re-encoding: %s", plan.recording_id, exc)
        return False
    plan.sources[0].probe = await asyncio.to_thread(probe_mp4, tmp)
    return copyable(plan.sources, plan.total_s)


async def _grown(plan: Plan) -> Outcome | None:
    """The growing file with the last chunks appended (growing.py checked each chunk and each
    step's samples as they came), verified as any MP4 is; None when there is none, or it does
    not span the exam or fails verification (today's path then runs)."""
    state = await asyncio.to_thread(grow_recording, plan.recording_id, True)
    if state is None or state.dead:
        return None
    src = plan.sources[0]
    start_s, end_s = src.offset_s + state.start_s, src.offset_s + state.end_s
    if abs(start_s) > FILL_MIN_S or abs(plan.total_s - end_s) > FILL_MIN_S:
        log.info("recording %s: the grown MP4 does not span the exam", plan.recording_id)
        return None
    grown = storage.absolute(growing_path(plan.out_dir, plan.stream))
    try:
        # Hashed as it grew: only a system without saved SHA-256 states reads it all again.
        digest = (asyncio.to_thread(sha256_of_state, state.sha256) if state.sha256
                  else asyncio.to_thread(file_sha256, grown))
        info, digest = await asyncio.gather(asyncio.to_thread(verify_mp4, grown, state.end_s), digest)
    except FfmpegError as exc:
        log.warning("recording %s: the grown MP4 failed verification: %s", plan.recording_id, exc)
        return None
    relative = f"{plan.out_dir}/{plan.stream}.mp4"
    os.replace(grown, storage.absolute(relative))
    return Outcome(RecordingStatus.completed, relative, info.duration_s, info.codec, state.size, digest,
                   [], plan.attempt_started + timedelta(seconds=src.offset_s))


async def convert(plan: Plan, on_progress: ProgressFn | None = None) -> Outcome:
    """Build and verify the MP4 of one recording (the database is not touched).

    A clean H.264 recording grown during the exam only has its last chunks appended. Else, when
    the rows promise a plain copy, ffmpeg copies at once while the chunks' SHA-256 are checked;
    the copy's sample tables then confirm it (no holes, keyframes often enough, the right
    length), so an hour is not demuxed twice. Anything else is probed packet by packet and
    placed on the exam's timeline.
    """
    total_s = plan.total_s
    if total_s <= 0:
        raise FinalizeError("the attempt has no length (it ended before it started)")
    try:
        if may_copy(plan.sources, total_s) and (grown := await _grown(plan)):
            return grown
    finally:
        await asyncio.to_thread(discard, plan.out_dir, plan.stream)
    work = storage.absolute(plan.out_dir) / f".work-{plan.stream}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    tmp = work / "out.mp4"
    copy = None
    try:
        if may_copy(plan.sources, total_s):
            src = plan.sources[0]
            copy = asyncio.create_task(
                run_ffmpeg(copy_graph(src, work, tmp), src.wall_end_s - src.offset_s, on_progress))
        await asyncio.to_thread(check_chunks, plan)
        if copy and plan.sources and await _copied(plan, copy, tmp):
            gaps, expected = [], plan.sources[0].probe.end_s
            started_at = plan.attempt_started + timedelta(seconds=plan.sources[0].offset_s)
        else:
            await _cancel(copy)
            await asyncio.to_thread(probe_sources, plan)
            if not plan.sources:
                cause = plan.lost[0].cause if plan.lost else CAUSE_NO_MEDIA
                return Outcome(RecordingStatus.failed, gaps=[Gap(0.0, total_s, cause)], failure_reason=cause)
            gaps = blame_lost(plan_gaps(plan.sources, total_s), plan.lost)
            if copyable(plan.sources, total_s):
                src = plan.sources[0]
                expected = src.probe.end_s - src.probe.start_s
                started_at = plan.attempt_started + timedelta(seconds=src.offset_s)
                await run_ffmpeg(copy_graph(src, work, tmp), expected, on_progress)
            else:
                expected, started_at = total_s, plan.attempt_started
                await run_ffmpeg(timeline_graph(plan.sources, gaps, total_s, work, tmp), total_s, on_progress)
        info, digest = await asyncio.gather(asyncio.to_thread(verify_mp4, tmp, expected),
                                            asyncio.to_thread(file_sha256, tmp))
        relative = f"{plan.out_dir}/{plan.stream}.mp4"
        size = tmp.stat().st_size
        os.replace(tmp, storage.absolute(relative))
    finally:
        await _cancel(copy)
        shutil.rmtree(work, ignore_errors=True)
    return Outcome(RecordingStatus.partial if gaps else RecordingStatus.completed, relative,
                   info.duration_s, info.codec, size, digest, gaps, started_at)

