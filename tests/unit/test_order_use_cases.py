"""Order use cases (services/orders.py) over fake stores: place, resend, revise, cancel,
schedule, steps, the requested study UID, matching, patient updates and merges —
each with its history and its audit record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from tests.fakes.orders import FakeOrders
from tests.fakes.world import World, world

from telerad.domain.audit import Action, AuditRecord, EventID
from telerad.domain.orders import (
    Order,
    OrderError,
    OrderEvent,
    OrderFilter,
    OrderStatus,
    PatientDemographics,
)
from telerad.domain.readiness import StudyFacts
from telerad.services.orders import OrderService, Origin
from telerad.workflow.model import Priority

RIS = Origin("HL7", "EPIC", "10.0.0.5")


@dataclass
class Desk:
    w: World
    fid: int

    @property
    def orders(self) -> OrderService:
        return self.w.orders

    def new(self, accession: str = "A1", patient_id: str = "P1", **kw: object) -> Order:
        values: dict[str, object] = {
            "facility_id": self.fid,
            "accession_number": accession,
            "patient": PatientDemographics(patient_id, "DOE^JANE", "19800101", "F"),
            "procedure": self.orders.catalogue.resolve("70450"),  # CT head
            "reason": "headache",
        }
        values.update(kw)
        return Order(**values)  # type: ignore[arg-type]

    def events(self, order: Order) -> list[str]:
        return [h.event for h in self.orders.history(order)]

    def audited(self) -> list[AuditRecord]:
        return list(self.w.stores.audit.records())


@pytest.fixture
def desk() -> Desk:
    w = world()
    return Desk(w, w.stores.index.add_facility("North").id)


def test_a_placed_order_is_kept_with_its_history_and_audited(desk: Desk) -> None:
    placed = desk.orders.place(desk.new(), RIS)
    assert placed.id is not None and placed.created_at == desk.w.clock()
    assert desk.orders.get(placed.id) == placed == desk.orders.by_accession(desk.fid, "A1")
    assert desk.orders.get(placed.id, frozenset({desk.fid + 1})) is None  # another's scope
    [entry] = desk.orders.history(placed)
    assert (entry.event, entry.source, entry.detail) == ("placed", "HL7", "HL7 from EPIC")
    [record] = desk.audited()
    assert (record.event_id, record.action, record.facility) == (
        EventID.ORDER_RECORD.code,
        Action.CREATE.value,
        "North",
    )
    assert (record.actor_id, record.source_address, record.patient_id) == (
        "EPIC",
        "10.0.0.5",
        "P1",
    )
    assert record.detail == "order A1 placed (HL7)"
    with pytest.raises(OrderError, match="already has an order"):
        desk.orders.place(desk.new(), RIS)
    with pytest.raises(OrderError, match="cannot start as ready"):
        desk.orders.place(desk.new("A2", status=OrderStatus.READY), RIS)
    assert len(desk.audited()) == 1  # refusals change nothing


def test_a_resend_revises_the_order_instead_of_failing_or_twinning(desk: Desk) -> None:
    first = desk.orders.place_or_revise(desk.new(), RIS)
    resent = desk.orders.place_or_revise(desk.new(reason="worse headache"), RIS)
    assert (resent.id, resent.reason) == (first.id, "worse headache")
    assert desk.w.stores.orders.count() == 1
    assert desk.events(resent) == ["placed", "revised"]
    same = desk.orders.place_or_revise(desk.new(reason="worse headache"), RIS)
    assert same == resent and desk.events(same) == ["placed", "revised"]  # nothing new


def test_a_resend_racing_the_first_copy_revises_what_the_first_placed(desk: Desk) -> None:
    class Racing(FakeOrders):
        """The first copy is stored between the resend's look-up and its own insert."""

        raced = False

        def by_accession(self, facility_id: int, accession_number: str) -> Order | None:
            if not self.raced:
                self.raced = True
                self.add(desk.new(), desk.w.clock(), "HL7")
                return None
            return super().by_accession(facility_id, accession_number)

    service = OrderService(Racing(), desk.w.audit, desk.orders.catalogue, clock=desk.w.clock)
    resent = service.place_or_revise(desk.new(reason="resent"), RIS)
    assert resent.reason == "resent" and [h.event for h in service.history(resent)] == [
        "placed",
        "revised",
    ]


