from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from proctor_app.models.base import json_column, utcnow


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"


class Job(SQLModel, table=True):
    """A durable background job (finalize a recording, ...), taken with row locks."""

    __tablename__ = "jobs"
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40, index=True)
    # A job is about its attempt only: it goes when the attempt does.
    attempt_id: int | None = Field(default=None, foreign_key="attempts.id", ondelete="CASCADE",
                                   index=True)
    payload: dict = Field(default_factory=dict, sa_column=json_column())
    status: str = Field(default=JobStatus.queued, max_length=20, index=True)
    tries: int = 0
    max_tries: int = 5
    last_error: str = ""
    run_after: datetime = Field(default_factory=utcnow, index=True)
    heartbeat_at: datetime | None = None
    progress: float = 0.0
    worker: str = Field(default="", max_length=100)
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
