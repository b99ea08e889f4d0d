"""Orders kept in the real index (SQLite and PostgreSQL) through the OrderService."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from telerad.bootstrap import Platform
from telerad.domain.audit import EventID
from telerad.domain.orders import (
    Order,
    OrderError,
    OrderEvent,
    OrderFilter,
    OrderStatus,
    PatientDemographics,
)
from telerad.services.orders import Origin

RIS = Origin("HL7", "EPIC", "10.0.0.5")
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_platform(request: pytest.FixtureRequest) -> Platform:
    name = "platform" if request.param == "sqlite" else "pg_platform"
    platform: Platform = request.getfixturevalue(name)
    return platform


def new_order(p: Platform, accession: str = "ACC1", patient_id: str = "P1", **kw: object) -> Order:
    facility = p.default_facility()
    values: dict[str, object] = {
        "facility_id": facility.id,
        "accession_number": accession,
        "patient": PatientDemographics(patient_id, "Doe^Jane", "19800101", "F"),
        "procedure": p.orders.catalogue.resolve("70450"),
        "reason": "headache",
    }
    values.update(kw)
    return Order(**values)  # type: ignore[arg-type]


def test_an_order_round_trips_with_every_field(any_platform: Platform) -> None:
    p = any_platform
    order = new_order(
        p,
        placer_order_number="PL-1",
        filler_order_number="FI-1",
        ordering_physician="House^Gregory",
        scheduled_at=T0,
        station_ae="CT01",
        requested_procedure_id="RP1",
        requested_study_uid="1.2.3.4",
    )
    stored = p.orders.place(order, RIS)
    assert stored.id is not None
    again = p.orders.get(stored.id)
    assert again is not None
    assert replace(again, created_at=None, updated_at=None, id=None) == order
    assert again.scheduled_at == T0 and again.scheduled_at.tzinfo is not None
    assert p.orders.by_accession(order.facility_id, "ACC1") == again
    assert again.study_instance_uid == ""  # until a study is matched


def test_a_duplicate_accession_is_refused_and_a_resend_revises(any_platform: Platform) -> None:
    p = any_platform
    p.orders.place(new_order(p), RIS)
    with pytest.raises(OrderError, match="already has an order"):
        p.orders.place(new_order(p), RIS)
    resent = p.orders.place_or_revise(new_order(p, reason="worse headache"), RIS)
    assert resent.reason == "worse headache"
    assert p.orders.store.count() == 1
    assert [h.event for h in p.orders.history(resent)] == ["placed", "revised"]


def test_steps_cancel_and_history_are_audited(any_platform: Platform) -> None:
    p = any_platform
    order = p.orders.place(new_order(p), RIS)
    started = p.orders.step(order, OrderEvent.START, Origin("MPPS", "CT01"), "IN PROGRESS")
    assert (started.status, started.mpps_status) == (OrderStatus.IN_PROGRESS, "IN PROGRESS")
    with pytest.raises(OrderError, match="in_progress cannot cancel"):
        p.orders.cancel(started, RIS)
    assert p.orders.get(order.id or 0) == started  # nothing changed by the refusal
    other = p.orders.place(new_order(p, "ACC2"), RIS)
    cancelled = p.orders.cancel(other, RIS, "patient declined")
    assert cancelled.status == OrderStatus.CANCELLED
    assert "patient declined" in p.orders.history(cancelled)[-1].detail
    events = [r.event for r in p.audit.repository.records()]
    assert events.count(EventID.ORDER_RECORD) >= 3
    assert EventID.PROCEDURE_RECORD in events


def test_find_filters_and_scopes_by_facility(any_platform: Platform) -> None:
    p = any_platform
    other = p.index.add_facility("OTHER")
    p.orders.place(new_order(p, "A1"), RIS)
    p.orders.place(new_order(p, "A2", "P2", scheduled_at=T0, status=OrderStatus.SCHEDULED), RIS)
    p.orders.place(replace(new_order(p, "A1"), facility_id=other.id), RIS)
    mine = frozenset({p.default_facility().id})
    assert [o.accession_number for o in p.orders.find(OrderFilter(facility_ids=mine))] == [
        "A1",
        "A2",
    ]
    found = p.orders.find(OrderFilter(accession_number="A1"))
    assert {o.facility_id for o in found} == {p.default_facility().id, other.id}
    scheduled = p.orders.find(
        OrderFilter(
            statuses=frozenset({OrderStatus.SCHEDULED}),
            scheduled_from=T0 - timedelta(hours=1),
            scheduled_to=T0 + timedelta(hours=1),
        )
    )
    assert [o.accession_number for o in scheduled] == ["A2"]
    assert p.orders.get(found[0].id or 0, frozenset({-1})) is None


def test_adt_update_and_merge(any_platform: Platform) -> None:
    p = any_platform
    fid = p.default_facility().id
    p.orders.place(new_order(p, "A1", "OLD1"), RIS)
    p.orders.place(new_order(p, "A2", "OLD2"), RIS)
    p.orders.place(new_order(p, "A3", "KEEP"), RIS)
    changed = p.orders.update_patient(fid, PatientDemographics("OLD1", "Roe^Jane"), RIS)
    assert changed == 1
    a1 = p.orders.by_accession(fid, "A1")
    assert a1 is not None and a1.patient.name == "Roe^Jane"
    assert a1.patient.birth_date == "19800101"  # a field the ADT left out is not erased
    moved = p.orders.merge_patient(fid, ["OLD1", "OLD2"], PatientDemographics("KEEP"), RIS)
    assert moved == 2
    ids = {o.patient.patient_id for o in p.orders.find(OrderFilter(facility_ids=frozenset({fid})))}
    assert ids == {"KEEP"}
    with pytest.raises(OrderError, match="itself"):
        p.orders.merge_patient(fid, ["KEEP"], PatientDemographics("KEEP"), RIS)


def test_scheduling_books_one_order_per_slot(any_platform: Platform) -> None:
    p = any_platform
    fid = p.default_facility().id
    store = p.orders.store
    station = store.add_station(fid, "CT01", "CT", "CT room 1")
    mr = store.add_station(fid, "MR01", "MR")
    spans = [
        (T0 + timedelta(minutes=30 * i), T0 + timedelta(minutes=30 * (i + 1))) for i in range(4)
    ]
    assert store.add_slots(station.id, spans) == 4
    assert store.add_slots(station.id, spans) == 0  # opening them again keeps them
    slots = store.slots(station.id, T0, T0 + timedelta(hours=2))
    first, second = p.orders.place(new_order(p, "A1"), RIS), p.orders.place(new_order(p, "A2"), RIS)
    booked = p.orders.schedule(first, slots[1].id, station, RIS)
    assert (booked.status, booked.scheduled_at, booked.station_ae) == (
        OrderStatus.SCHEDULED,
        slots[1].start,
        "CT01",
    )
    with pytest.raises(OrderError, match="already booked"):
        p.orders.schedule(second, slots[1].id, station, RIS)
    with pytest.raises(OrderError, match="needs CT"):
        p.orders.schedule(second, slots[2].id, mr, RIS)
    moved = p.orders.schedule(booked, slots[3].id, station, RIS)  # rescheduled: old slot freed
    free = [
        s.id for s in store.slots(station.id, T0, T0 + timedelta(hours=2)) if s.order_id is None
    ]
    assert slots[1].id in free and moved.scheduled_at == slots[3].start
    p.orders.cancel(moved, RIS)
    assert all(s.order_id is None for s in store.slots(station.id, T0, T0 + timedelta(hours=2)))


def test_adt_reaches_the_archive_index(any_platform: Platform) -> None:
    """A08 renames the patient in searches; A40 moves the prior identifier's studies."""
    from telerad.domain.model import Level
    from telerad.domain.query import Exact, Query, Wildcard
    from telerad.synthetic import StudySpec, ct_series, to_bytes

    p = any_platform
    fid = p.default_facility().id
    old = StudySpec(patient_id="OLD1", patient_name="SMITH^JO")
    keep = StudySpec(patient_id="KEEP", patient_name="SMITH^JOANNA")
    for spec in (old, keep):
        assert p.archive.store(fid, to_bytes(next(ct_series(spec, 1, 8, 8)))).ok

    def studies(**matches: object) -> set[str]:
        found = p.archive.search(Query(Level.STUDY, matches=matches))  # type: ignore[arg-type]
        return {str(s["StudyInstanceUID"]) for s in found}

    p.orders.update_patient(fid, PatientDemographics("OLD1", "JONES^JO"), RIS)
    assert studies(PatientName=Wildcard("JONES*")) == {old.study_uid}
    p.orders.merge_patient(fid, ["OLD1"], PatientDemographics("KEEP"), RIS)
    assert studies(PatientID=Exact("KEEP")) == {old.study_uid, keep.study_uid}
    assert studies(PatientID=Exact("OLD1")) == set()
    # New instances may still arrive under the prior identifier: they are kept.
    late = StudySpec(patient_id="OLD1", patient_name="JONES^JO")
    assert p.archive.store(fid, to_bytes(next(ct_series(late, 1, 8, 8)))).ok
    assert studies(PatientID=Exact("OLD1")) == {late.study_uid}
