"""Who made each instance, the acquired image count at readiness, worklist alerts.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("instance") as batch:
        batch.add_column(
            sa.Column("origin", sa.String(length=16), nullable=False, server_default="acquisition")
        )
    with op.batch_alter_table("reading_study") as batch:
        batch.add_column(sa.Column("acquired", sa.Integer(), nullable=False, server_default="0"))
    # What readiness last saw: before this revision every instance counted.
    op.execute("UPDATE reading_study SET acquired = instances")
    op.create_table(
        "worklist_alert",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "entry_id",
            sa.Integer(),
            sa.ForeignKey("worklist_entry.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("raised_at", _TZ, nullable=False),
        sa.Column("detail", sa.Text(), nullable=False, server_default=""),
        sa.Column("acknowledged_at", _TZ),
        sa.Column("acknowledged_by", sa.Integer()),
        sa.Column("cleared_at", _TZ),
    )
    op.create_index("ix_worklist_alert_entry", "worklist_alert", ["entry_id", "kind"])
    op.create_index("ix_worklist_alert_live", "worklist_alert", ["cleared_at"])


def downgrade() -> None:
    op.drop_index("ix_worklist_alert_live", table_name="worklist_alert")
    op.drop_index("ix_worklist_alert_entry", table_name="worklist_alert")
    op.drop_table("worklist_alert")
    with op.batch_alter_table("reading_study") as batch:
        batch.drop_column("acquired")
    with op.batch_alter_table("instance") as batch:
        batch.drop_column("origin")
