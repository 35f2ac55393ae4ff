"""Loss-free ingest of what the candidate's browser records: media chunks, snapshots, events.

The browser keeps every chunk until the server acknowledges it, so the server's job is to never
acknowledge what it has not made durable, and to answer a repeated upload the same way twice:
- a chunk's bytes are on disk (temp file, fsync, rename, fsync the folder) before its row commits;
- (stream, segment, seq) is stored once: the same bytes again are "already stored", other
  bytes are a conflict, and nothing is written for a request that fails validation;
- the answer says what the server holds of the segment (the highest contiguous seq), so the
  browser can tell a chunk it lost from one still on its way.

Uploads are authorised by a per-attempt token (random; only its hash is stored) scoped to the
attempt and its recorded streams, valid until the exam's deadline plus a grace for flushing.
"""

import fcntl
import hashlib
import json
import os
import queue
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import Row, bindparam, case, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from proctor_app import db as database
from proctor_app.auth.tokens import new_token, token_hash
from proctor_app.db import connection_scope, session_scope
from proctor_app.media.storage import (
    absolute,
    open_folder,
    raw_chunk_path,
    snapshot_path,
    storage_root,
    write_durably,
)
from proctor_app.models import (
    Attempt,
    AttemptStatus,
    Chunk,
    Exam,
    ProctoringEvent,
    Recording,
    RecordingStatus,
    Segment,
    Severity,
    Snapshot,
    StreamKind,
    UploadToken,
    utcnow,
)
from proctor_app.services.consent import capture_plan
from proctor_app.services.settings import get_setting

# After the exam ends, the browser still has this long to flush what it queued.
FLUSH_GRACE = timedelta(minutes=15)
# Numbers beyond these are no recording's: the path layout pads seq to 8 digits.
MAX_SEGMENT = 99_999
MAX_SEQ = 99_999_999
MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024
MAX_META_BYTES = 4096
MAX_EVENTS_PER_BATCH = 200
MAX_EVENT_DATA_BYTES = 2048
# Client times further than this from the server's clock are not believed.
MAX_CLOCK_SKEW = timedelta(days=1)
SETTINGS_TTL_S = 5.0

# The browser events the server accepts, with the severity it files them under.
BROWSER_EVENTS: dict[str, str] = {
    "tab_hidden": Severity.warning,
    "tab_visible": Severity.info,
    "window_blur": Severity.warning,
    "window_focus": Severity.info,
    "fullscreen_exit": Severity.warning,
    "fullscreen_enter": Severity.info,
    "offline": Severity.warning,
    "online": Severity.info,
    "camera_lost": Severity.critical,
    "camera_regained": Severity.info,
    "microphone_lost": Severity.critical,
    "microphone_regained": Severity.info,
    "screen_lost": Severity.critical,
    "screen_regained": Severity.info,
    "recording_started": Severity.info,
    "recording_failed": Severity.critical,
    "recording_stopped": Severity.info,
    "segment_started": Severity.info,
    "recorder_error": Severity.warning,
    "upload_retry": Severity.info,
    "upload_recovered": Severity.info,
    "upload_rejected": Severity.critical,
    "storage_quota": Severity.warning,
    "chunks_missing": Severity.critical,
    "uploads_flushed": Severity.info,
}
_FINAL_RECORDING = {RecordingStatus.processing, RecordingStatus.completed, RecordingStatus.partial,
                    RecordingStatus.expired}
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_MIME = re.compile(r"(video|audio)/[\w.+-]+(;[\w\s=,.+\"-]*)?", re.ASCII)
_CLIENT_ID = re.compile(r"[\w-]{1,40}", re.ASCII)


