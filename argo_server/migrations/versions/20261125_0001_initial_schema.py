"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 16:58:47.995103
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Applies this revision."""

    op.create_table('job_events',
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('time', sa.BigInteger(), nullable=False),
    sa.Column('job_state', sa.Integer(), nullable=False),
    sa.Column('step_index', sa.Integer(), nullable=False),
    sa.Column('previous_step_state', sa.Integer(), nullable=False),
    sa.Column('step_state', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('site', sa.String(length=128), nullable=False),
    sa.Column('scheduler_id', sa.String(length=255), nullable=False),
    sa.Column('exit_code', sa.Integer(), nullable=True),
    sa.Column('failed_phase', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_job_events'))
    )
    with op.batch_alter_table('job_events', schema=None) as batch_op:
        batch_op.create_index('ix_job_events_job_id_event_id', ['job_id', 'event_id'], unique=False)

    op.create_table('job_sites',
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('site', sa.String(length=128), nullable=False),
    sa.Column('state', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('job_id', 'site', name=op.f('pk_job_sites'))
    )
    with op.batch_alter_table('job_sites', schema=None) as batch_op:
        batch_op.create_index('ix_job_sites_site_job_id', ['site', 'job_id'], unique=False)
        batch_op.create_index('ix_job_sites_site_state_job_id', ['site', 'state', 'job_id'], unique=False)

    op.create_table('jobs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=False),
    sa.Column('group_identifier', sa.String(length=255), nullable=False),
    sa.Column('email_address', sa.String(length=320), nullable=False),
    sa.Column('spec', sa.LargeBinary().with_variant(mysql.LONGBLOB(), 'mariadb').with_variant(mysql.LONGBLOB(), 'mysql'), nullable=False),
    sa.Column('step_count', sa.Integer(), nullable=False),
    sa.Column('state', sa.Integer(), nullable=False),
    sa.Column('state_reason', sa.Text(), nullable=False),
    sa.Column('current_step', sa.Integer(), nullable=False),
    sa.Column('create_time', sa.BigInteger(), nullable=False),
    sa.Column('update_time', sa.BigInteger(), nullable=False),
    sa.Column('end_time', sa.BigInteger(), nullable=True),
    sa.Column('data_url', sa.Text(), nullable=False),
    sa.Column('request_id', sa.String(length=128), nullable=True),
    sa.Column('request_digest', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
    sa.UniqueConstraint('request_id', name=op.f('uq_jobs_request_id'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_group_identifier_id', ['group_identifier', 'id'], unique=False)
        batch_op.create_index('ix_jobs_owner_id', ['owner', 'id'], unique=False)
        batch_op.create_index('ix_jobs_state_id', ['state', 'id'], unique=False)

    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('site', sa.String(length=128), nullable=False),
    sa.Column('step_id', sa.String(length=64), nullable=False),
    sa.Column('message_type', sa.String(length=128), nullable=False),
    sa.Column('body', sa.LargeBinary().with_variant(mysql.LONGBLOB(), 'mariadb').with_variant(mysql.LONGBLOB(), 'mysql'), nullable=False),
    sa.Column('trace_headers', sa.Text(), nullable=False),
    sa.Column('create_time', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox'))
    )
    op.create_table('sites',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('last_heartbeat_time', sa.BigInteger(), nullable=False),
    sa.Column('stopping', sa.Boolean(), nullable=False),
    sa.Column('heartbeat', sa.LargeBinary().with_variant(mysql.LONGBLOB(), 'mariadb').with_variant(mysql.LONGBLOB(), 'mysql'), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_sites'))
    )
    op.create_table('steps',
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('target_site', sa.String(length=128), nullable=False),
    sa.Column('spec', sa.LargeBinary().with_variant(mysql.LONGBLOB(), 'mariadb').with_variant(mysql.LONGBLOB(), 'mysql'), nullable=False),
    sa.Column('state', sa.Integer(), nullable=False),
    sa.Column('state_reason', sa.Text(), nullable=False),
    sa.Column('failed_phase', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('report_sequence', sa.BigInteger(), nullable=False),
    sa.Column('envelope_sequence', sa.BigInteger(), nullable=False),
    sa.Column('scheduler_id', sa.String(length=255), nullable=False),
    sa.Column('exit_code', sa.Integer(), nullable=True),
    sa.Column('dispatch_time', sa.BigInteger(), nullable=True),
    sa.Column('start_time', sa.BigInteger(), nullable=True),
    sa.Column('end_time', sa.BigInteger(), nullable=True),
    sa.Column('update_time', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('job_id', 'index', name=op.f('pk_steps'))
    )



def downgrade() -> None:
    """Reverts this revision."""

    op.drop_table('steps')
    op.drop_table('sites')
    op.drop_table('outbox')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_state_id')
        batch_op.drop_index('ix_jobs_owner_id')
        batch_op.drop_index('ix_jobs_group_identifier_id')

    op.drop_table('jobs')
    with op.batch_alter_table('job_sites', schema=None) as batch_op:
        batch_op.drop_index('ix_job_sites_site_state_job_id')
        batch_op.drop_index('ix_job_sites_site_job_id')

    op.drop_table('job_sites')
    with op.batch_alter_table('job_events', schema=None) as batch_op:
        batch_op.drop_index('ix_job_events_job_id_event_id')

    op.drop_table('job_events')

