"""Wiring: settings → engine → index, blob store, archive. The only place adapters meet."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine

from telerad.config import Settings
from telerad.domain.model import Facility
from telerad.services.archive import Archive
from telerad.services.audit import AuditService
from telerad.services.recovery import SLACK_SECONDS, recover, recover_incomplete
from telerad.storage.blobs.filesystem import FileBlobStore
from telerad.storage.db.audit_repository import SqlAuditRepository
from telerad.storage.db.engine import make_engine, migrate, sqlite_path
from telerad.storage.db.repository import SqlIndex
from telerad.storage.db.syncer import IndexSyncer, claim, release


@dataclass
class Platform:
    settings: Settings
    engine: Engine
    index: SqlIndex
    blobs: FileBlobStore
    archive: Archive
    audit: AuditService
    listeners: dict[str, bool] = field(default_factory=dict)
    syncer: IndexSyncer | None = None

    def default_facility(self) -> Facility:
        name = self.settings.default_facility
        facility = self.index.facility_by_name(name)
        if facility is None:
            try:
                facility = self.index.add_facility(name)
            except Exception:  # created concurrently
                facility = self.index.facility_by_name(name)
        assert facility is not None
        return facility

    def facility_for_ae(self, calling_ae: str) -> Facility:
        """The facility a DIMSE peer sends for: its own AE title, its node, or the default."""
        calling_ae = calling_ae.strip()
        facility = self.index.facility_by_ae(calling_ae)
        if facility is not None:
            return facility
        node = self.index.node_by_ae(calling_ae)
        if node is not None and node.facility_id is not None:
            found = self.index.facility_by_id(node.facility_id)
            if found is not None:
                return found
        return self.default_facility()

    @property
    def ready(self) -> bool:
        return bool(self.listeners) and all(self.listeners.values())

    def close(self) -> None:
        if self.syncer is not None:
            self.syncer.stop()
        self.blobs.close()
        self.engine.dispose()
        release(self.settings.data_dir)


def bootstrap(settings: Settings | None = None) -> Platform:
    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url
    engine = make_engine(url)
    migrate(engine)
    index = SqlIndex(engine)
    blobs = FileBlobStore(
        settings.blob_dir, fsync=settings.fsync, spare_dir=settings.data_dir / "incoming"
    )
    run = claim(settings.data_dir)
    database = sqlite_path(url)
    if run.unclean_since is not None and not run.shared:
        # A crash may have lost renames (fsynced temporary files remain) and,
        # with SQLite, the index's last commits: catch up from the blobs.
        recover_incomplete(index, blobs, blobs.incomplete())
        if database is not None:
            recover(index, blobs, blobs.written_since(run.unclean_since - SLACK_SECONDS))
    syncer = IndexSyncer(engine if database else None, settings.data_dir, blobs.sync_directories)
    syncer.start()
    audit = AuditService(SqlAuditRepository(engine))
    archive = Archive(index, blobs)
    return Platform(settings, engine, index, blobs, archive, audit, syncer=syncer)
