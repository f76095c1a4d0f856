"""signal subscriptions and signal start events

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # an element waiting for a signal is a subscription too: one table, told apart by kind
    with op.batch_alter_table("message_subscriptions") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=16), nullable=False, server_default="message"))
    op.create_index("ix_message_subscriptions_kind_name", "message_subscriptions", ["kind", "message_name"])
    op.create_table(
        "signal_start_events",
        sa.Column("definition_id", sa.Integer(), sa.ForeignKey("definitions.id"), nullable=False),
        sa.Column("signal_name", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("definition_id", "signal_name"),
    )
    op.create_index("ix_signal_start_events_name", "signal_start_events", ["signal_name"])


def downgrade() -> None:
    op.drop_table("signal_start_events")
    op.drop_index("ix_message_subscriptions_kind_name", "message_subscriptions")
    with op.batch_alter_table("message_subscriptions") as batch:
        batch.drop_column("kind")
