"""The reading worklist: reader profiles and shifts, queue entries and their history.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)


def _user() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "user_id", sa.Integer(), sa.ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "reader_profile",
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("app_user.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("subspecialties", sa.Text(), nullable=False, server_default=""),
        sa.Column("modalities", sa.Text(), nullable=False, server_default=""),
        sa.Column(
            "read_kinds", sa.String(length=32), nullable=False, server_default="final preliminary"
        ),
        sa.Column("rvu_per_hour", sa.Float(), nullable=False, server_default="10.0"),
        sa.Column("queue_cap_rvu", sa.Float()),
        sa.Column("tz", sa.String(length=64), nullable=False, server_default="UTC"),
        sa.Column("updated_at", _TZ, nullable=False),
    )
    op.create_table(
        "reader_shift",
        sa.Column("id", sa.Integer(), primary_key=True),
        _user(),
        sa.Column("days", sa.String(length=16), nullable=False, server_default=""),
        sa.Column("start_time", sa.String(length=5), nullable=False, server_default=""),
        sa.Column("end_time", sa.String(length=5), nullable=False, server_default=""),
        sa.Column("starts_at", _TZ),
        sa.Column("ends_at", _TZ),
    )
    op.create_index("ix_reader_shift_user", "reader_shift", ["user_id"])
    op.create_table(
        "worklist_entry",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("facility_id", sa.Integer(), sa.ForeignKey("facility.id"), nullable=False),
        sa.Column("jurisdiction", sa.String(length=16), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("body_part", sa.String(length=16), nullable=False, server_default=""),
        sa.Column("subspecialty", sa.String(length=32), nullable=False, server_default=""),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("read_kind", sa.String(length=16), nullable=False),
        sa.Column("rvu", sa.Float(), nullable=False),
        sa.Column("patient_key", sa.String(length=160), nullable=False, server_default=""),
        sa.Column("prior_readers", sa.Text(), nullable=False, server_default=""),
        sa.Column("ready_at", _TZ, nullable=False),
        sa.Column("deadline", _TZ, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("assigned_to", sa.Integer()),
        sa.Column("assigned_at", _TZ),
        sa.Column("first_assigned_at", _TZ),
        sa.Column("claimed_at", _TZ),
        sa.Column("completed_at", _TZ),
        sa.Column("completed_by", sa.Integer()),
        sa.Column("breached_at", _TZ),
        sa.Column("why", sa.Text(), nullable=False, server_default=""),
        sa.Column("closed_at", _TZ),
    )
    op.create_index("ix_worklist_entry_state", "worklist_entry", ["state", "study_uid"])
    op.create_index("ix_worklist_entry_done", "worklist_entry", ["completed_at", "facility_id"])
    op.create_table(
        "worklist_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "entry_id",
            sa.Integer(),
            sa.ForeignKey("worklist_entry.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", _TZ, nullable=False),
        sa.Column("reader_id", sa.Integer()),
        sa.Column("to_reader", sa.Integer()),
        sa.Column("detail", sa.Text(), nullable=False, server_default=""),
    )
    op.create_index("ix_worklist_event_entry", "worklist_event", ["entry_id", "id"])


def downgrade() -> None:
    for name in ("worklist_event", "worklist_entry", "reader_shift", "reader_profile"):
        op.drop_table(name)
