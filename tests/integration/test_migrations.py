"""Migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from telerad.storage.db.database import make_engine, migrate
from telerad.storage.db.tables import metadata

PG_ONLY = {"ix_patient_pid_pattern", "ix_patient_name_pattern"}


def _diff(url: str) -> list[object]:
    engine = make_engine(url)
    migrate(engine)
    migrate(engine)  # idempotent
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    # PostgreSQL-only pattern indexes live in the migration, not in the shared tables.
    return [d for d in diff if not (d[0] == "remove_index" and d[1].name in PG_ONLY)]


def test_sqlite_schema_matches_tables(tmp_path: Path) -> None:
    assert _diff(f"sqlite:///{tmp_path / 'x.sqlite'}") == []


@pytest.mark.postgres
def test_postgres_schema_matches_tables(pg_url: str) -> None:
    assert _diff(pg_url) == []
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        names = {r[0] for r in conn.exec_driver_sql("SELECT indexname FROM pg_indexes")}
    engine.dispose()
    assert names >= PG_ONLY
