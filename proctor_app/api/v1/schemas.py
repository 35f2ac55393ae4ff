"""The JSON bodies of /api/v1: what the handlers validate with and answer, and what the OpenAPI
document is generated from. Strict: a number is not a string, unknown fields are refused."""

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from proctor_app.models import AttemptStatus
from proctor_app.services.exam_admin import DURATION_RANGE, SNAPSHOT_INTERVAL_RANGE

MAX_METADATA_BYTES = 16_384
# Printable text: no control characters (a NUL cannot even be stored in PostgreSQL).
TEXT = r"^[^\x00-\x1f\x7f]*$"
SessionStatus = Literal[tuple(status.value for status in AttemptStatus)]  # type: ignore[valid-type]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Problem(BaseModel):
    """An error, as RFC 9457 problem details (`application/problem+json`)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="For invalid requests: what was wrong, where (loc).")


class Candidate(Strict):
    name: str = Field(min_length=1, max_length=200, pattern=TEXT)
    email: str | None = Field(default=None, max_length=320, pattern=r"^[^\s@\x00-\x1f\x7f]+@[^\s@\x00-\x1f\x7f]+$")


class SessionSettings(Strict):
    """What is recorded and watched; the same switches as an exam of our own."""

    camera: bool = Field(default=True, description="record the camera (with the microphone)")
    screen: bool = Field(default=False, description="record the screen too")
    live: bool = Field(default=True, description="proctors may watch live")
    snapshots_interval_s: int = Field(default=60, ge=SNAPSHOT_INTERVAL_RANGE[0], le=SNAPSHOT_INTERVAL_RANGE[1])
    required: bool = Field(default=True, description="the candidate may not go on without recording")
    duration_minutes: int = Field(default=60, ge=DURATION_RANGE[0], le=DURATION_RANGE[1])


class SessionCreate(Strict):
    external_id: str = Field(min_length=1, max_length=200, pattern=TEXT,
                             description="your id for it; the same id again answers the same session")
    candidate: Candidate
    metadata: dict[str, Any] = Field(default_factory=dict,
                                     description=f"any JSON object, at most {MAX_METADATA_BYTES} bytes")
    settings: SessionSettings = Field(default_factory=SessionSettings)
    return_url: str | None = Field(default=None, max_length=2000, pattern=r"^https?://[^\s\x00-\x1f\x7f]+$",
                                   description="where the candidate's page goes at the end")

    @field_validator("metadata")
    @classmethod
    def _small(cls, value: dict) -> dict:
        if len(json.dumps(value, allow_nan=False)) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata is limited to {MAX_METADATA_BYTES} bytes of JSON")
        return value


class SessionSummary(BaseModel):
    id: str
    external_id: str
    status: SessionStatus
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


class SessionCreated(SessionSummary):
    candidate_url: str = Field(description="one-time link for the candidate; expires at launch_expires_at")
    launch_expires_at: datetime


class Playback(BaseModel):
    """Signed links that expire (hours); ask the session again for new ones."""

    mp4_url: str | None
    poster_url: str | None
    sprite_url: str | None


class Gap(BaseModel):
    start_s: float
    end_s: float
    cause: str = ""


class Stream(BaseModel):
    stream: Literal["camera", "screen"]
    status: str
    duration_s: float | None
    gaps: list[Gap]
    size: int | None
    sha256: str | None
    playback: Playback | None = Field(description="null without the recordings:read scope or before processing")


class Review(BaseModel):
    status: str
    notes: str


class SessionDetail(SessionSummary):
    candidate: Candidate
    metadata: dict[str, Any]
    return_url: str | None
    settings: SessionSettings
    deadline_at: datetime | None
    streams: list[Stream]
    events: dict[str, int] = Field(description="number of events by severity (info, warning, critical)")
    review: Review
    media_deleted_at: datetime | None


class SessionPage(BaseModel):
    items: list[SessionSummary]
    next_cursor: str | None


class Event(BaseModel):
    id: int
    kind: str
    text: str = Field(description="the event as a sentence, e.g. \"Question 1 viewed\" (the same text reviewers read)")
    severity: str
    t_s: float | None = Field(description="seconds since the session started (its clock); null before")
    server_time: datetime
    data: dict[str, Any]


class EventPage(BaseModel):
    items: list[Event]
    next_cursor: str | None


class Erasure(BaseModel):
    id: str
    media_deleted_at: datetime | None
    deleted_now: bool = Field(description="false when the media was gone already")


class SessionToken(BaseModel):
    """A short-lived token for the embeddable recorder (/sdk/proctor.js) on your exam page."""

    token: str = Field(description="hand it to `mount(element, {token})` of /sdk/proctor.js")
    expires_at: datetime = Field(description="the recorder must have started by then; fetch a new one for a reload")


class LiveStream(BaseModel):
    stream: str = Field(description="camera, camera_low (320x240) or screen")
    whep_url: str = Field(description="a WHEP endpoint: POST an SDP offer to it, no other credential needed")


class LiveViewerLinks(BaseModel):
    """Signed WHEP links for a standard player, made for the key that asked: they work while the
    key does and until expires_at; every view is audited as this key's."""

    streams: list[LiveStream]
    expires_at: datetime
