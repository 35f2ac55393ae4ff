from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from proctor_app.models.base import json_column, utcnow


class Setting(SQLModel, table=True):
    """One admin setting; the value is JSON. Defaults live in services/settings.py."""

    __tablename__ = "settings"
    key: str = Field(primary_key=True, max_length=100)
    value: Any = Field(sa_column=json_column())
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: int | None = Field(default=None, foreign_key="users.id")


class AuditLog(SQLModel, table=True):
    """Who did what, when: settings changes, media views and downloads, deletions."""

    __tablename__ = "audit_log"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    user_id: int | None = Field(default=None, foreign_key="users.id", index=True)
    action: str = Field(max_length=60, index=True)
    target: str = Field(default="", max_length=200)
    data: dict = Field(default_factory=dict, sa_column=json_column())