class IngestError(Exception):
    """A refused upload: the HTTP status, a stable code for the client, and a message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------------------------
# Upload tokens


@dataclass(frozen=True)
class UploadGrant:
    """What the browser needs to record and upload for one attempt."""

    token: str
    attempt_id: int
    streams: list[str]
    expires_at: datetime
    # The first segment number per stream and snapshot seq the server has not seen yet.
    next_segment: dict[str, int]
    next_snapshot_seq: int


@dataclass(frozen=True)
class TokenScope:
    attempt_id: int
    streams: frozenset[str]
    expires_at: datetime


def issue_upload_token(db: Session, attempt: Attempt, now: datetime | None = None) -> UploadGrant | None:
    """A new token for a started attempt whose upload window is open, when its exam records or
    streams live; None otherwise. After the end it only serves to flush what the browser holds.

    Its scope is the recorded streams: with live video only it uploads no media (the live
    publisher authenticates with it). Also creates the recording rows (not_started), so every
    expected stream shows up.
    """
    now = now or utcnow()
    if attempt.status == AttemptStatus.not_started or upload_window_closes_at(attempt) <= now:
        return None
    plan = capture_plan(db, db.get(Exam, attempt.exam_id))
    streams = ([StreamKind.camera] if plan.camera_recording else []) + \
              ([StreamKind.screen] if plan.screen_recording else [])
    if not streams and not plan.live_video:
        return None
    for stream in streams:
        _recording_id(db, attempt.id, stream)
    token = new_token()
    expires_at = upload_window_closes_at(attempt)
    db.add(UploadToken(attempt_id=attempt.id, token_hash=token_hash(token), streams=streams,
                       expires_at=expires_at))
    db.flush()
    last_segment = dict(db.execute(
        select(Recording.stream, func.max(Segment.number))
        .join(Segment, Segment.recording_id == Recording.id)
        .where(Recording.attempt_id == attempt.id).group_by(Recording.stream)).all())
    last_snapshot = db.execute(select(func.max(Snapshot.seq))
                               .where(Snapshot.attempt_id == attempt.id)).scalar()
    return UploadGrant(
        token=token, attempt_id=attempt.id, streams=[str(s) for s in streams], expires_at=expires_at,
        next_segment={str(s): (last_segment[s] + 1 if last_segment.get(s) is not None else 0)
                      for s in streams},
        next_snapshot_seq=0 if last_snapshot is None else last_snapshot + 1,
    )


# Token rows never change after they are written, so lookups are cached (expiry is re-checked).
_TOKEN_SCOPE = select(UploadToken.attempt_id, UploadToken.streams, UploadToken.expires_at).where(
    UploadToken.token_hash == bindparam("token_hash"))
_scopes: dict[str, TokenScope] = {}
_SCOPE_CACHE_MAX = 20_000


def authorize(token: str | None, attempt_id: int, stream: str | None = None,
              now: datetime | None = None) -> TokenScope:
    """The token's scope, if it may upload for this attempt (and stream); raises IngestError."""
    now = now or utcnow()
    if not token:
        raise IngestError(401, "token_missing", "An upload token is required.")
    digest = token_hash(token)
    scope = _scopes.get(digest)
    if scope is None:
        with connection_scope() as conn:
            row = conn.execute(_TOKEN_SCOPE, {"token_hash": digest}).first()
        if row is None:
            raise IngestError(401, "token_unknown", "The upload token is not valid.")
        scope = TokenScope(row.attempt_id, frozenset(row.streams), row.expires_at)
        if len(_scopes) >= _SCOPE_CACHE_MAX:
            _scopes.clear()
        _scopes[digest] = scope
    if scope.expires_at <= now:
        raise IngestError(401, "token_expired", "The upload token has expired.")
    if scope.attempt_id != attempt_id:
        raise IngestError(403, "token_foreign", "The upload token belongs to another attempt.")
    if stream is not None and stream not in scope.streams:
        raise IngestError(403, "stream_not_allowed", f"This attempt does not record the {stream} stream.")
    return scope


# ---------------------------------------------------------------------------------------------
# Validation helpers, shared by the HTTP routes


def parse_index(text: str, name: str, maximum: int) -> int:
    """A path number (segment, seq, attempt): plain decimal digits within range, else 400."""
    if not text.isascii() or not text.isdigit() or len(text) > 12 or int(text) > maximum:
        raise IngestError(400, f"bad_{name}", f"The {name} must be a number from 0 to {maximum}.")
    return int(text)


