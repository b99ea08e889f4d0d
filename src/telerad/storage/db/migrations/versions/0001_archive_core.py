"""Archive core: facilities, nodes, patients, studies, series, instances.

Revision ID: 0001
Revises:
"""

from alembic import op

from telerad.storage.db.tables import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    metadata.create_all(bind)
    if bind.dialect.name == "postgresql":
        # Prefix LIKE (wildcard queries) needs pattern ops under non-C collations.
        op.execute(
            "CREATE INDEX IF NOT EXISTS ix_patient_pid_pattern "
            "ON patient (patient_id text_pattern_ops)"
        )
        op.execute(
            "CREATE INDEX IF NOT EXISTS ix_patient_name_pattern "
            "ON patient (patient_name_norm text_pattern_ops)"
        )


def downgrade() -> None:
    metadata.drop_all(op.get_bind())
