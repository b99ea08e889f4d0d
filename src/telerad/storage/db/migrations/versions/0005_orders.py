"""Orders (RIS), scheduling, performed procedure steps, reconciliation and readiness.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TZ = sa.DateTime(timezone=True)


def _text(name: str, length: int) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.String(length=length), nullable=False, server_default="")


def upgrade() -> None:
    op.create_table(
        "imaging_order",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("facility_id", sa.Integer(), sa.ForeignKey("facility.id"), nullable=False),
        sa.Column("accession_number", sa.String(length=16), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        _text("patient_name", 324),
        _text("birth_date", 8),
        _text("sex", 16),
        sa.Column("procedure_code", sa.String(length=64), nullable=False),
        _text("procedure_description", 128),
        _text("coding_scheme", 16),
        _text("modality", 16),
        _text("body_part", 16),
        sa.Column("rvu", sa.Float(), nullable=False, server_default="1.0"),
        _text("subspecialty", 32),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _text("placer_order_number", 64),
        _text("filler_order_number", 64),
        sa.Column("reason", sa.Text(), nullable=False, server_default=""),
        _text("ordering_physician", 324),
        sa.Column("scheduled_at", _TZ),
        _text("station_ae", 16),
        _text("requested_procedure_id", 16),
        _text("requested_study_uid", 64),
        _text("study_instance_uid", 64),
        _text("mpps_status", 16),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
        sa.UniqueConstraint("facility_id", "accession_number", name="uq_order_facility_accession"),
    )
    op.create_index("ix_order_study", "imaging_order", ["study_instance_uid"])
    op.create_index("ix_order_patient", "imaging_order", ["facility_id", "patient_id"])
    op.create_index("ix_order_status_scheduled", "imaging_order", ["status", "scheduled_at"])
    op.create_table(
        "order_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "order_id",
            sa.Integer(),
            sa.ForeignKey("imaging_order.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("time", _TZ, nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        _text("detail", 255),
    )
    op.create_index("ix_order_event_order", "order_event", ["order_id", "id"])
    op.create_table(
        "station",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("facility_id", sa.Integer(), sa.ForeignKey("facility.id"), nullable=False),
        sa.Column("ae_title", sa.String(length=16), nullable=False, unique=True),
        sa.Column("modality", sa.String(length=16), nullable=False),
        _text("name", 64),
    )
    op.create_table(
        "slot",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "station_id",
            sa.Integer(),
            sa.ForeignKey("station.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("start", _TZ, nullable=False),
        sa.Column("end", _TZ, nullable=False),
        sa.Column(
            "order_id",
            sa.Integer(),
            sa.ForeignKey("imaging_order.id", ondelete="SET NULL"),
            unique=True,
        ),
        sa.UniqueConstraint("station_id", "start", name="uq_slot_station_start"),
    )
    op.create_table(
        "mpps",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False, unique=True),
        sa.Column("facility_id", sa.Integer(), sa.ForeignKey("facility.id"), nullable=False),
        sa.Column("order_id", sa.Integer(), sa.ForeignKey("imaging_order.id", ondelete="SET NULL")),
        sa.Column("status", sa.String(length=16), nullable=False),
        _text("study_instance_uid", 64),
        sa.Column("json", sa.Text(), nullable=False),
        sa.Column("updated_at", _TZ, nullable=False),
    )
    op.create_index("ix_mpps_study", "mpps", ["study_instance_uid"])
    op.create_table(
        "reading_study",
        sa.Column(
            "study_pk",
            sa.Integer(),
            sa.ForeignKey("study.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("facility_id", sa.Integer(), sa.ForeignKey("facility.id"), nullable=False),
        sa.Column("order_id", sa.Integer(), sa.ForeignKey("imaging_order.id", ondelete="SET NULL")),
        _text("matched_by", 32),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("problems", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("instances", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_change", _TZ, nullable=False),
        sa.Column("ready_at", _TZ),
        _text("released_as", 16),
    )
    op.create_index("ix_reading_study_state", "reading_study", ["state", "facility_id"])


def downgrade() -> None:
    for name in ("reading_study", "mpps", "slot", "station", "order_event", "imaging_order"):
        op.drop_table(name)