def parse_client_ms(text: str | None, name: str, now: datetime | None = None) -> datetime:
    """An epoch-milliseconds time on the server-corrected client clock, believable or 400."""
    now = now or utcnow()
    try:
        value = datetime.fromtimestamp(int(text) / 1000, tz=timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        raise IngestError(400, f"bad_{name}", f"{name} must be epoch milliseconds.") from None
    if abs(value - now) > MAX_CLOCK_SKEW:
        raise IngestError(400, f"bad_{name}", f"{name} is too far from the server's clock.")
    return value


def _check_sha256(claimed: str | None, body: bytes) -> str:
    claimed = (claimed or "").strip().lower()
    if not _SHA256_HEX.fullmatch(claimed):
        raise IngestError(400, "bad_sha256", "X-Content-SHA256 must be 64 hex digits.")
    actual = hashlib.sha256(body).hexdigest()
    if actual != claimed:
        raise IngestError(400, "sha256_mismatch",
                          "The body does not match its SHA-256: it was damaged on the way.")
    return actual


_limit_cache: tuple[float, int] = (float("-inf"), 0)


def cached_max_chunk_bytes() -> int | None:
    """The chunk size limit if read recently, without touching the database; else None."""
    read_at, limit = _limit_cache
    return limit if time.monotonic() - read_at <= SETTINGS_TTL_S else None


def max_chunk_bytes() -> int:
    """The admin's chunk size limit, re-read every few seconds rather than on every upload."""
    global _limit_cache
    limit = cached_max_chunk_bytes()
    if limit is None:
        with session_scope() as db:
            limit = int(get_setting(db, "max_chunk_mb")) * 1024 * 1024
        _limit_cache = (time.monotonic(), limit)
    return limit


# ---------------------------------------------------------------------------------------------
# The attempt's upload window


def upload_window_closes_at(attempt: Attempt) -> datetime | None:
    """Until when the attempt takes uploads: its end (or deadline) plus the flush grace."""
    end = attempt.ended_at or attempt.deadline_at
    return None if end is None else end + FLUSH_GRACE


def _check_accepting(attempt: Attempt | Row, now: datetime, recording_status: str | None = None) -> None:
    """Refuses uploads to an attempt (an Attempt or a row with its columns) not taking them now."""
    if attempt.status == AttemptStatus.not_started or attempt.started_at is None:
        raise IngestError(409, "attempt_not_started", "The attempt has not started.")
    end = attempt.ended_at or attempt.deadline_at
    if end + FLUSH_GRACE < now:
        raise IngestError(409, "attempt_closed", "The attempt ended too long ago to take uploads.")
    if recording_status in _FINAL_RECORDING:
        raise IngestError(409, "recording_finalized",
                          "The recording is already being processed; it takes no more chunks.")


def uploads_settled(db: Session, attempt: Attempt, now: datetime | None = None) -> bool:
    """Whether processing may start: the attempt ended and either its browser reported its queue
    flushed after the end, or the flush grace is over."""
    now = now or utcnow()
    if attempt.status not in (AttemptStatus.submitted, AttemptStatus.expired) or attempt.ended_at is None:
        return False
    if upload_window_closes_at(attempt) <= now:
        return True
    return db.execute(select(ProctoringEvent.id).where(
        ProctoringEvent.attempt_id == attempt.id, ProctoringEvent.kind == "uploads_flushed",
        ProctoringEvent.server_time >= attempt.ended_at)).first() is not None


# ---------------------------------------------------------------------------------------------
# Chunks


@dataclass(frozen=True)
class ChunkUpload:
    attempt_id: int
    stream: str
    segment: int
    seq: int
    body: bytes
    sha256: str | None
    start_ms: str | None
    end_ms: str | None
    mime_type: str | None
    meta: str | None  # JSON: {"questions_viewed": [ids], "questions_answered": [ids]}


@dataclass(frozen=True)
class ChunkAck:
    status: str  # "stored" or "already_stored"
    stream: str
    segment: int
    seq: int
    # What the server holds of the segment: 0..contiguous_seq all stored (-1: not even seq 0).
    contiguous_seq: int
    chunk_count: int

    def as_json(self) -> dict:
        return {"status": self.status, "stream": self.stream, "segment": self.segment,
                "seq": self.seq, "contiguous_seq": self.contiguous_seq, "chunk_count": self.chunk_count}


def _parse_meta(text: str | None) -> dict:
    if not text:
        return {}
    if len(text) > MAX_META_BYTES:
        raise IngestError(400, "bad_meta", f"Chunk metadata is limited to {MAX_META_BYTES} bytes.")
    try:
        meta = json.loads(text)
    except ValueError:
        raise IngestError(400, "bad_meta", "Chunk metadata must be JSON.") from None
    if not isinstance(meta, dict):
        raise IngestError(400, "bad_meta", "Chunk metadata must be a JSON object.")
    clean = {}
    for key in ("questions_viewed", "questions_answered"):
        ids = meta.get(key, [])
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                for i in ids):
            raise IngestError(400, "bad_meta", f"{key} must be a list of question ids.")
        clean[key] = sorted(set(ids))
    return clean


