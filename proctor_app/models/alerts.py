"""Alerts raised for a proctor watching the grid: a candidate's live video dropped, or a critical
event arrived. Each stays open until that proctor acknowledges it (audited)."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from proctor_app.models.base import utcnow


class AlertReason(StrEnum):
    reconnecting = "reconnecting"
    offline = "offline"
    critical_event = "critical_event"


class ProctorAlert(SQLModel, table=True):
    __tablename__ = "proctor_alerts"
    # What raised it, once per proctor: the same status change or event seen again (another tab,
    # a reload) raises nothing new.
    __table_args__ = (UniqueConstraint("user_id", "source"),)
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    attempt_id: int = Field(foreign_key="attempts.id", index=True)
    reason: str = Field(max_length=20)
    # "status:<attempt>:<status>:<when the relay saw it change>" or "event:<event id>".
    source: str = Field(max_length=100)
    text: str = Field(max_length=300)
    raised_at: datetime = Field(default_factory=utcnow)
    acknowledged_at: datetime | None = None