def test_a_revision_schedules_an_ordered_order_and_never_changes_a_read_one(desk: Desk) -> None:
    placed = desk.orders.place(desk.new(), RIS)
    at = desk.w.clock() + timedelta(days=1)
    newer = desk.new(status=OrderStatus.SCHEDULED, scheduled_at=at, priority=Priority.STAT)
    revised = desk.orders.revise(placed, newer, RIS)
    assert (revised.status, revised.scheduled_at, revised.priority) == (
        OrderStatus.SCHEDULED,
        at,
        Priority.STAT,
    )
    assert desk.audited()[-1].action == Action.UPDATE.value
    ready = desk.orders.step(revised, OrderEvent.READY, RIS)
    with pytest.raises(OrderError, match="ready cannot be changed"):
        desk.orders.revise(ready, desk.new(reason="changed"), RIS)
    with pytest.raises(OrderError, match="facility or accession"):
        desk.orders.revise(placed, desk.new("A9"), RIS)


def test_cancelling_frees_the_slot_and_says_why(desk: Desk) -> None:
    store = desk.w.stores.orders
    station = store.add_station(desk.fid, "CT01", "CT")
    t0 = desk.w.clock()
    store.add_slots(station.id, [(t0, t0 + timedelta(minutes=30))])
    [slot] = store.slots(station.id, t0, t0 + timedelta(hours=1))
    booked = desk.orders.schedule(desk.orders.place(desk.new(), RIS), slot.id, station, RIS)
    cancelled = desk.orders.cancel(booked, RIS, "patient declined")
    assert cancelled.status == OrderStatus.CANCELLED
    assert store.slot(slot.id).order_id is None
    assert desk.orders.history(cancelled)[-1].detail == "HL7 from EPIC: patient declined"
    assert desk.audited()[-1].action == Action.DELETE.value
    started = desk.orders.step(desk.orders.place(desk.new("A2"), RIS), OrderEvent.START, RIS)
    with pytest.raises(OrderError, match="in_progress cannot cancel"):
        desk.orders.cancel(started, RIS)
    assert desk.orders.get(started.id or 0) == started  # nothing changed by the refusal


def test_scheduling_books_a_slot_of_the_facility_s_station_for_its_modality(desk: Desk) -> None:
    store = desk.w.stores.orders
    ct, mr = store.add_station(desk.fid, "CT01", "CT"), store.add_station(desk.fid, "MR01", "MR")
    elsewhere = store.add_station(desk.w.stores.index.add_facility("South").id, "CT02", "CT")
    t0 = desk.w.clock()
    spans = [(t0 + timedelta(minutes=30 * i), t0 + timedelta(minutes=30 * (i + 1))) for i in (0, 1)]
    store.add_slots(ct.id, spans)
    store.add_slots(mr.id, spans)
    first, second = store.slots(ct.id, t0, t0 + timedelta(hours=1))
    [mr_slot, _] = store.slots(mr.id, t0, t0 + timedelta(hours=1))
    order = desk.orders.place(desk.new(), RIS)
    with pytest.raises(OrderError, match="belongs to another facility"):
        desk.orders.schedule(order, first.id, elsewhere, RIS)
    with pytest.raises(OrderError, match="is MR, the procedure needs CT"):
        desk.orders.schedule(order, mr_slot.id, mr, RIS)
    with pytest.raises(OrderError, match="is not on station CT01"):
        desk.orders.schedule(order, mr_slot.id, ct, RIS)
    assert store.slot(mr_slot.id).order_id is None  # the wrong booking was undone
    booked = desk.orders.schedule(order, first.id, ct, RIS)
    assert (booked.status, booked.scheduled_at, booked.station_ae) == (
        OrderStatus.SCHEDULED,
        first.start,
        "CT01",
    )
    assert desk.events(booked)[-1] == "scheduled"
    assert desk.audited()[-1].detail == "order A1 scheduled on CT01 (HL7)"
    other = desk.orders.place(desk.new("A2"), RIS)
    with pytest.raises(OrderError, match="already booked"):
        desk.orders.schedule(other, first.id, ct, RIS)
    moved = desk.orders.schedule(booked, second.id, ct, RIS)  # rescheduled: old slot freed
    assert moved.scheduled_at == second.start and store.slot(first.id).order_id is None
    closed = desk.orders.cancel(other, RIS)
    with pytest.raises(OrderError, match="cancelled cannot schedule"):
        desk.orders.schedule(closed, first.id, ct, RIS)


