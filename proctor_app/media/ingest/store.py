"""Loss-free ingest of what the candidate's browser records: media chunks, snapshots, events.

The browser keeps every chunk until the server acknowledges it, so the server's job is to never
acknowledge what it has not made durable, and to answer a repeated upload the same way twice:
- a chunk's bytes are on disk (temp file, fsync, rename, fsync the folder) before its row commits;
- (stream, segment, seq) is stored once: the same bytes again are "already stored", other
  bytes are a conflict, and nothing is written for a request that fails validation;
- the answer says what the server holds of the segment (the highest contiguous seq), so the
  browser can tell a chunk it lost from one still on its way.

Uploads are authorised by the attempt's upload token (tokens.py).
"""

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from proctor_app.clock import Clock, system_clock
from proctor_app.db import connection_scope, session_scope
from proctor_app.media.ingest import events, snapshots
from proctor_app.media.ingest.checks import (
    MAX_SEGMENTS_PER_STREAM,
    ChunkAck,
    ChunkUpload,
    check_chunk,
    stream_quota_bytes,
)
from proctor_app.media.ingest.commit import ChunkOnDisk, GroupCommit
from proctor_app.media.ingest.errors import IngestError
from proctor_app.media.ingest.rows import SEGMENT_AND_STORED, SEGMENT_COUNT, UploadTargets, recording_id
from proctor_app.media.ingest.tokens import TokenScope, TokenScopes
from proctor_app.media.storage import Storage, storage
from proctor_app.media.storage.layout import raw_chunk_path

Settings = Callable[[], Mapping[str, Any]]


class UploadStore:
    """What one process stores of the browsers' uploads. It owns its caches (token scopes, upload
    targets) and its group commit; `settings` gives the admin settings (max_chunk_mb, and the
    camera and screen bitrates that bound an attempt's stored bytes)."""

    def __init__(self, settings: Settings, clock: Clock = system_clock, files: Storage = storage):
        self.settings, self.clock, self.files = settings, clock, files
        self.tokens = TokenScopes(clock)
        self.targets = UploadTargets(clock)
        self.commits = GroupCommit()

    def authorize(self, token: str | None, attempt_id: int, stream: str | None = None,
                  now: datetime | None = None) -> TokenScope:
        return self.tokens.authorize(token, attempt_id, stream, now or self.clock.now())

    def token_cached(self, token: str | None) -> bool:
        """Whether `authorize` answers this token without the database."""
        return self.tokens.cached(token)

    def forget_tokens(self, token_hashes: Iterable[str]) -> None:
        """Revoked tokens: their next use is looked up again (and refused)."""
        self.tokens.forget(token_hashes)

    def max_chunk_bytes(self) -> int:
        return int(self.settings()["max_chunk_mb"]) * 1024 * 1024

    def max_stream_bytes(self, started_at: datetime | None, deadline_at: datetime | None) -> int:
        """The quota of one stream of an attempt: its exam's time at the highest bitrate the recorder
        can be set to, with headroom (checks.stream_quota_bytes)."""
        values = self.settings()
        recorded_s = ((deadline_at - started_at).total_seconds()
                      if started_at is not None and deadline_at is not None else 0.0)
        video_kbps = max(int(values["camera_bitrate_kbps"]), int(values["screen_bitrate_kbps"]))
        return stream_quota_bytes(recorded_s, video_kbps)

    def store_chunk(self, token: str | None, upload: ChunkUpload, now: datetime | None = None) -> ChunkAck:
        """Validate, write durably, record; idempotent. Raises IngestError (nothing stored then)."""
        now = now or self.clock.now()
        self.tokens.authorize(token, upload.attempt_id, upload.stream, now)
        digest, start, end, mime, meta = check_chunk(upload, now, self.max_chunk_bytes())
        attempt = self.targets.get(upload.attempt_id, upload.stream, now)
        rec_id = attempt.recording_id
        if rec_id is None:
            with session_scope() as db:
                rec_id = recording_id(db, upload.attempt_id, upload.stream)
        relative = raw_chunk_path(upload.attempt_id, attempt.started_at, upload.stream, upload.segment,
                                  upload.seq)
        # Built from checked numbers and a known stream: write_durably still refuses escapes.
        with self.files.locked_folder((self.files.root() / relative).parent):
            with connection_scope() as conn:
                stored_bytes, segment_id, chunk_count, contiguous_seq, stored_sha256 = SEGMENT_AND_STORED.one(
                    conn, {"recording_id": rec_id, "number": upload.segment, "seq": upload.seq})
            if stored_sha256 == digest:
                return ChunkAck("already_stored", upload.stream, upload.segment, upload.seq,
                                contiguous_seq, chunk_count)
            if stored_sha256 is not None:
                raise IngestError(409, "chunk_conflict", "A different chunk is already stored under this seq.")
            self._check_limits(new_segment=segment_id is None, rec_id=rec_id,
                               stored=stored_bytes or 0, size=len(upload.body), attempt=attempt)
            with self.commits.writing():
                self.files.write_durably(relative, upload.body)
            try:
                return self.commits.commit(ChunkOnDisk(
                    upload, relative, digest, start, end, mime, meta, now, rec_id,
                    None if segment_id is None else (segment_id, chunk_count, contiguous_seq)))
            except IngestError:  # refused at commit and rolled back: its file goes too
                self.files.absolute(relative).unlink(missing_ok=True)
                # The cached target took it; the attempt's next chunks are refused before their write.
                self.targets.forget(upload.attempt_id, upload.stream)
                raise

    def _check_limits(self, new_segment: bool, rec_id: int, stored: int, size: int, attempt) -> None:
        """Refuses a chunk that would take the stream over its quota (413), or start a segment
        beyond the bound (429). Checked before the write; chunks of the same stream in flight at
        once (at most a few per attempt, api/ingest.py) may pass it together."""
        if stored + size > self.max_stream_bytes(attempt.started_at, attempt.deadline_at):
            raise IngestError(413, "quota_exceeded",
                              "This recording has stored all the bytes its exam's duration allows.")
        if new_segment:
            with connection_scope() as conn:
                count = conn.execute(SEGMENT_COUNT, {"recording_id": rec_id}).scalar()
            if count >= MAX_SEGMENTS_PER_STREAM:
                raise IngestError(429, "too_many_segments",
                                  f"A recording has at most {MAX_SEGMENTS_PER_STREAM} segments.")

    def store_snapshot(self, token: str | None, attempt_id: int, seq: int, body: bytes,
                       sha256: str | None, taken_ms: str | None, now: datetime | None = None) -> dict:
        """One camera still (JPEG); idempotent like chunks. Raises IngestError."""
        now = now or self.clock.now()
        self.tokens.authorize(token, attempt_id, None, now)  # whatever the video flags
        return snapshots.store_snapshot(self.files, attempt_id, seq, body, sha256, taken_ms, now)

    def record_browser_events(self, token: str | None, attempt_id: int, batch,
                              now: datetime | None = None) -> dict:
        now = now or self.clock.now()
        scope = self.tokens.authorize(token, attempt_id, None, now)
        return events.record_browser_events(scope, attempt_id, batch, now)
