"""The report store's promises, on the fake, SQLite and PostgreSQL: versions kept in
order, a write on an old version refused, outbox rows only with their write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from tests.fakes.reports import FakeReports

from telerad.bootstrap import Platform
from telerad.domain import reports as r
from telerad.domain.reports import Content, Difference, ReportError, ReportStatus, VersionConflict
from telerad.services.reports import Outgoing, ReportFilter, ReportStore
from telerad.storage.db import tables as t
from telerad.storage.db.report_repository import SqlReports

NOW = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)


@pytest.fixture(params=["fake", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def setup(request: pytest.FixtureRequest) -> tuple[ReportStore, int, Platform | None]:
    if request.param == "fake":
        return FakeReports(), 1, None
    platform: Platform = request.getfixturevalue(
        "platform" if request.param == "sqlite" else "pg_platform"
    )
    facility = platform.index.add_facility("Report Clinic", "REPORTS")
    return SqlReports(platform.engine), facility.id, platform


def _content(text: str) -> Content:
    return Content(
        "ct-head", "1", {"impression": text, "findings": "Ventricles normal."}, {"bleed": "no"}
    )


def test_versions_are_kept_and_read_back_as_written(
    setup: tuple[ReportStore, int, Platform | None],
) -> None:
    store, facility, _ = setup
    draft = r.new_report("1.2.3", facility, "A1", _content(""), 7, "Night^Reader", NOW)
    stored = store.add(draft, "PID-1")
    assert stored.id is not None and stored.version == 1
    saved = r.save(
        stored, _content("No bleed — «ok»."), 1, 7, "Night^Reader", NOW + timedelta(minutes=1)
    )
    store.write(saved, 1)
    prelim = r.sign(saved, False, 2, 7, "Night^Reader", NOW + timedelta(minutes=2))
    store.write(prelim, 2)
    revised = r.save(
        prelim, _content("Small subdural."), 3, 9, "Day^Reader", NOW + timedelta(hours=6)
    )
    final = r.sign(
        revised,
        True,
        4,
        9,
        "Day^Reader",
        NOW + timedelta(hours=6, minutes=1),
        difference=Difference.MAJOR,
    )
    store.write(final, 3)
    back = store.get(stored.id)
    assert back is not None
    assert back == final and back.versions == final.versions
    assert [v.status for v in back.versions] == [
        ReportStatus.DRAFT,
        ReportStatus.DRAFT,
        ReportStatus.PRELIMINARY,
        ReportStatus.PRELIMINARY,
        ReportStatus.FINAL,
    ]
    assert back.versions[1].content.text("impression") == "No bleed — «ok»."
    assert back.versions[2].made_at == NOW + timedelta(minutes=2)
    assert (back.difference, back.preliminary_by, back.final_by) == (Difference.MAJOR, 7, 9)
    assert store.for_study("1.2.3") == [back] and store.for_study("1.2.3", "A1") == [back]
    assert store.for_study("1.2.3", "OTHER") == []
    assert store.differences(NOW) == {(7, Difference.MAJOR): 1}
    assert store.differences(NOW + timedelta(days=1)) == {}


def test_a_write_on_an_old_version_is_refused_and_changes_nothing(
    setup: tuple[ReportStore, int, Platform | None],
) -> None:
    store, facility, _ = setup
    stored = store.add(r.new_report("1.2.4", facility, "A2", _content(""), 7, "N", NOW), "PID-2")
    mine = r.save(stored, _content("Mine."), 1, 7, "N", NOW)
    theirs = r.save(stored, _content("Theirs."), 1, 8, "O", NOW)
    store.write(mine, 1)
    with pytest.raises(VersionConflict) as err:
        store.write(theirs, 1)
    assert (err.value.current, err.value.given) == (2, 1)
    back = store.get(stored.id or 0)
    assert back is not None and back.content.text("impression") == "Mine." and back.version == 2


def test_one_report_per_accession_and_listing(
    setup: tuple[ReportStore, int, Platform | None],
) -> None:
    store, facility, _ = setup
    a = store.add(r.new_report("1.2.5", facility, "A3", _content(""), 7, "N", NOW), "PID-3")
    with pytest.raises(ReportError, match="already has a report"):
        store.add(r.new_report("1.2.5", facility, "A3", _content(""), 8, "O", NOW), "PID-3")
    b = store.add(
        r.new_report("1.2.5", facility, "A4", _content(""), 7, "N", NOW + timedelta(minutes=1)),
        "PID-3",
    )
    final = r.sign(b, True, 1, 7, "N", NOW + timedelta(minutes=2))
    store.write(final, 1)
    listed = store.find(ReportFilter(facility_ids=frozenset({facility})))
    assert [s.id for s in listed] == [b.id, a.id]  # newest change first
    assert listed[0].status is ReportStatus.FINAL and listed[0].signed_at == NOW + timedelta(
        minutes=2
    )
    assert [s.id for s in store.find(ReportFilter(statuses=frozenset({ReportStatus.DRAFT})))] == [
        a.id
    ]
    assert [s.id for s in store.find(ReportFilter(patient_id="PID-3", limit=1, offset=1))] == [a.id]
    assert store.find(ReportFilter(facility_ids=frozenset({facility + 100}))) == []
    assert [s.id for s in store.find(ReportFilter(accession_number="A4"))] == [b.id]


def test_outgoing_messages_are_queued_with_their_write_only(
    setup: tuple[ReportStore, int, Platform | None],
) -> None:
    store, facility, platform = setup
    stored = store.add(r.new_report("1.2.6", facility, "A5", _content("x"), 7, "N", NOW), "PID-4")
    final = r.sign(stored, True, 1, 7, "N", NOW)
    message = Outgoing("hl7", "MSG-1", "MSH|^~\\&|...", NOW)
    other = r.save(stored, _content("y"), 1, 8, "O", NOW)
    store.write(final, 1, [message])
    with pytest.raises(VersionConflict):
        store.write(other, 1, [Outgoing("hl7", "MSG-2", "lost", NOW)])
    if platform is None:
        assert isinstance(store, FakeReports)
        assert [(i, o.message_id) for i, o in store.queued] == [(stored.id, "MSG-1")]
        return
    with platform.engine.connect() as conn:
        rows = conn.execute(
            select(t.outbox.c.message_id, t.outbox.c.report_version, t.outbox.c.state)
        ).all()
    assert [tuple(row) for row in rows] == [("MSG-1", 2, "pending")]
