"""tenant columns on everything a caller can read

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TABLES = ("definitions", "human_tasks", "incidents", "message_subscriptions", "audit_log")


def upgrade() -> None:
    # Adding a nullable column is not an UPDATE: PostgreSQL's append-only trigger on audit_log stays quiet.
    for table in _TABLES:
        op.add_column(table, sa.Column("tenant", sa.String(length=255), nullable=True))
        op.create_index(f"ix_{table}_tenant", table, ["tenant"])
    # instances are listed newest first within a tenant: the same keyset index, tenant first
    op.add_column("instances", sa.Column("tenant", sa.String(length=255), nullable=True))
    op.create_index("ix_instances_tenant_started", "instances", ["tenant", "started_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_instances_tenant_started", table_name="instances")
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("tenant")
    for table in _TABLES:
        op.drop_index(f"ix_{table}_tenant", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("tenant")
