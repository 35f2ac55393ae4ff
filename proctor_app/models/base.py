from datetime import datetime, timezone

from sqlalchemy import JSON, Column


def utcnow() -> datetime:
    """Aware UTC; SQLModel stores it as UTC and gives it back aware, on SQLite and PostgreSQL alike."""
    return datetime.now(timezone.utc)


def json_column():
    return Column(JSON, nullable=False, default=dict)
