"""Reporting: imported templates, reports and their versions, where each facility takes
its results, and the outbox that delivers them.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "report_template",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("version", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("source_format", sa.String(length=8), nullable=False),
        sa.Column("source", sa.Text(), nullable=False, server_default=""),
        sa.Column("imported_at", TZ, nullable=False),
        sa.Column("imported_by", sa.String(length=128), nullable=False, server_default=""),
    )
    op.create_table(
        "report",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("facility_id", sa.Integer(), sa.ForeignKey("facility.id"), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("accession_number", sa.String(length=16), nullable=False, server_default=""),
        sa.Column("patient_id", sa.String(length=64), nullable=False, server_default=""),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("difference", sa.String(length=8)),
        sa.Column("preliminary_by", sa.Integer()),
        sa.Column("final_by", sa.Integer()),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("signed_at", TZ),
        sa.UniqueConstraint(
            "study_instance_uid", "accession_number", name="uq_report_study_accession"
        ),
    )
    op.create_index("ix_report_status", "report", ["status", "updated_at"])
    op.create_index("ix_report_patient", "report", ["facility_id", "patient_id"])
    op.create_table(
        "report_version",
        sa.Column(
            "report_id",
            sa.Integer(),
            sa.ForeignKey("report.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("number", sa.Integer(), primary_key=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=24), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=324), nullable=False, server_default=""),
        sa.Column("made_at", TZ, nullable=False),
        sa.Column("signed", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("addendum", sa.Text(), nullable=False, server_default=""),
        sa.Column("reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("overrides", sa.Text(), nullable=False, server_default=""),
    )
    op.create_table(
        "results_endpoint",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "facility_id",
            sa.Integer(),
            sa.ForeignKey("facility.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=False),
        sa.Column("tls", sa.Integer(), nullable=False, server_default="0"),
        sa.UniqueConstraint("facility_id", "kind", name="uq_results_endpoint_kind"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("facility_id", sa.Integer(), sa.ForeignKey("facility.id"), nullable=False),
        sa.Column("report_id", sa.Integer(), sa.ForeignKey("report.id"), nullable=False),
        sa.Column("report_version", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False, unique=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_at", TZ, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("sent_at", TZ),
        sa.Column("last_error", sa.Text(), nullable=False, server_default=""),
        sa.Column("answer", sa.Text(), nullable=False, server_default=""),
    )
    op.create_index("ix_outbox_due", "outbox", ["state", "facility_id", "channel", "id"])
    op.create_index("ix_outbox_report", "outbox", ["report_id"])


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("results_endpoint")
    op.drop_table("report_version")
    op.drop_table("report")
    op.drop_table("report_template")