def _check_chunk(upload: ChunkUpload, now: datetime) -> tuple[str, datetime, datetime, str, dict]:
    if upload.stream not in StreamKind.__members__:
        raise IngestError(400, "bad_stream", "The stream must be camera or screen.")
    if not 0 <= upload.segment <= MAX_SEGMENT:
        raise IngestError(400, "bad_segment", f"The segment must be from 0 to {MAX_SEGMENT}.")
    if not 0 <= upload.seq <= MAX_SEQ:
        raise IngestError(400, "bad_seq", f"The seq must be from 0 to {MAX_SEQ}.")
    if not upload.body:
        raise IngestError(400, "empty_body", "A chunk has at least one byte.")
    if len(upload.body) > max_chunk_bytes():
        raise IngestError(413, "too_large", "The chunk is larger than the configured limit.")
    mime = (upload.mime_type or "").strip()
    if len(mime) > 100 or not _MIME.fullmatch(mime):
        raise IngestError(400, "bad_mime_type", "Content-Type must be the recording's video or audio type.")
    start = parse_client_ms(upload.start_ms, "start_ms", now)
    end = parse_client_ms(upload.end_ms, "end_ms", now)
    if end < start:
        raise IngestError(400, "bad_end_ms", "A chunk cannot end before it starts.")
    return _check_sha256(upload.sha256, upload.body), start, end, mime, _parse_meta(upload.meta)


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """One writer per folder (a segment, an attempt's snapshots), across threads and processes.

    Held from the "is it stored?" check to the commit, so two different bodies racing for the same
    seq can never leave a file that does not match its row.
    """
    fd = open_folder(folder)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# Chunks arrive hundreds of times a second: their statements are built once, executed with values.
_attempts, _recordings, _segments, _chunks = (m.__table__ for m in (Attempt, Recording, Segment, Chunk))
_TIME = _segments.c.started_at.type


def _constants(values) -> list:
    """Values for IN that executemany accepts (a plain list becomes one expanding parameter)."""
    return [literal(str(value)) for value in sorted(values)]


def _earliest(column, value):
    return case((column.is_(None) | (column > value), value), else_=column)


def _latest(column, value):
    return case((column.is_(None) | (column < value), value), else_=column)


_ATTEMPT_FOR_CHUNK = (
    select(_attempts.c.status, _attempts.c.started_at, _attempts.c.ended_at, _attempts.c.deadline_at,
           _recordings.c.id.label("recording_id"), _recordings.c.status.label("recording_status"))
    .select_from(_attempts.outerjoin(_recordings, (_recordings.c.attempt_id == _attempts.c.id)
                                     & (_recordings.c.stream == bindparam("stream"))))
    .where(_attempts.c.id == bindparam("attempt_id")))
_RECORDING_ID = select(_recordings.c.id).where(_recordings.c.attempt_id == bindparam("attempt_id"),
                                               _recordings.c.stream == bindparam("stream"))
# The segment, and the hash of what is stored under the seq (None when nothing is).
_SEGMENT_AND_STORED = (
    select(_segments.c.id, _segments.c.chunk_count, _segments.c.contiguous_seq, _chunks.c.sha256)
    .select_from(_segments.outerjoin(_chunks, (_chunks.c.segment_id == _segments.c.id)
                                     & (_chunks.c.seq == bindparam("seq"))))
    .where(_segments.c.recording_id == bindparam("recording_id"), _segments.c.number == bindparam("number")))
# One statement for all segments a batch starts (when an exam starts, most chunks start one).
_INSERT_SEGMENTS = insert(_segments).returning(_segments.c.id, sort_by_parameter_order=True)
_HIGHEST_OTHER_SEQ = select(func.max(_chunks.c.seq)).where(
    _chunks.c.segment_id == bindparam("segment_id"), _chunks.c.seq != bindparam("seq"))
