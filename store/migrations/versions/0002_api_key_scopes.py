"""api key scopes: groups and tenant

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot drop columns in place, and the same script must serve PostgreSQL.
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        # The server default gives existing keys (the bootstrapped admin) an empty group list.
        batch_op.add_column(sa.Column("groups", sa.JSON(), server_default=sa.text("'[]'"), nullable=False))
        batch_op.add_column(sa.Column("tenant", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("tenant")
        batch_op.drop_column("groups")
