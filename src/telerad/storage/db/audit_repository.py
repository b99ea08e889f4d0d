"""The audit trail's store: append and read, nothing else (no update, no delete).

Appends are serialised so the chain never forks: on PostgreSQL a transaction-level
advisory lock (it also covers the empty table, where there is no last row to lock);
on SQLite a process lock plus ``BEGIN IMMEDIATE``, which takes the database's write
lock before the last hash is read, so other processes (the CLI beside a running
server) wait too. The primary key on the sequence number is the last guard: a fork
would fail to commit rather than be stored. Inside a unit of work
(:mod:`~telerad.storage.db.unit_of_work`) a record is appended in the unit's
transaction: it is kept, or undone, with the writes it records; the advisory lock
(PostgreSQL) and the write lock (SQLite) are then held until the unit ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, RowMapping, func, select

from telerad.domain.audit import GENESIS, AuditEvent, AuditRecord, format_time, seal
from telerad.storage.db.tables import audit_record as t
from telerad.storage.db.unit_of_work import joined, reading

# An arbitrary constant naming the audit append lock among PostgreSQL advisory locks.
PG_LOCK_KEY = 0x7E1E_AD17
COLUMNS = (
    t.c.sequence,
    t.c.time,
    t.c.event_id,
    t.c.action,
    t.c.outcome,
    t.c.actor_id,
    t.c.actor_role,
    t.c.actor_is_user,
    t.c.source_address,
    t.c.patient_id,
    t.c.study_uid,
    t.c.facility,
    t.c.detail,
    t.c.hash,
)


def _now() -> datetime:
    return datetime.now(UTC)


class SqlAuditRepository:
    def __init__(self, engine: Engine, clock: Callable[[], datetime] = _now) -> None:
        self.engine = engine
        self.clock = clock
        self._sqlite = engine.dialect.name == "sqlite"
        self._lock = threading.Lock()

    def append(self, event: AuditEvent) -> AuditRecord:
        """Seal ``event`` after the last record and store it, atomically (in the unit of
        work open on this thread, if any: kept or undone with the rest of it)."""
        unit = joined(self.engine)
        if unit is not None:
            # The unit holds SQLite's write lock already (BEGIN IMMEDIATE), so no other
            # append can run beside it, and the process lock must not be waited for: its
            # holder may be waiting for this very transaction.
            if not self._sqlite:
                unit.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_LOCK_KEY})")
            with unit.begin_nested():
                return self._append(unit, event)
        with self._lock, self.engine.connect() as conn:
            if self._sqlite:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_LOCK_KEY})")
            try:
                record = self._append(conn, event)
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
        return record

    def _append(self, conn: Connection, event: AuditEvent) -> AuditRecord:
        last = conn.execute(
            select(t.c.sequence, t.c.hash).order_by(t.c.sequence.desc()).limit(1)
        ).first()
        sequence, previous = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS)
        record = seal(event, sequence, previous, self.clock())
        conn.execute(t.insert().values(**_row(record)))
        return record

    def records(self, since: datetime | None = None, batch: int = 1000) -> Iterator[AuditRecord]:
        """Every record in sequence order (from ``since`` on, if given), read in batches."""
        after = 0
        while True:
            query = select(*COLUMNS).where(t.c.sequence > after)
            if since is not None:
                query = query.where(t.c.time >= format_time(since))
            query = query.order_by(t.c.sequence).limit(batch)
            with reading(self.engine) as conn:
                rows = conn.execute(query).mappings().all()
            for row in rows:
                yield _record(row)
            if len(rows) < batch:
                return
            after = int(rows[-1]["sequence"])

    def count(self) -> int:
        with reading(self.engine) as conn:
            return int(conn.execute(select(func.count()).select_from(t)).scalar_one())


def _row(record: AuditRecord) -> dict[str, object]:
    return {
        "sequence": record.sequence,
        "time": record.time,
        "event_id": record.event_id,
        "action": record.action,
        "outcome": record.outcome,
        "actor_id": record.actor_id,
        "actor_role": record.actor_role,
        "actor_is_user": int(record.actor_is_user),
        "source_address": record.source_address,
        "patient_id": record.patient_id,
        "study_uid": record.study_uid,
        "facility": record.facility,
        "detail": record.detail,
        "hash": record.hash,
    }


def _record(m: RowMapping) -> AuditRecord:
    return AuditRecord(
        sequence=int(m["sequence"]),
        time=str(m["time"]),
        event_id=str(m["event_id"]),
        action=str(m["action"]),
        outcome=int(m["outcome"]),
        actor_id=str(m["actor_id"]),
        actor_role=str(m["actor_role"]),
        actor_is_user=bool(m["actor_is_user"]),
        source_address=str(m["source_address"]),
        patient_id=str(m["patient_id"]),
        study_uid=str(m["study_uid"]),
        facility=str(m["facility"]),
        detail=str(m["detail"]),
        hash=str(m["hash"]),
    )
