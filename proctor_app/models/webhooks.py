"""Webhooks: the endpoints integrators register, the outbox of events (written in the transaction
of the change each reports), one delivery per event and endpoint, and the log of its tries."""

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, Relationship, SQLModel

from proctor_app.models.base import json_column, utcnow


class WebhookEndpoint(SQLModel, table=True):
    """An organisation's receiver; organisation_id None is the install's own (operator alerts)."""

    __tablename__ = "webhook_endpoints"
    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(max_length=40, unique=True, index=True)
    organisation_id: int | None = Field(default=None, foreign_key="organisations.id", index=True)
    url: str = Field(max_length=2000)
    # Event types, or ["*"] for all.
    events: list = Field(default_factory=list, sa_column=json_column())
    enabled: bool = True
    # Why it is not enabled when the app switched it off ("410 Gone", "paused after ...").
    disabled_reason: str = Field(default="", max_length=200)
    secret: str = Field(max_length=100)
    # After a rotation the old secret also signs until previous_secret_until.
    previous_secret: str = Field(default="", max_length=100)
    previous_secret_until: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class WebhookEvent(SQLModel, table=True):
    """The outbox: one row per event, its envelope as sent."""

    __tablename__ = "webhook_events"
    id: int | None = Field(default=None, primary_key=True)
    # The webhook-id header: the same on every try and every endpoint.
    public_id: str = Field(max_length=40, unique=True)
    type: str = Field(max_length=40, index=True)
    organisation_id: int | None = Field(default=None, foreign_key="organisations.id")
    attempt_id: int | None = Field(default=None, foreign_key="attempts.id", index=True)
    envelope: dict = Field(default_factory=dict, sa_column=json_column())
    created_at: datetime = Field(default_factory=utcnow)


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_try_at"),)
    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(foreign_key="webhook_events.id", index=True)
    endpoint_id: int = Field(foreign_key="webhook_endpoints.id", index=True)
    # pending, delivered, failed (no tries left)
    status: str = Field(default="pending", max_length=20)
    tries: int = 0
    next_try_at: datetime = Field(default_factory=utcnow)
    # A delivery being sent is leased; a process that died leaves it to be taken again once due.
    leased_until: datetime | None = None
    last_status_code: int | None = None
    created_at: datetime = Field(default_factory=utcnow)
    delivered_at: datetime | None = None
    # Lets the outbox add an event and its deliveries in one flush (the event's id comes first).
    event: WebhookEvent = Relationship()


class WebhookAttempt(SQLModel, table=True):
    """One try of a delivery, for the delivery log."""

    __tablename__ = "webhook_attempts"
    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="webhook_deliveries.id", index=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    number: int
    status_code: int | None = None
    latency_ms: float = 0.0
    # The receiver's answer (first characters) or the error.
    excerpt: str = Field(default="", max_length=500)
    ok: bool = False
