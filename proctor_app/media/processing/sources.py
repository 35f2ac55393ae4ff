"""What converting one recording needs, read from its rows (load_plan), then checked against the
files: each chunk's SHA-256 (check_chunks) and each segment's probe (probe_sources). Segments that
cannot be read leave the plan as lost time."""

import logging
from dataclasses import dataclass
from datetime import datetime

import av
from sqlmodel import Session, select

from proctor_app.media.processing.formats import UnknownFormat, demuxer_for
from proctor_app.media.processing.probe import chunks_matching, probe
from proctor_app.media.processing.timeline import (
    CAUSE_NO_HEADER,
    CAUSE_UNDECODABLE,
    FinalizeError,
    Gap,
    Source,
    seconds_between,
)
from proctor_app.media.storage import storage
from proctor_app.media.storage.layout import processed_dir
from proctor_app.models import Attempt, Chunk, Recording, Segment

log = logging.getLogger("proctor_app.finalize")


@dataclass
class Plan:
    """What converting one recording needs, read from the database up front."""

    recording_id: int
    stream: str
    attempt_started: datetime
    attempt_ended: datetime
    out_dir: str  # relative to storage
    sources: list[Source]
    lost: list[Gap]  # segments nothing can be read from
    chunk_paths: list[str]

    @property
    def total_s(self) -> float:
        return seconds_between(self.attempt_ended, self.attempt_started)


def load_plan(db: Session, recording: Recording, attempt: Attempt) -> Plan:
    """The recording's segments and chunks as the rows describe them (no file is read)."""
    segments = db.exec(select(Segment).where(Segment.recording_id == recording.id)
                       .order_by(Segment.number)).all()
    sources, lost, chunk_paths = [], [], []
    for segment in segments:
        chunks = db.exec(select(Chunk).where(Chunk.segment_id == segment.id).order_by(Chunk.seq)).all()
        chunk_paths += [c.path for c in chunks]
        if not chunks or segment.started_at is None:
            continue
        offset = seconds_between(segment.started_at, attempt.started_at)
        wall_end = seconds_between(segment.ended_at or chunks[-1].end_time or segment.started_at,
                            attempt.started_at)
        if chunks[0].seq != 0:
            lost.append(Gap(max(0.0, offset), wall_end, CAUSE_NO_HEADER))
            continue
        mime = segment.mime_type or recording.mime_type
        try:
            demuxer_for(mime)
        except UnknownFormat as exc:  # no demuxer is guessed for uploaded bytes (formats.py)
            log.warning("recording %s segment %s: %s", recording.id, segment.number, exc)
            lost.append(Gap(max(0.0, offset), wall_end, CAUSE_UNDECODABLE))
            continue
        sources.append(Source(segment.number, offset, wall_end, mime,
                              [storage.absolute(c.path) for c in chunks], [c.sha256 for c in chunks],
                              missing=chunks[-1].seq + 1 != len(chunks)))
    return Plan(recording.id, recording.stream, attempt.started_at, attempt.ended_at,
                processed_dir(attempt.id, attempt.started_at), sources, lost, chunk_paths)


def check_chunks(plan: Plan) -> None:
    """Every chunk file against its SHA-256: damaged ones are left out (a segment whose first
    chunk is damaged leaves the plan as lost time)."""
    for src in list(plan.sources):
        good = chunks_matching(src.files, src.sha256)
        src.damaged = not all(good)
        src.files = [path for path, ok in zip(src.files, good) if ok]
        if not good[0]:
            plan.sources.remove(src)
            plan.lost.append(Gap(max(0.0, src.offset_s), src.wall_end_s, CAUSE_NO_HEADER))


def probe_sources(plan: Plan) -> None:
    """Probe every segment; those that cannot be read leave the plan as lost time."""
    for src in list(plan.sources):
        try:
            src.probe = probe(src.files, src.mime)
        except (av.FFmpegError, FinalizeError) as exc:
            log.warning("recording %s segment %s unreadable: %s", plan.recording_id, src.number, exc)
            plan.sources.remove(src)
            plan.lost.append(Gap(max(0.0, src.offset_s), src.wall_end_s, CAUSE_UNDECODABLE))

