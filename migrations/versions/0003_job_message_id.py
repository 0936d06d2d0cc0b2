"""message_id: the Dramatiq message id of a queued job's latest message

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 19:10:00

The sweep asks the message tracker whether this message is still somewhere in the broker before it
sends the job again, so a backlog no longer earns duplicate messages.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('message_id', sa.String(length=36), nullable=True))


def downgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('message_id')
