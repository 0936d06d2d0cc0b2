"""handed_back: attempts a shutting-down worker handed back, not counted against the attempt limit

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 19:50:00

``attempts`` only grows (it fences every worker write), so a hand-back cannot give its attempt
back by decrementing it; the limit counts ``attempts - handed_back`` instead.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('handed_back', sa.Integer(), nullable=False, server_default='0'))


def downgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('handed_back')
