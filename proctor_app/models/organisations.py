"""Tenants and what the integration API adds: organisations, their API keys, and the sessions the
API creates (each one an attempt of a hidden exam of its own, so ingest, processing, live and
review treat it like any other attempt)."""

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from proctor_app.models.base import json_column, utcnow

# Created by migration 0002; rows made before organisations existed, and rows made by code that
# does not name one (the install's own exams and users), belong to it.
DEFAULT_ORGANISATION_ID = 1


class Organisation(SQLModel, table=True):
    __tablename__ = "organisations"
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=64, unique=True, index=True)
    name: str = Field(max_length=200)
    # Origins allowed to embed the recorder (second wave: /sdk/proctor.js, CORS).
    allowed_origins: list = Field(default_factory=list, sa_column=json_column())
    created_at: datetime = Field(default_factory=utcnow)


class ApiKey(SQLModel, table=True):
    """A key of one organisation. Only an HMAC of the key is kept: keys are 32 random bytes, so a
    fast keyed hash suffices (no password hashing), and a stolen table without the secret key
    cannot even be checked against guesses. Shown by `prefix`, which is also how it is looked up."""

    __tablename__ = "api_keys"
    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisations.id", index=True)
    label: str = Field(max_length=200)
    prefix: str = Field(max_length=16, unique=True, index=True)
    key_hash: str = Field(max_length=64)
    scopes: list = Field(default_factory=list, sa_column=json_column())
    created_at: datetime = Field(default_factory=utcnow)
    created_by: int | None = Field(default=None, foreign_key="users.id")
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    # Set on the old key by a rotation: which key replaced it (the old one expires soon after).
    replaced_by: int | None = Field(default=None, foreign_key="api_keys.id")


class ApiSession(SQLModel, table=True):
    """A proctoring session created through the API: the caller's id for it, and its launch link.
    The recording settings live on its hidden exam, the state on its attempt."""

    __tablename__ = "api_sessions"
    __table_args__ = (UniqueConstraint("organisation_id", "external_id"),
                      Index("ix_api_sessions_org_created", "organisation_id", "created_at", "id"))
    id: int | None = Field(default=None, primary_key=True)
    # What the API calls the session: random, so ids say nothing about other sessions.
    public_id: str = Field(max_length=40, unique=True, index=True)
    organisation_id: int = Field(foreign_key="organisations.id")
    attempt_id: int = Field(foreign_key="attempts.id", unique=True)
    external_id: str = Field(max_length=200)
    # Named `meta` in Python: SQLModel reserves `metadata`; the column and the API say metadata.
    meta: dict = Field(default_factory=dict, sa_column=json_column("metadata"))
    return_url: str | None = Field(default=None, max_length=2000)
    candidate_name: str = Field(max_length=200)
    candidate_email: str | None = Field(default=None, max_length=320)
    # The candidate's one-time launch link: only its hash; used_at once it was opened.
    launch_token_hash: str = Field(max_length=64, unique=True)
    launch_expires_at: datetime
    launch_used_at: datetime | None = None
    created_by_key: int | None = Field(default=None, foreign_key="api_keys.id")
    created_at: datetime = Field(default_factory=utcnow)
