"""Live preview of a recording not processed yet: what the browser has uploaded so far, playable.

A clean H.264 recording has its MP4 growing already (growing.py): that file is the preview, grown
on request too (one step, when its last one is older than MIN_REBUILD_S). Anything else is built
on request by stream copy (nothing decoded or encoded): each segment's chunks up to its
highest contiguous seq, the segments one after another (ffmpeg's concat demuxer), into a
fragmented MP4 (H.264; no second pass needed) or a WebM (VP8/VP9; cues written at the end).
A preview is rebuilt when newer chunks exist and it is older than MIN_REBUILD_S, so it trails the
candidate by about one chunk interval plus that: well under 15 s with 3 s chunks.

Times in a preview are the segments' media times put end to end, not the exam's clock: holes
between segments are not shown (processing puts everything on the exam's timeline).
"""

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
from sqlmodel import select

from proctor_app.clock import Clock, system_clock
from proctor_app.db import session_scope
from proctor_app.media.processing.ffmpeg import FfmpegError, run_ffmpeg
from proctor_app.media.processing.formats import PROTOCOLS, UnknownFormat, demuxer_for
from proctor_app.media.processing.growing import grown_preview
from proctor_app.media.storage import storage
from proctor_app.media.storage.layout import processed_dir
from proctor_app.models import Attempt, Chunk, Recording, RecordingStatus, Segment

MIN_REBUILD_S = 5.0
PREVIEWABLE = (RecordingStatus.in_progress, RecordingStatus.processing)
_locks: dict[tuple[int, str], asyncio.Lock] = {}


@dataclass(frozen=True)
class Preview:
    path: str  # relative to storage
    built_at: float  # epoch seconds
    size: int | None = None  # bytes to serve, for a growing file: its whole fragments


@dataclass(frozen=True)
class Part:
    """One segment's contiguous chunk files and the demuxer of its declared type."""

    files: list[Path]
    demuxer: str


def _sources(attempt_id: int, stream: str) -> tuple[str, list[Part], str, float] | None:
    """(output path, segments, container, newest chunk's arrival) or None. Segments whose
    declared type names no container we read are left out (formats.py)."""
    with session_scope() as db:
        attempt = db.get(Attempt, attempt_id)
        recording = db.exec(select(Recording).where(Recording.attempt_id == attempt_id,
                                                    Recording.stream == stream)).first()
        if attempt is None or recording is None or recording.status not in PREVIEWABLE:
            return None
        segments = db.exec(select(Segment).where(Segment.recording_id == recording.id,
                                                 Segment.contiguous_seq >= 0)
                           .order_by(Segment.number)).all()
        parts, newest = [], 0.0
        for segment in segments:
            chunks = db.exec(select(Chunk).where(Chunk.segment_id == segment.id,
                                                 Chunk.seq <= segment.contiguous_seq)
                             .order_by(Chunk.seq)).all()
            try:
                demuxer = demuxer_for(segment.mime_type or recording.mime_type)
            except UnknownFormat:
                continue
            parts.append(Part([storage.absolute(c.path) for c in chunks], demuxer))
            newest = max([newest] + [c.received_at.timestamp() for c in chunks])
        if not parts:
            return None
        h264 = "avc1" in recording.mime_type or "h264" in recording.mime_type
        container = "mp4" if h264 else "webm"
        return f"{processed_dir(attempt_id, attempt.started_at)}/{stream}_preview.{container}", parts, container, newest


async def _build(parts: list[Part], container: str, out: Path) -> None:
    """The segments end to end by stream copy: our own ffconcat listing (read by the concat
    demuxer, pinned), one concatf: listing of chunk files per segment. The concat demuxer's
    `file` entries take no format, so each one's `option format_whitelist` allows only the
    demuxer of the segment's declared type (ffmpeg refuses the segment if its bytes probe as
    anything else), and the whitelist `file,concatf` is all any of them may open."""
    work = out.with_name(f".{out.name}.work")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        entries = ["ffconcat version 1.0\n"]
        for i, part in enumerate(parts):
            segment = work / f"segment-{i}.txt"
            segment.write_text("".join(f"{path}\n" for path in part.files))
            entries.append(f"file 'concatf:{segment}'\n"
                           f"option format_whitelist {part.demuxer}\n"
                           f"option protocol_whitelist {PROTOCOLS}\n")
        listing = work / "segments.txt"
        listing.write_text("".join(entries))
        tmp = work / f"preview.{container}"
        options = {"movflags": "frag_keyframe+empty_moov+default_base_moof"} if container == "mp4" else {}
        graph = ffmpeg.input(str(listing), f="concat", safe=0, protocol_whitelist=PROTOCOLS).output(
            str(tmp), c="copy", f=container, **options)
        await run_ffmpeg(graph, 0)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _grown(attempt_id: int, stream: str, clock: Clock) -> Preview | None:
    """The recording's growing file (grown one step if stale), or None when it has none."""
    with session_scope() as db:
        attempt = db.get(Attempt, attempt_id)
        recording = db.exec(select(Recording).where(Recording.attempt_id == attempt_id,
                                                    Recording.stream == stream)).first()
        if attempt is None or attempt.started_at is None or recording is None \
                or recording.status not in PREVIEWABLE:
            return None
        recording_id, out_dir = recording.id, processed_dir(attempt_id, attempt.started_at)
    found = grown_preview(recording_id, out_dir, stream, clock.time(), MIN_REBUILD_S)
    return Preview(*found) if found else None


async def ensure_preview(attempt_id: int, stream: str, clock: Clock = system_clock) -> Preview | None:
    """The current preview of a recording not processed yet (rebuilt if stale), or None."""
    async with _locks.setdefault((attempt_id, stream), asyncio.Lock()):
        grown = await asyncio.to_thread(_grown, attempt_id, stream, clock)
    if grown is not None:
        return grown
    found = await asyncio.to_thread(_sources, attempt_id, stream)
    if found is None:
        return None
    relative, parts, container, newest = found
    out = storage.absolute(relative)
    async with _locks.setdefault((attempt_id, stream), asyncio.Lock()):
        built = out.stat().st_mtime if out.exists() else 0.0
        if built < newest and clock.time() - built >= MIN_REBUILD_S:
            try:
                await _build(parts, container, out)
            except FfmpegError:
                # Segments whose codec settings differ cannot be put end to end: the newest alone.
                await _build(parts[-1:], container, out)
            built = out.stat().st_mtime
    return Preview(relative, built)
