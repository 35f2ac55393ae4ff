"""proctor alerts: a candidate's live video dropped or a critical event, open until acknowledged

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def _string(length=None):
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _when():
    return sqlmodel.sql.sqltypes.UTCDateTime()


def upgrade() -> None:
    op.create_table(
        'proctor_alerts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('attempt_id', sa.Integer(), nullable=False),
        sa.Column('reason', _string(20), nullable=False),
        sa.Column('source', _string(100), nullable=False),
        sa.Column('text', _string(300), nullable=False),
        sa.Column('raised_at', _when(), nullable=False),
        sa.Column('acknowledged_at', _when(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id']),
        sa.ForeignKeyConstraint(['attempt_id'], ['attempts.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('user_id', 'source'))
    op.create_index('ix_proctor_alerts_user_id', 'proctor_alerts', ['user_id'])
    op.create_index('ix_proctor_alerts_attempt_id', 'proctor_alerts', ['attempt_id'])


def downgrade() -> None:
    op.drop_index('ix_proctor_alerts_attempt_id', table_name='proctor_alerts')
    op.drop_index('ix_proctor_alerts_user_id', table_name='proctor_alerts')
    op.drop_table('proctor_alerts')
