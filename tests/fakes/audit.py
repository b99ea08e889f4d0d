"""An in-memory audit trail (the real one: storage.db.audit_repository.SqlAuditRepository).

Records are sealed into the same hash chain (``domain.audit.seal``); left out is
the serialising of appends across processes (a fake lives in one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from telerad.domain.audit import GENESIS, AuditEvent, AuditRecord, format_time, seal


class FakeAuditRepository:
    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.rows: list[AuditRecord] = []

    def append(self, event: AuditEvent) -> AuditRecord:
        previous = self.rows[-1].hash if self.rows else GENESIS
        record = seal(event, len(self.rows) + 1, previous, self.clock())
        self.rows.append(record)
        return record

    def records(self, since: datetime | None = None, batch: int = 1000) -> Iterator[AuditRecord]:
        # Times compare as text, as the real store's column does.
        after = format_time(since) if since is not None else ""
        yield from (r for r in list(self.rows) if r.time >= after)

    def count(self) -> int:
        return len(self.rows)
