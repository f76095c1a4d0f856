"""instance status and list indexes

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("status", sa.String(length=16), nullable=False, server_default="running"))
        batch.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_instances_started", "instances", ["started_at", "id"])
    op.create_index("ix_instances_status_started", "instances", ["status", "started_at"])
    op.create_index("ix_instances_key_version_started", "instances", ["definition_key", "version", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_instances_key_version_started", table_name="instances")
    op.drop_index("ix_instances_status_started", table_name="instances")
    op.drop_index("ix_instances_started", table_name="instances")
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("closed_at")
        batch.drop_column("status")
