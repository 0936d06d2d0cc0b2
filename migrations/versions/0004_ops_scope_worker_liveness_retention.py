"""Operations: api_keys.scope, worker_processes (liveness), an index for the retention purge

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 19:35:00

Existing keys keep working as job keys (scope "jobs"). worker_processes holds one row per live
worker process, beaten every HEARTBEAT_INTERVAL_S. ix_jobs_finished_at lets the purge find old
finished jobs without scanning the table.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scope', sa.String(length=16), nullable=False, server_default='jobs'))
    op.create_table(
        'worker_processes',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('hostname', sa.String(length=255), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('beat_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('running_jobs', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_worker_processes')),
    )
    with op.batch_alter_table('worker_processes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_worker_processes_beat_at'), ['beat_at'], unique=False)
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_finished_at'), ['finished_at'], unique=False)


def downgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_finished_at'))
    with op.batch_alter_table('worker_processes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_worker_processes_beat_at'))
    op.drop_table('worker_processes')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_column('scope')
