"""What the study list says of each study's read: the latest worklist entry, one query."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from telerad.bootstrap import Platform
from telerad.domain.identity import Role
from telerad.domain.read_status import read_status
from telerad.domain.reading_entries import EntryChange
from telerad.workflow.model import Priority, ReadingStudy

NOW = datetime(2025, 5, 1, 12, tzinfo=UTC)


def _entry(p: Platform, uid: str, facility_id: int, **values: object) -> int:
    store = p.reading.store
    pk = store.add_entry(
        ReadingStudy(
            uid, facility_id, "US-CA", "CT", Priority.ROUTINE, NOW, NOW + timedelta(hours=1)
        )
    )
    if values:
        store.save([EntryChange(pk, values=dict(values))])
    return pk


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_each_study_shows_its_latest_read(
    engine: str, platform: Platform, request: pytest.FixtureRequest
) -> None:
    p = platform if engine == "sqlite" else request.getfixturevalue("pg_platform")
    fid = p.default_facility().id
    reed = p.auth.create_user("dr.reed", Role.RADIOLOGIST, display_name="Dr. Alex Reed")
    lee = p.auth.create_user("dr.lee", Role.RADIOLOGIST)
    _entry(p, "1.1", fid)  # waiting
    _entry(p, "1.2", fid, assigned_to=reed.id, assigned_at=NOW)
    _entry(p, "1.3", fid, assigned_to=lee.id, assigned_at=NOW, claimed_at=NOW)
    _entry(p, "1.4", fid, state="completed", completed_by=reed.id, assigned_to=None)
    # Withdrawn when more images came, then queued again: the new entry counts.
    _entry(p, "1.5", fid, state="withdrawn")
    _entry(p, "1.5", fid, assigned_to=lee.id)
    _entry(p, "1.6", fid, state="withdrawn")
    queries: list[str] = []
    event.listen(p.engine, "before_cursor_execute", lambda *a: queries.append(a[2]))
    found = p.reading.store.read_states(["1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "9.9"])
    assert len(queries) == 1
    labels = {
        uid: read_status(found.get(uid))
        for uid in ("1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "9.9")
    }
    assert labels == {
        "1.1": "waiting",
        "1.2": "assigned to Dr. Alex Reed",
        "1.3": "opened by dr.lee",
        "1.4": "read by Dr. Alex Reed",
        "1.5": "assigned to dr.lee",
        "1.6": "withdrawn",
        "9.9": "not on worklist",
    }
    assert p.reading.store.read_states([]) == {}
