"""which expression language a definition's Camunda 8 `=` expressions are in

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Versions deployed before FEEL was read were checked as Python: they keep that meaning (false);
    # every deploy from now on writes true.
    with op.batch_alter_table("definitions") as batch:
        batch.add_column(sa.Column("feel", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("definitions") as batch:
        batch.drop_column("feel")
