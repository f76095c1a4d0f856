"""instances started by a call activity name their caller

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("parent_element_id", sa.String(length=255), nullable=True))
        batch.create_index("ix_instances_parent_id", ["parent_id"])


def downgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.drop_index("ix_instances_parent_id")
        batch.drop_column("parent_element_id")
        batch.drop_column("parent_id")