_SEQS_AFTER = select(_chunks.c.seq).where(_chunks.c.segment_id == bindparam("segment_id"),
                                          _chunks.c.seq > bindparam("after")).order_by(_chunks.c.seq)
_UPDATE_SEGMENT = update(_segments).where(_segments.c.id == bindparam("b_id")).values(
    chunk_count=_segments.c.chunk_count + 1, byte_count=_segments.c.byte_count + bindparam("b_size"),
    contiguous_seq=bindparam("b_contiguous"),
    started_at=_earliest(_segments.c.started_at, bindparam("b_start", type_=_TIME)),
    ended_at=_latest(_segments.c.ended_at, bindparam("b_end", type_=_TIME)))
# Guarded: a chunk committed after processing took its recording, or after the upload window
# closed, would be acknowledged yet never be in the video (the checks before the write may be
# seconds old).
_UPDATE_RECORDING = update(_recordings).where(
    _recordings.c.id == bindparam("b_id"),
    _recordings.c.status.not_in(_constants(_FINAL_RECORDING)),
    select(_attempts.c.id).where(
        _attempts.c.id == _recordings.c.attempt_id,
        func.coalesce(_attempts.c.ended_at, _attempts.c.deadline_at) >= bindparam("b_window", type_=_TIME),
    ).exists(),
).values(
    chunk_count=_recordings.c.chunk_count + 1, byte_count=_recordings.c.byte_count + bindparam("b_size"),
    gap_count=_recordings.c.gap_count + bindparam("b_new_holes"),
    # A recording reported failed before any chunk came is recording after all.
    status=case((_recordings.c.status.in_(_constants([RecordingStatus.not_started, RecordingStatus.failed])),
                 RecordingStatus.in_progress), else_=_recordings.c.status),
    mime_type=case((_recordings.c.mime_type == "", bindparam("b_mime")), else_=_recordings.c.mime_type),
    started_at=_earliest(_recordings.c.started_at, bindparam("b_start", type_=_TIME)),
    ended_at=_latest(_recordings.c.ended_at, bindparam("b_end", type_=_TIME)))

# Attempt rows barely change while chunks stream in, so each (attempt, stream) is read at most
# every UPLOAD_TARGET_TTL_S (a candidate sends a chunk every few seconds). Attempts only ever close,
# so a stale target errs towards taking a chunk, and the guarded commit above refuses it then.
UPLOAD_TARGET_TTL_S = 30.0
_upload_targets: dict[tuple[int, str], tuple[float, Row]] = {}


def _upload_target(attempt_id: int, stream: str, now: datetime) -> Row:
    """The attempt (and its recording of the stream) a chunk goes to, if it takes uploads."""
    key = (attempt_id, stream)
    read_at, target = _upload_targets.get(key, (float("-inf"), None))
    if time.monotonic() - read_at > UPLOAD_TARGET_TTL_S:
        with connection_scope() as conn:
            target = conn.execute(_ATTEMPT_FOR_CHUNK, {"attempt_id": attempt_id, "stream": stream}).one()
        if target.recording_id is not None:  # else the caller creates the recording first
            if len(_upload_targets) >= _SCOPE_CACHE_MAX:
                _upload_targets.clear()
            _upload_targets[key] = (time.monotonic(), target)
    _check_accepting(target, now, target.recording_status)
    return target


def _recording_id(db: Session, attempt_id: int, stream: str) -> int:
    key = {"attempt_id": attempt_id, "stream": stream}
    found = db.connection().execute(_RECORDING_ID, key).scalar()
    if found is not None:
        return found
    try:
        with db.begin_nested():
            row = Recording(attempt_id=attempt_id, stream=stream)
            db.add(row)
        return row.id
    except IntegrityError:  # another request created it first
        return db.connection().execute(_RECORDING_ID, key).scalar_one()


def _next_contiguous(conn, segment_id: int, contiguous: int) -> int:
    """Walk up from `contiguous` over stored seqs that arrived early."""
    for seq in conn.execute(_SEQS_AFTER, {"segment_id": segment_id, "after": contiguous}).scalars():
        if seq != contiguous + 1:
            break
        contiguous = seq
    return contiguous


