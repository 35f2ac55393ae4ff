from datetime import datetime

from sqlalchemy import JSON, Column

from proctor_app.clock import system_clock


def utcnow() -> datetime:
    """Aware UTC; SQLModel stores it as UTC and gives it back aware, on SQLite and PostgreSQL alike."""
    return system_clock.now()


def json_column(name: str | None = None):
    return Column(*([name] if name else []), JSON, nullable=False, default=dict)
