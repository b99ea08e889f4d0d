"""People and trust: accounts, licences, privileges, sessions, break-glass; facility
location and peer pinning.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("facility") as batch:
        for name, length in (
            ("host", 255),
            ("country", 2),
            ("state", 16),
            ("region", 32),
            ("cert_sha256", 64),
        ):
            batch.add_column(
                sa.Column(name, sa.String(length=length), nullable=False, server_default="")
            )
    with op.batch_alter_table("node") as batch:
        batch.add_column(
            sa.Column("cert_sha256", sa.String(length=64), nullable=False, server_default="")
        )
    op.create_table(
        "app_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=True),
        sa.Column("display_name", sa.String(length=255), nullable=False, server_default=""),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("totp_secret", sa.String(length=255), nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("locked_until", TZ, nullable=True),
        sa.Column("disabled", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("token_version", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("oidc_subject", sa.String(length=255), nullable=True),
        sa.Column("created_at", TZ, server_default=sa.func.now(), nullable=True),
        sa.ForeignKeyConstraint(["facility_id"], ["facility.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
        sa.UniqueConstraint("oidc_subject"),
    )
    op.create_table(
        "licence",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("jurisdiction", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "jurisdiction"),
    )
    op.create_table(
        "privilege",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["facility_id"], ["facility.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "facility_id"),
    )
    op.create_table(
        "web_session",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("last_seen", TZ, nullable=False),
        sa.Column("auth_time", TZ, nullable=False),
        sa.Column("source_address", sa.String(length=255), nullable=False, server_default=""),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("token_sha256"),
    )
    op.create_table(
        "break_glass",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("granted_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["app_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_break_glass_user", "break_glass", ["user_id", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_break_glass_user", table_name="break_glass")
    for name in ("break_glass", "web_session", "privilege", "licence", "app_user"):
        op.drop_table(name)
    with op.batch_alter_table("node") as batch:
        batch.drop_column("cert_sha256")
    with op.batch_alter_table("facility") as batch:
        for name in ("cert_sha256", "region", "state", "country", "host"):
            batch.drop_column(name)