@dataclass(frozen=True)
class _ChunkOnDisk:
    """A chunk durably written, its folder still locked, whose rows wait for the group commit."""

    upload: ChunkUpload
    relative: str
    digest: str
    start: datetime
    end: datetime
    mime: str
    meta: dict
    received_at: datetime
    recording_id: int
    # (id, chunk_count, contiguous_seq) of its segment as read under the folder lock; None: new.
    segment: tuple[int, int, int] | None
    committed: Future = field(default_factory=Future, compare=False)


def _commit_rows(batch: list[_ChunkOnDisk]) -> list[ChunkAck]:
    """The rows of chunks on disk in one transaction: chunk rows, segment and recording counters.

    A batch holds at most one chunk per segment (each waits holding its segment folder's lock),
    so the segment state each one read is still the segment's state here.
    """
    acks, segment_updates, recording_updates = [], [], []
    with _write_turn(), connection_scope() as conn:
        starting = [chunk for chunk in batch if chunk.segment is None]  # first chunks of segments
        new_ids = iter(conn.execute(_INSERT_SEGMENTS, [
            {"recording_id": chunk.recording_id, "number": chunk.upload.segment, "mime_type": chunk.mime,
             "started_at": chunk.start, "ended_at": chunk.end, "chunk_count": 0, "byte_count": 0,
             "contiguous_seq": -1, "received_at": chunk.received_at}
            for chunk in starting]).scalars().all() if starting else ())
        segment_ids = [next(new_ids) if chunk.segment is None else chunk.segment[0] for chunk in batch]
        conn.execute(insert(_chunks), [
            {"segment_id": segment_id, "seq": chunk.upload.seq, "size": len(chunk.upload.body),
             "sha256": chunk.digest, "path": chunk.relative, "start_time": chunk.start,
             "end_time": chunk.end, "received_at": chunk.received_at, "meta": chunk.meta}
            for chunk, segment_id in zip(batch, segment_ids)])
        for chunk, segment_id in zip(batch, segment_ids):
            _, count_before, contiguous_before = chunk.segment or (segment_id, 0, -1)
            seq = chunk.upload.seq
            in_order_before = count_before == contiguous_before + 1  # nothing arrived early
            highest_before = contiguous_before if in_order_before else conn.execute(
                _HIGHEST_OTHER_SEQ, {"segment_id": segment_id, "seq": seq}).scalar()
            contiguous = contiguous_before
            if seq == contiguous_before + 1:
                contiguous = seq if in_order_before else _next_contiguous(conn, segment_id, seq)
            # Holes: seqs below the highest stored one that have not arrived (yet).
            holes_before = highest_before + 1 - count_before
            holes_after = max(highest_before, seq) + 1 - (count_before + 1)
            size = len(chunk.upload.body)
            segment_updates.append({"b_id": segment_id, "b_size": size, "b_contiguous": contiguous,
                                    "b_start": chunk.start, "b_end": chunk.end})
            recording_updates.append({"b_id": chunk.recording_id, "b_size": size, "b_mime": chunk.mime,
                                      "b_new_holes": holes_after - holes_before, "b_start": chunk.start,
                                      "b_end": chunk.end, "b_window": chunk.received_at - FLUSH_GRACE})
            acks.append(ChunkAck("stored", chunk.upload.stream, chunk.upload.segment, seq, contiguous,
                                 count_before + 1))
        if conn.execute(_UPDATE_RECORDING, recording_updates).rowcount != len(batch):
            if len(batch) > 1:
                raise _LateInBatch  # the chunks are committed one by one, and the late one refused
            late = batch[0]
            target = conn.execute(_ATTEMPT_FOR_CHUNK, {"attempt_id": late.upload.attempt_id,
                                                       "stream": late.upload.stream}).one()
            _check_accepting(target, late.received_at, target.recording_status)
            raise IngestError(409, "recording_finalized", "The recording takes no more chunks.")
        conn.execute(_UPDATE_SEGMENT, segment_updates)
    return acks


class _LateInBatch(Exception):
    pass


_turn_files: dict[str, int] = {}


@contextmanager
def _write_turn() -> Iterator[None]:
    """On SQLite, the ingest processes take turns for the write transaction by a file lock: SQLite
    lets one writer in at a time and its busy handler waits by sleeping, up to 100 ms a try."""
    engine = database.get_engine()  # looked up each time: tests point it at PostgreSQL
    if engine.dialect.name != "sqlite":
        yield
        return
    path = f"{engine.url.database}.write-turn"
    fd = _turn_files.get(path)
    if fd is None:
        fd = _turn_files[path] = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


