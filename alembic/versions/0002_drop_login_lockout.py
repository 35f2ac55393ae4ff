"""drop the per-account login lock-out (failed_logins, locked_until): throttling replaced it

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("users")}
    # batch mode: SQLite cannot drop a column in place on every version.
    with op.batch_alter_table("users") as batch:
        for name in ("failed_logins", "locked_until"):
            if name in columns:
                batch.drop_column(name)


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("locked_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
