"""webhooks: endpoints, the event outbox, deliveries and their tries; health samples count the tries

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def _string(length=None):
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _when():
    return sqlmodel.sql.sqltypes.UTCDateTime()


def upgrade() -> None:
    op.create_table(
        'webhook_endpoints',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('public_id', _string(40), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=True),
        sa.Column('url', _string(2000), nullable=False),
        sa.Column('events', sa.JSON(), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('disabled_reason', _string(200), nullable=False),
        sa.Column('secret', _string(100), nullable=False),
        sa.Column('previous_secret', _string(100), nullable=False),
        sa.Column('previous_secret_until', _when(), nullable=True),
        sa.Column('created_at', _when(), nullable=False),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id']),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_webhook_endpoints_public_id', 'webhook_endpoints', ['public_id'], unique=True)
    op.create_index('ix_webhook_endpoints_organisation_id', 'webhook_endpoints', ['organisation_id'])
    op.create_table(
        'webhook_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('public_id', _string(40), nullable=False),
        sa.Column('type', _string(40), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=True),
        sa.Column('attempt_id', sa.Integer(), nullable=True),
        sa.Column('envelope', sa.JSON(), nullable=False),
        sa.Column('created_at', _when(), nullable=False),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id']),
        sa.ForeignKeyConstraint(['attempt_id'], ['attempts.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('public_id'))
    op.create_index('ix_webhook_events_type', 'webhook_events', ['type'])
    op.create_index('ix_webhook_events_attempt_id', 'webhook_events', ['attempt_id'])
    op.create_table(
        'webhook_deliveries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('endpoint_id', sa.Integer(), nullable=False),
        sa.Column('status', _string(20), nullable=False),
        sa.Column('tries', sa.Integer(), nullable=False),
        sa.Column('next_try_at', _when(), nullable=False),
        sa.Column('leased_until', _when(), nullable=True),
        sa.Column('last_status_code', sa.Integer(), nullable=True),
        sa.Column('created_at', _when(), nullable=False),
        sa.Column('delivered_at', _when(), nullable=True),
        sa.ForeignKeyConstraint(['event_id'], ['webhook_events.id']),
        sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id']),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_webhook_deliveries_due', 'webhook_deliveries', ['status', 'next_try_at'])
    op.create_index('ix_webhook_deliveries_event_id', 'webhook_deliveries', ['event_id'])
    op.create_index('ix_webhook_deliveries_endpoint_id', 'webhook_deliveries', ['endpoint_id'])
    op.create_table(
        'webhook_attempts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('delivery_id', sa.Integer(), nullable=False),
        sa.Column('at', _when(), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('status_code', sa.Integer(), nullable=True),
        sa.Column('latency_ms', sa.Float(), nullable=False),
        sa.Column('excerpt', _string(500), nullable=False),
        sa.Column('ok', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['delivery_id'], ['webhook_deliveries.id']),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_webhook_attempts_delivery_id', 'webhook_attempts', ['delivery_id'])
    op.create_index('ix_webhook_attempts_at', 'webhook_attempts', ['at'])
    with op.batch_alter_table('health_samples') as batch:
        batch.add_column(sa.Column('webhook_tries_ok', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('webhook_tries_failed', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('health_samples') as batch:
        batch.drop_column('webhook_tries_failed')
        batch.drop_column('webhook_tries_ok')
    op.drop_table('webhook_attempts')
    op.drop_table('webhook_deliveries')
    op.drop_table('webhook_events')
    op.drop_table('webhook_endpoints')