def test_steps_move_the_order_and_are_audited_as_procedure_records(desk: Desk) -> None:
    order = desk.orders.place(desk.new(), RIS)
    modality = Origin("MPPS", "CT01")
    started = desk.orders.step(order, OrderEvent.START, modality, "IN PROGRESS")
    assert (started.status, started.mpps_status) == (OrderStatus.IN_PROGRESS, "IN PROGRESS")
    record = desk.audited()[-1]
    assert (record.event_id, record.detail) == (
        EventID.PROCEDURE_RECORD.code,
        "order A1 start (MPPS)",
    )
    again = desk.orders.step(started, OrderEvent.START, modality)  # nothing moves
    assert again == started and desk.events(again) == ["placed", "start"]
    done = desk.orders.step(started, OrderEvent.COMPLETE, modality, "COMPLETED")
    assert (done.status, done.mpps_status) == (OrderStatus.PERFORMED, "COMPLETED")
    with pytest.raises(OrderError, match="performed cannot start"):
        desk.orders.step(done, OrderEvent.START, modality)


def test_the_requested_study_uid_is_made_once_and_kept(desk: Desk) -> None:
    order = desk.orders.place(desk.new(), RIS)
    mwl = Origin("MWL", "CT01")
    given = desk.orders.with_requested_study_uid(order, mwl)
    assert given.requested_study_uid.startswith("2.25.")
    assert desk.orders.with_requested_study_uid(order, mwl) == given  # the first one kept
    assert desk.orders.with_requested_study_uid(given, mwl) is given
    assert desk.events(given) == ["placed", "study uid assigned"]
    found = desk.orders.by_requested(desk.fid, requested_study_uid=given.requested_study_uid)
    assert found == given


def test_a_study_is_matched_to_an_order_once(desk: Desk) -> None:
    order = desk.orders.place(desk.new(), RIS)
    by = Origin("reconciliation", "telerad")
    matched = desk.orders.match(order, "1.2.3", "accession", by)
    assert matched.study_instance_uid == "1.2.3"
    assert desk.orders.history(matched)[-1].detail == "study matched by accession"
    assert (
        desk.audited()[-1].detail == "order A1 matched to its study by accession (reconciliation)"
    )
    assert desk.orders.match(matched, "1.2.3", "accession", by) is matched
    with pytest.raises(OrderError, match="already matched to another study"):
        desk.orders.match(matched, "1.2.4", "person", by)
    assert desk.orders.find(OrderFilter(study_instance_uid="1.2.3")) == [matched]
    study = StudyFacts("1.2.9", desk.fid, "P1", "", "", frozenset(), desk.w.clock())
    assert desk.orders.candidates([study]) == [matched]  # open, the same patient


def test_patient_updates_and_merges_are_audited_as_patient_records(desk: Desk) -> None:
    desk.orders.place(desk.new("A1", "OLD1"), RIS)
    desk.orders.place(desk.new("A2", "OLD2"), RIS)
    desk.orders.place(desk.new("A3", "KEEP"), RIS)
    adt = Origin("HL7", "ADT")
    assert desk.orders.update_patient(desk.fid, PatientDemographics("OLD1", "ROE^JANE"), adt) == 1
    a1 = desk.orders.by_accession(desk.fid, "A1")
    assert a1 is not None and (a1.patient.name, a1.patient.birth_date) == ("ROE^JANE", "19800101")
    record = desk.audited()[-1]
    assert (record.event_id, record.patient_id, record.detail) == (
        EventID.PATIENT_RECORD.code,
        "OLD1",
        "patient updated 1 order(s) (HL7)",
    )
    keep = PatientDemographics("KEEP")
    assert desk.orders.merge_patient(desk.fid, ["OLD1", "OLD2"], keep, adt) == 2
    assert desk.audited()[-1].detail == "patient merged 2 identifier(s), 2 order(s) (HL7)"
    mine = desk.orders.find(OrderFilter(facility_ids=frozenset({desk.fid})))
    assert {o.patient.patient_id for o in mine} == {"KEEP"}
    with pytest.raises(OrderError, match="itself"):
        desk.orders.merge_patient(desk.fid, ["KEEP"], keep, adt)


def test_reading_an_order_is_audited(desk: Desk) -> None:
    order = desk.orders.place(desk.new(), RIS)
    clerk = Origin("REST", "clerk", "10.0.0.9", is_user=True)
    desk.orders.viewed(order, clerk)
    record = desk.audited()[-1]
    assert (record.action, record.actor_id, record.actor_is_user, record.detail) == (
        Action.READ.value,
        "clerk",
        True,
        "order A1 read (REST)",
    )
    assert desk.orders.get(order.id or 0) == order  # reading changes nothing
    assert desk.events(order) == ["placed"]
