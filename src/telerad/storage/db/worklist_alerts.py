"""The supervisor's alerts on worklist entries (``worklist_alert``), for SqlReading.

One live alert (``cleared_at`` NULL) per entry and kind: raising it again while it
is live changes nothing; clearing sets ``cleared_at``. Acknowledging records who
saw it and when; the alert stays live until its cause goes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, select, update

from telerad.domain.reading_entries import AlertChange, AlertKind, AlertRow
from telerad.storage.db import tables as t
from telerad.storage.db.times import utc
from telerad.storage.db.unit_of_work import reading, writing
from telerad.workflow.model import Priority

_A, _E = t.worklist_alert, t.worklist_entry


def apply_alert_changes(conn: Connection, entry_id: int, changes: Sequence[AlertChange]) -> None:
    """Raise and clear the entry's alerts, in order, inside the caller's transaction."""
    for change in changes:
        live = and_(_A.c.entry_id == entry_id, _A.c.cleared_at.is_(None))
        if change.raise_kind is not None:
            kind = change.raise_kind.value
            exists = conn.execute(select(_A.c.id).where(live, _A.c.kind == kind)).first()
            if exists is None:
                conn.execute(
                    insert(_A).values(
                        entry_id=entry_id, kind=kind, raised_at=change.at, detail=change.detail
                    )
                )
        if change.clear is None or change.clear:
            where: Any = live
            if change.clear is not None:
                where = and_(live, _A.c.kind.in_(sorted(k.value for k in change.clear)))
            conn.execute(update(_A).where(where).values(cleared_at=change.at))


def _query(where: Any) -> Any:
    return (
        select(_A, _E.c.study_uid, _E.c.facility_id, _E.c.priority)
        .select_from(_A.join(_E, _E.c.id == _A.c.entry_id))
        .where(where)
        .order_by(_A.c.id)
    )


def _scoped(where: Any, facility_ids: frozenset[int] | None) -> Any:
    if facility_ids is None:
        return where
    return and_(where, _E.c.facility_id.in_(sorted(facility_ids)))


def _row(r: Any) -> AlertRow:
    raised = utc(r.raised_at)
    assert raised is not None
    return AlertRow(
        id=r.id,
        entry_id=r.entry_id,
        study_uid=r.study_uid,
        facility_id=r.facility_id,
        priority=Priority(r.priority),
        kind=AlertKind(r.kind),
        raised_at=raised,
        detail=r.detail,
        acknowledged_at=utc(r.acknowledged_at),
        acknowledged_by=r.acknowledged_by,
    )


def live_alerts(engine: Engine, facility_ids: frozenset[int] | None) -> list[AlertRow]:
    with reading(engine) as conn:
        rows = conn.execute(_query(_scoped(_A.c.cleared_at.is_(None), facility_ids))).all()
    return [_row(r) for r in rows]


def acknowledge_alert(
    engine: Engine, alert_id: int, user_id: int, at: datetime, facility_ids: frozenset[int] | None
) -> AlertRow | None:
    where = _scoped(and_(_A.c.id == alert_id, _A.c.cleared_at.is_(None)), facility_ids)
    with writing(engine) as conn:
        found = conn.execute(_query(where)).first()
        if found is None:
            return None
        if found.acknowledged_at is None:
            conn.execute(
                update(_A)
                .where(_A.c.id == alert_id)
                .values(acknowledged_at=at, acknowledged_by=user_id)
            )
        row = conn.execute(_query(_A.c.id == alert_id)).one()
    return _row(row)
