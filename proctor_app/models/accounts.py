from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from proctor_app.models.base import utcnow
from proctor_app.models.organisations import DEFAULT_ORGANISATION_ID


class Role(StrEnum):
    candidate = "candidate"
    proctor = "proctor"
    supervisor = "supervisor"
    admin = "admin"


class User(SQLModel, table=True):
    __tablename__ = "users"
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(index=True, unique=True, max_length=320)
    name: str = Field(max_length=200)
    role: str = Field(max_length=20, index=True)
    password_hash: str
    active: bool = True
    organisation_id: int = Field(default=DEFAULT_ORGANISATION_ID, foreign_key="organisations.id", index=True)
    # An admin of the whole install (all organisations), not only of their own.
    is_install_admin: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class LoginSession(SQLModel, table=True):
    """A server-side login session; the browser holds the token, the database only its hash."""

    __tablename__ = "login_sessions"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    token_hash: str = Field(index=True, unique=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    revoked_at: datetime | None = None
