"""health samples: the platform's figures once a minute (Health page)

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
    op.create_table('health_samples',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('taken_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('jobs_done', sa.Integer(), nullable=False),
    sa.Column('jobs_failed', sa.Integer(), nullable=False),
    sa.Column('processing_p95_s', sa.Float(), nullable=True),
    sa.Column('queue_depth', sa.Integer(), nullable=False),
    sa.Column('oldest_wait_s', sa.Float(), nullable=False),
    sa.Column('storage_bytes', sa.BigInteger(), nullable=False),
    sa.Column('disk_free_bytes', sa.BigInteger(), nullable=False),
    sa.Column('disk_total_bytes', sa.BigInteger(), nullable=False),
    sa.Column('live_publishers', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('health_samples', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_health_samples_taken_at'), ['taken_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('health_samples', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_health_samples_taken_at'))
    op.drop_table('health_samples')
