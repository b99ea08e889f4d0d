"""Outbox delivery: claims (a lease per message being sent), refusals counted apart,
when a message was queued again, where it went, and every attempt kept.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("refusals", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("queued_at", TZ))
        batch.add_column(sa.Column("claimed_until", TZ))
        batch.add_column(sa.Column("claim", sa.String(length=32)))
        batch.add_column(
            sa.Column("destination", sa.String(length=255), nullable=False, server_default="")
        )
    op.create_table(
        "outbox_attempt",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "outbox_id",
            sa.Integer(),
            sa.ForeignKey("outbox.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("at", TZ, nullable=False),
        sa.Column("destination", sa.String(length=255), nullable=False, server_default=""),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False, server_default=""),
        sa.Column("answer", sa.Text(), nullable=False, server_default=""),
    )
    op.create_index("ix_outbox_attempt_message", "outbox_attempt", ["outbox_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_attempt_message", table_name="outbox_attempt")
    op.drop_table("outbox_attempt")
    with op.batch_alter_table("outbox") as batch:
        for name in ("destination", "claim", "claimed_until", "queued_at", "refusals"):
            batch.drop_column(name)
