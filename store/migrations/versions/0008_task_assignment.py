"""user task assignment: assignee, candidates, priority, due date, form, escalation

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("human_tasks") as batch:
        batch.add_column(sa.Column("assignee", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="50"))
        batch.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("form", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("ui_form", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("escalated", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.create_index("ix_human_tasks_assignee", ["assignee"])
    # One row per candidate group or user: the inbox query is "open to one of my groups", an indexed
    # join on both SQLite and PostgreSQL, where a JSON list column would need per-dialect operators.
    op.create_table(
        "human_task_candidates",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),  # group | user
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "kind", "name"),
    )
    op.create_index("ix_human_task_candidates_name", "human_task_candidates", ["kind", "name"])


def downgrade() -> None:
    op.drop_table("human_task_candidates")
    with op.batch_alter_table("human_tasks") as batch:
        batch.drop_index("ix_human_tasks_assignee")
        for column in ("escalated", "ui_form", "form", "due_at", "priority", "assignee"):
            batch.drop_column(column)
