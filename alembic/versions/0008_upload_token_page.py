"""upload tokens name the page (browser tab) they were issued to: a second tab is told

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('upload_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('page_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('upload_tokens', schema=None) as batch_op:
        batch_op.drop_column('page_id')
