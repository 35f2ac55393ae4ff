from datetime import datetime
from enum import StrEnum

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from proctor_app.models.base import json_column, utcnow


class StreamKind(StrEnum):
    camera = "camera"
    screen = "screen"


class RecordingStatus(StrEnum):
    not_started = "not_started"
    in_progress = "in_progress"
    processing = "processing"
    completed = "completed"
    partial = "partial"
    failed = "failed"
    expired = "expired"


class UploadToken(SQLModel, table=True):
    """Authorises a candidate's browser to upload media for one attempt; only the hash is kept."""

    __tablename__ = "upload_tokens"
    id: int | None = Field(default=None, primary_key=True)
    attempt_id: int = Field(foreign_key="attempts.id", index=True)
    token_hash: str = Field(index=True, unique=True, max_length=64)
    streams: list = Field(default_factory=list, sa_column=json_column())
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    # Set when its candidate lost access (services/revocation.py): refused from then on.
    revoked_at: datetime | None = None
    # The exam page (one browser tab, kept across its reloads) it was issued to; None for the SDK.
    page_id: str | None = Field(default=None, max_length=64)


class Recording(SQLModel, table=True):
    """One stream (camera or screen) of one attempt, from first chunk to finished MP4."""

    __tablename__ = "recordings"
    __table_args__ = (UniqueConstraint("attempt_id", "stream"),)
    id: int | None = Field(default=None, primary_key=True)
    attempt_id: int = Field(foreign_key="attempts.id", index=True)
    stream: str = Field(max_length=20)
    status: str = Field(default=RecordingStatus.not_started, max_length=20, index=True)
    failure_reason: str = ""
    mime_type: str = Field(default="", max_length=100)
    chunk_count: int = 0
    byte_count: int = 0
    gap_count: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    # Filled by processing; paths are relative to the storage folder.
    mp4_path: str = ""
    poster_path: str = ""
    sprite_path: str = ""
    # The HLS ladder's master playlist (media/processing/hls.py), made after the MP4; "" until then.
    hls_path: str = ""
    duration_s: float | None = None
    codec: str = Field(default="", max_length=40)
    size_bytes: int | None = None
    sha256: str = Field(default="", max_length=64)
    # [{"start_s": float, "end_s": float, "cause": str}] on the exam's timeline.
    gaps: list = Field(default_factory=list, sa_column=json_column())
    progress: float = 0.0
    raw_deleted_at: datetime | None = None
    # Set by retention (status "expired"): when and why the media was deleted, for the attempt page.
    expired_at: datetime | None = None
    expired_reason: str = ""


class Segment(SQLModel, table=True):
    """The bytes of one MediaRecorder instance: a self-contained stream once concatenated."""

    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("recording_id", "number"),)
    id: int | None = Field(default=None, primary_key=True)
    recording_id: int = Field(foreign_key="recordings.id", index=True)
    number: int
    mime_type: str = Field(default="", max_length=100)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    chunk_count: int = 0
    byte_count: int = 0
    # Highest seq such that 0..seq are all stored (-1 when seq 0 is missing).
    contiguous_seq: int = -1
    received_at: datetime = Field(default_factory=utcnow)


class Chunk(SQLModel, table=True):
    __tablename__ = "chunks"
    __table_args__ = (UniqueConstraint("segment_id", "seq"),)
    id: int | None = Field(default=None, primary_key=True)
    segment_id: int = Field(foreign_key="segments.id", index=True)
    seq: int
    size: int
    sha256: str = Field(max_length=64)
    path: str
    start_time: datetime | None = None
    end_time: datetime | None = None
    received_at: datetime = Field(default_factory=utcnow)
    # Which questions were viewed and answered while this chunk was recorded.
    meta: dict = Field(default_factory=dict, sa_column=json_column())


class Snapshot(SQLModel, table=True):
    __tablename__ = "snapshots"
    __table_args__ = (UniqueConstraint("attempt_id", "seq"),)
    id: int | None = Field(default=None, primary_key=True)
    attempt_id: int = Field(foreign_key="attempts.id", index=True)
    seq: int
    taken_at: datetime | None = None
    received_at: datetime = Field(default_factory=utcnow)
    path: str
    size: int
    sha256: str = Field(max_length=64)