class _GroupCommit:
    """One thread commits the rows of all chunks waiting, in one transaction per batch.

    Hundreds of uploads a second each committing alone spend their time taking turns for the
    database's write lock (SQLite has one writer and its busy handler waits by sleeping); one
    thread that commits whatever queued up meanwhile pays one transaction per batch, while the
    uploads' file writes and fsyncs still run in parallel before it. The upload waits for its
    commit: acknowledged means committed.
    """

    MAX_BATCH = 64

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_ChunkOnDisk] = queue.SimpleQueue()
        self._thread_pid: int | None = None  # a forked worker process starts a thread of its own
        self._starting = threading.Lock()

    def commit(self, chunk: _ChunkOnDisk) -> ChunkAck:
        if self._thread_pid != os.getpid():
            with self._starting:
                if self._thread_pid != os.getpid():
                    threading.Thread(target=self._run, name="chunk-group-commit", daemon=True).start()
                    self._thread_pid = os.getpid()
        self._queue.put(chunk)
        return chunk.committed.result()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                acks = _commit_rows(batch)
            except Exception:
                # One refused or failing chunk must not fail the others: each on its own then.
                for chunk in batch:
                    try:
                        chunk.committed.set_result(_commit_rows([chunk])[0])
                    except Exception as exc:
                        chunk.committed.set_exception(exc)
            else:
                for chunk, ack in zip(batch, acks):
                    chunk.committed.set_result(ack)


_group_commit = _GroupCommit()


def store_chunk(token: str | None, upload: ChunkUpload, now: datetime | None = None) -> ChunkAck:
    """Validate, write durably, record; idempotent. Raises IngestError (nothing stored then)."""
    now = now or utcnow()
    authorize(token, upload.attempt_id, upload.stream, now)
    digest, start, end, mime, meta = _check_chunk(upload, now)
    attempt = _upload_target(upload.attempt_id, upload.stream, now)
    recording_id = attempt.recording_id
    if recording_id is None:
        with session_scope() as db:
            recording_id = _recording_id(db, upload.attempt_id, upload.stream)
    relative = raw_chunk_path(upload.attempt_id, attempt.started_at, upload.stream, upload.segment, upload.seq)
    # Built from checked numbers and a known stream: write_durably still refuses escapes.
    with _folder_lock((storage_root() / relative).parent):
        with connection_scope() as conn:
            segment = conn.execute(_SEGMENT_AND_STORED, {"recording_id": recording_id, "number": upload.segment,
                                                         "seq": upload.seq}).first()
        if segment is not None and segment.sha256 == digest:
            return ChunkAck("already_stored", upload.stream, upload.segment, upload.seq,
                            segment.contiguous_seq, segment.chunk_count)
        if segment is not None and segment.sha256 is not None:
            raise IngestError(409, "chunk_conflict", "A different chunk is already stored under this seq.")
        write_durably(relative, upload.body)
        try:
            return _group_commit.commit(_ChunkOnDisk(
                upload, relative, digest, start, end, mime, meta, now, recording_id,
                None if segment is None else (segment.id, segment.chunk_count, segment.contiguous_seq)))
        except IngestError:  # refused at commit and rolled back: its file goes too
            absolute(relative).unlink(missing_ok=True)
            # The cached target took it; the attempt's next chunks are refused before their write.
            _upload_targets.pop((upload.attempt_id, upload.stream), None)
            raise


# ---------------------------------------------------------------------------------------------
# Snapshots


