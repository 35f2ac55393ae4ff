"""drop the per-account login lock-out (failed_logins, locked_until): throttling replaced it;
end the open login sessions, whose cookies were written by JavaScript (now HttpOnly)

Revision ID: 0005
Revises: 0004
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("users")}
    # batch mode: SQLite cannot drop a column in place on every version.
    with op.batch_alter_table("users") as batch:
        for name in ("failed_logins", "locked_until"):
            if name in columns:
                batch.drop_column(name)
    sessions = sa.table("login_sessions", sa.column("revoked_at", sqlmodel.sql.sqltypes.UTCDateTime()))
    op.execute(sessions.update().where(sessions.c.revoked_at.is_(None))
               .values(revoked_at=datetime.now(timezone.utc)))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("locked_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
