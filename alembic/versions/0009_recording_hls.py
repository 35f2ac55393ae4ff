"""recordings: the HLS ladder's master playlist, made after the MP4

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hls_path', sqlmodel.sql.sqltypes.AutoString(), nullable=False,
                                      server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.drop_column('hls_path')