def store_snapshot(token: str | None, attempt_id: int, seq: int, body: bytes, sha256: str | None,
                   taken_ms: str | None, now: datetime | None = None) -> dict:
    """One camera still (JPEG); idempotent like chunks. Raises IngestError."""
    now = now or utcnow()
    authorize(token, attempt_id, StreamKind.camera, now)  # snapshots come with the camera recording
    if not 0 <= seq <= MAX_SEQ:
        raise IngestError(400, "bad_seq", f"The seq must be from 0 to {MAX_SEQ}.")
    if len(body) > MAX_SNAPSHOT_BYTES:
        raise IngestError(413, "too_large", "The snapshot is larger than the limit.")
    if not body.startswith(b"\xff\xd8\xff"):
        raise IngestError(400, "not_jpeg", "A snapshot must be a JPEG image.")
    digest = _check_sha256(sha256, body)
    taken_at = parse_client_ms(taken_ms, "taken_ms", now)
    with session_scope() as db:
        attempt = db.get(Attempt, attempt_id)
        _check_accepting(attempt, now)
        relative = snapshot_path(attempt_id, attempt.started_at, seq)
        with _folder_lock(absolute(relative).parent):
            stored = db.execute(select(Snapshot.sha256).where(Snapshot.attempt_id == attempt_id,
                                                              Snapshot.seq == seq)).scalar()
            if stored == digest:
                return {"status": "already_stored", "seq": seq}
            if stored is not None:
                raise IngestError(409, "snapshot_conflict",
                                  "A different snapshot is already stored under this seq.")
            write_durably(relative, body)
            db.add(Snapshot(attempt_id=attempt_id, seq=seq, taken_at=taken_at, path=relative,
                            size=len(body), sha256=digest))
            db.commit()
    return {"status": "stored", "seq": seq}


# ---------------------------------------------------------------------------------------------
# Browser events


def _check_event(raw, now: datetime) -> tuple[str, str, datetime | None, dict]:
    if not isinstance(raw, dict):
        raise IngestError(400, "bad_event", "Each event is a JSON object.")
    client_id, kind, data = raw.get("id"), raw.get("kind"), raw.get("data", {})
    if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
        raise IngestError(400, "bad_event", "Each event needs an id (letters, digits, - or _).")
    if kind not in BROWSER_EVENTS:
        raise IngestError(400, "bad_event_kind", f"Unknown event kind: {str(kind)[:60]!r}.")
    if not isinstance(data, dict) or len(json.dumps(data)) > MAX_EVENT_DATA_BYTES:
        raise IngestError(400, "bad_event", f"Event data is a JSON object of at most "
                                            f"{MAX_EVENT_DATA_BYTES} bytes.")
    at = raw.get("at")
    client_time = None if at is None else parse_client_ms(str(at), "at", now)
    return client_id, kind, client_time, data


def record_browser_events(token: str | None, attempt_id: int, events, now: datetime | None = None) -> dict:
    """A batch from the browser's durable queue; the server stamps its own time on each event.

    Events carry the browser's id, so a batch sent again (its answer was lost) is stored once.
    A reported recording failure marks a recording that has no chunks as failed, with its cause.
    """
    now = now or utcnow()
    scope = authorize(token, attempt_id, None, now)
    if not isinstance(events, list) or len(events) > MAX_EVENTS_PER_BATCH:
        raise IngestError(400, "bad_batch", f"Send a list of at most {MAX_EVENTS_PER_BATCH} events.")
    checked = [_check_event(raw, now) for raw in events]
    with session_scope() as db:
        attempt = db.get(Attempt, attempt_id)
        _check_accepting(attempt, now)
        ids = [c[0] for c in checked]
        seen = set(db.execute(select(ProctoringEvent.client_id).where(
            ProctoringEvent.attempt_id == attempt_id, ProctoringEvent.client_id.in_(ids))).scalars())
        stored = 0
        for client_id, kind, client_time, data in checked:
            if client_id in seen:
                continue
            seen.add(client_id)
            db.add(ProctoringEvent(attempt_id=attempt_id, kind=kind, severity=BROWSER_EVENTS[kind],
                                   client_time=client_time, data=data, client_id=client_id,
                                   server_time=now))
            stored += 1
            if kind == "recording_failed" and data.get("stream") in scope.streams:
                _mark_failed(db, attempt_id, data["stream"], str(data.get("reason", ""))[:500])
    return {"stored": stored, "duplicates": len(checked) - stored}


def _mark_failed(db: Session, attempt_id: int, stream: str, reason: str) -> None:
    """Only a recording with nothing stored is failed; otherwise the cause stays as an event."""
    recording_id = _recording_id(db, attempt_id, stream)
    db.execute(update(Recording).where(Recording.id == recording_id, Recording.chunk_count == 0,
                                       Recording.status.in_([RecordingStatus.not_started,
                                                             RecordingStatus.in_progress,
                                                             RecordingStatus.failed]))
               .values(status=RecordingStatus.failed, failure_reason=reason or "recording failed"))
