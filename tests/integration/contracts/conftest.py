"""The stores of a platform three ways — in-memory fakes, SQL on SQLite, SQL on
PostgreSQL — so each contract test asserts the same of all of them and the fakes
the unit tests run on cannot drift from the stores they stand in for."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.fakes.common import Clock
from tests.fakes.world import Stores, fake_stores

from telerad.bootstrap import Platform
from telerad.storage.blobs.filesystem import FileBlobStore
from telerad.storage.db.audit_repository import SqlAuditRepository
from telerad.storage.db.identity_repository import SqlIdentity
from telerad.storage.db.index_repository import SqlIndex
from telerad.storage.db.order_repository import SqlOrders
from telerad.storage.db.reading_repository import SqlReading
from telerad.storage.db.reconcile_repository import SqlReadingStates
from telerad.storage.db.template_repository import SqlTemplates


@pytest.fixture
def clock() -> Clock:
    # The database stamps studies with its own clock: the fakes' starts there too.
    return Clock(datetime.now(UTC))


def sql_stores(platform: Platform, clock: Clock, blob_dir: Path) -> Stores:
    """The real stores over the platform's database (and files for blobs)."""
    engine = platform.engine
    return Stores(
        index=SqlIndex(engine),
        blobs=FileBlobStore(blob_dir, fsync=False),
        identity=SqlIdentity(engine),
        audit=SqlAuditRepository(engine, clock),
        orders=SqlOrders(engine),
        reading=SqlReading(engine),
        states=SqlReadingStates(engine),
        templates=SqlTemplates(engine),
    )


@pytest.fixture(params=["fake", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stores(request: pytest.FixtureRequest, clock: Clock, tmp_path: Path) -> Stores:
    """The same stores, fake or SQL: every contract test runs once on each."""
    if request.param == "fake":
        return fake_stores(clock)
    name = "platform" if request.param == "sqlite" else "pg_platform"
    platform: Platform = request.getfixturevalue(name)
    return sql_stores(platform, clock, tmp_path / "blobs")
