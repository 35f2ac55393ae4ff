from datetime import datetime

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel

from proctor_app.models.base import utcnow


class HealthSample(SQLModel, table=True):
    """The platform's figures at one minute, for the Health page's charts and alerts."""

    __tablename__ = "health_samples"
    id: int | None = Field(default=None, primary_key=True)
    taken_at: datetime = Field(default_factory=utcnow, index=True)
    # Finalize jobs that ended in the hour before, and the slowest 95 % of their durations.
    jobs_done: int = 0
    jobs_failed: int = 0
    processing_p95_s: float | None = None
    # Jobs due and waiting, and how long the oldest of them has waited.
    queue_depth: int = 0
    oldest_wait_s: float = 0.0
    storage_bytes: int = Field(default=0, sa_type=BigInteger)
    disk_free_bytes: int = Field(default=0, sa_type=BigInteger)
    disk_total_bytes: int = Field(default=0, sa_type=BigInteger)
    live_publishers: int = 0
    # Webhook delivery tries in the hour before: acknowledged (2xx) and not.
    webhook_tries_ok: int = 0
    webhook_tries_failed: int = 0
