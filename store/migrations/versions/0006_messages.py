"""message subscriptions and message start events

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "message_subscriptions",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("definition_key", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("element_id", sa.String(length=255), nullable=False),
        sa.Column("message_name", sa.String(length=255), nullable=False),
        sa.Column("correlation_key", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("task_id"),
    )
    op.create_index("ix_message_subscriptions_instance", "message_subscriptions", ["instance_id"])
    op.create_index(
        "ix_message_subscriptions_name_key", "message_subscriptions", ["message_name", "correlation_key", "created_at"]
    )
    op.create_table(
        "message_start_events",
        sa.Column("definition_id", sa.Integer(), sa.ForeignKey("definitions.id"), nullable=False),
        sa.Column("message_name", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("definition_id", "message_name"),
    )
    op.create_index("ix_message_start_events_name", "message_start_events", ["message_name"])


def downgrade() -> None:
    op.drop_table("message_start_events")
    op.drop_table("message_subscriptions")
