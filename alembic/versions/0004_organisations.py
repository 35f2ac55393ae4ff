"""organisations, API keys and API sessions

Every existing exam and user moves into a default organisation (id 1, slug "default"); attempts,
recordings and everything else follow their exam. Existing admins become install admins, so
nobody loses access. Settings stay install-wide.

Revision ID: 0004
Revises: 0003
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa
import sqlmodel

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

DEFAULT_ORGANISATION_ID = 1


def _string(length=None):
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _when():
    return sqlmodel.sql.sqltypes.UTCDateTime()


def upgrade() -> None:
    organisations = op.create_table(
        'organisations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('slug', _string(64), nullable=False),
        sa.Column('name', _string(200), nullable=False),
        sa.Column('allowed_origins', sa.JSON(), nullable=False),
        sa.Column('created_at', _when(), nullable=False),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_organisations_slug', 'organisations', ['slug'], unique=True)
    op.bulk_insert(organisations, [{'id': DEFAULT_ORGANISATION_ID, 'slug': 'default', 'name': 'Default',
                                    'allowed_origins': [], 'created_at': datetime.now(timezone.utc)}])
    if op.get_bind().dialect.name == 'postgresql':  # the explicit id did not advance the sequence
        op.execute("SELECT setval('organisations_id_seq', (SELECT max(id) FROM organisations))")

    for table in ('exams', 'users'):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('organisation_id', sa.Integer(), nullable=False,
                                       server_default=str(DEFAULT_ORGANISATION_ID)))
            batch.create_foreign_key(f'fk_{table}_organisation_id', 'organisations',
                                     ['organisation_id'], ['id'])
            batch.create_index(f'ix_{table}_organisation_id', ['organisation_id'])
    with op.batch_alter_table('exams') as batch:
        batch.add_column(sa.Column('api_session', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('is_install_admin', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.execute("UPDATE users SET is_install_admin = true WHERE role = 'admin'")

    op.create_table(
        'api_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('label', _string(200), nullable=False),
        sa.Column('prefix', _string(16), nullable=False),
        sa.Column('key_hash', _string(64), nullable=False),
        sa.Column('scopes', sa.JSON(), nullable=False),
        sa.Column('created_at', _when(), nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=True),
        sa.Column('expires_at', _when(), nullable=True),
        sa.Column('last_used_at', _when(), nullable=True),
        sa.Column('revoked_at', _when(), nullable=True),
        sa.Column('replaced_by', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id']),
        sa.ForeignKeyConstraint(['created_by'], ['users.id']),
        sa.ForeignKeyConstraint(['replaced_by'], ['api_keys.id']),
        sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_api_keys_organisation_id', 'api_keys', ['organisation_id'])
    op.create_index('ix_api_keys_prefix', 'api_keys', ['prefix'], unique=True)

    op.create_table(
        'api_sessions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('public_id', _string(40), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('attempt_id', sa.Integer(), nullable=False),
        sa.Column('external_id', _string(200), nullable=False),
        sa.Column('metadata', sa.JSON(), nullable=False),
        sa.Column('return_url', _string(2000), nullable=True),
        sa.Column('candidate_name', _string(200), nullable=False),
        sa.Column('candidate_email', _string(320), nullable=True),
        sa.Column('launch_token_hash', _string(64), nullable=False),
        sa.Column('launch_expires_at', _when(), nullable=False),
        sa.Column('launch_used_at', _when(), nullable=True),
        sa.Column('created_by_key', sa.Integer(), nullable=True),
        sa.Column('created_at', _when(), nullable=False),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id']),
        sa.ForeignKeyConstraint(['attempt_id'], ['attempts.id']),
        sa.ForeignKeyConstraint(['created_by_key'], ['api_keys.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('organisation_id', 'external_id'),
        sa.UniqueConstraint('attempt_id'),
        sa.UniqueConstraint('launch_token_hash'))
    op.create_index('ix_api_sessions_public_id', 'api_sessions', ['public_id'], unique=True)
    op.create_index('ix_api_sessions_org_created', 'api_sessions',
                    ['organisation_id', 'created_at', 'id'])


def downgrade() -> None:
    op.drop_table('api_sessions')
    op.drop_table('api_keys')
    for table in ('exams', 'users'):
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f'ix_{table}_organisation_id')
            batch.drop_constraint(f'fk_{table}_organisation_id', type_='foreignkey')
            batch.drop_column('organisation_id')
    with op.batch_alter_table('exams') as batch:
        batch.drop_column('api_session')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('is_install_admin')
    op.drop_table('organisations')
