"""Orders, stations, slots and steps (``services.orders.OrderStore`` and the MPPS
adapter's ``StepStore``): what the fake and SqlOrders both do."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from tests.fakes.common import Clock
from tests.fakes.instances import blob, header
from tests.fakes.world import Stores

from telerad.domain.model import Level
from telerad.domain.orders import (
    Order,
    OrderError,
    OrderFilter,
    OrderStatus,
    PatientDemographics,
    Procedure,
)
from telerad.domain.query import Exact, Query
from telerad.domain.readiness import StudyFacts
from telerad.workflow.model import Priority

CT_HEAD = Procedure("70450", "CT head", "CPT", "CT", "HEAD", 0.85, "neuro")


def order(facility_id: int, accession: str, patient_id: str = "P1", **kw: object) -> Order:
    values: dict[str, object] = {
        "facility_id": facility_id,
        "accession_number": accession,
        "patient": PatientDemographics(patient_id, "DOE^JANE", "19800101", "F"),
        "procedure": CT_HEAD,
    }
    values.update(kw)
    return Order(**values)  # type: ignore[arg-type]


def test_an_order_round_trips_and_its_accession_is_unique_per_facility(
    stores: Stores, clock: Clock
) -> None:
    orders = stores.orders
    north, south = stores.index.add_facility("North").id, stores.index.add_facility("South").id
    full = order(
        north, "A1", priority=Priority.STAT, placer_order_number="PL-1", reason="headache",
        ordering_physician="HOUSE^GREGORY", scheduled_at=clock.now, station_ae="CT01",
        requested_procedure_id="RP1", requested_study_uid="1.2.3", mpps_status="IN PROGRESS",
    )  # fmt: skip
    stored = orders.add(full, clock.now, "HL7", "HL7 from RIS")
    assert stored.id is not None and (stored.created_at, stored.updated_at) == (clock.now,) * 2
    assert replace(stored, id=None, created_at=None, updated_at=None) == full
    assert orders.get(stored.id) == stored == orders.by_accession(north, "A1")
    assert orders.get(999) is None and orders.by_accession(south, "A1") is None
    with pytest.raises(OrderError, match="'A1' already has an order at this facility"):
        orders.add(order(north, "A1", "P2"), clock.now, "REST")
    assert orders.add(order(south, "A1"), clock.now, "REST").facility_id == south
    assert orders.count() == 2 and orders.count(frozenset({south})) == 1


def test_saves_keep_a_history_in_order(stores: Stores, clock: Clock) -> None:
    orders = stores.orders
    fid = stores.index.add_facility("North").id
    placed = orders.add(order(fid, "A1"), clock.now, "HL7", "HL7 from RIS")
    later = clock.after(minutes=5)
    saved = orders.save(
        replace(placed, status=OrderStatus.SCHEDULED), later, "schedule", "REST", "x" * 300
    )
    assert (saved.status, saved.created_at, saved.updated_at) == (
        OrderStatus.SCHEDULED,
        placed.created_at,
        later,
    )
    history = orders.history(placed.id)
    assert [(h.event, h.source, h.time) for h in history] == [
        ("placed", "HL7", placed.created_at),
        ("schedule", "REST", later),
    ]
    assert history[0].detail == "HL7 from RIS" and len(history[1].detail) == 255
    with pytest.raises(ValueError, match="stored order"):
        orders.save(order(fid, "A2"), later, "revised", "REST")


def test_find_filters_in_id_order_with_limit_and_offset(stores: Stores, clock: Clock) -> None:
    orders = stores.orders
    north, south = stores.index.add_facility("North").id, stores.index.add_facility("South").id
    at = clock.now
    orders.add(order(north, "A1"), at, "HL7")
    orders.add(order(north, "A2", "P2", status=OrderStatus.SCHEDULED, scheduled_at=at), at, "HL7")
    orders.add(order(south, "A1", station_ae="CT02", study_instance_uid="1.9"), at, "HL7")
    orders.add(order(north, "A3", procedure=replace(CT_HEAD, modality="MR")), at, "HL7")

    def found(**f: object) -> list[tuple[int, str]]:
        return [(o.facility_id, o.accession_number) for o in orders.find(OrderFilter(**f))]  # type: ignore[arg-type]

    assert found(facility_ids=frozenset({north})) == [(north, "A1"), (north, "A2"), (north, "A3")]
    assert found(accession_number="A1") == [(north, "A1"), (south, "A1")]
    assert found(patient_id="P2") == [(north, "A2")]
    assert found(statuses=frozenset({OrderStatus.SCHEDULED})) == [(north, "A2")]
    assert found(modality="MR") == [(north, "A3")]
    assert found(station_ae="CT02") == found(study_instance_uid="1.9") == [(south, "A1")]
    assert found(study_instance_uids=("1.9", "1.8")) == [(south, "A1")]
    window = {"scheduled_from": at - timedelta(hours=1), "scheduled_to": at + timedelta(hours=1)}
    assert found(**window) == [(north, "A2")]
    assert found(scheduled_to=at) == []  # the end is not in the window
    assert found(limit=2, offset=1) == [(north, "A2"), (south, "A1")]


def test_requested_study_uids_and_procedure_ids(stores: Stores, clock: Clock) -> None:
    orders = stores.orders
    fid = stores.index.add_facility("North").id
    one = orders.add(order(fid, "A1", requested_procedure_id="RP1"), clock.now, "HL7")
    orders.add(order(fid, "A2", requested_procedure_id="RP1"), clock.now, "HL7")
    assert orders.by_requested(fid, requested_procedure_id="RP1").id == one.id  # the first
    assert orders.by_requested(fid) is None
    later = clock.after(seconds=1)
    assert orders.keep_requested_study_uid(one.id, "1.2.1", later, "MWL", "worklist") == "1.2.1"
    assert orders.keep_requested_study_uid(one.id, "1.2.2", later, "MWL") == "1.2.1"  # kept
    kept = orders.get(one.id)
    assert (kept.requested_study_uid, kept.updated_at) == ("1.2.1", later)
    assert [h.event for h in orders.history(one.id)] == ["placed", "study uid assigned"]
    assert orders.by_requested(fid, requested_study_uid="1.2.1").id == one.id
    assert orders.by_requested(fid, "1.2.1", "RP-other").id == one.id  # the UID decides
    assert orders.by_requested(fid + 1, requested_study_uid="1.2.1") is None


def test_candidates_are_the_open_orders_a_study_may_answer(stores: Stores, clock: Clock) -> None:
    orders = stores.orders
    north, south = stores.index.add_facility("North").id, stores.index.add_facility("South").id
    at = clock.now
    by_patient = orders.add(order(north, "A1", "P1"), at, "HL7")
    by_accession = orders.add(order(north, "ACC9", "P9"), at, "HL7")
    by_uid = orders.add(order(north, "A3", "P8", requested_study_uid="1.1"), at, "HL7")
    orders.add(order(north, "A4", "P1", status=OrderStatus.CANCELLED), at, "HL7")
    orders.add(order(south, "A5", "P1"), at, "HL7")  # another facility's patient P1
    orders.add(order(north, "A6", "P7"), at, "HL7")
    study = StudyFacts("1.1", north, "P1", "ACC9", "20260101", frozenset({"CT"}), at)
    found = orders.candidates([study])
    assert [o.id for o in found] == [by_patient.id, by_accession.id, by_uid.id]
    assert orders.candidates([replace(study, accession_number="")]) == [by_patient, by_uid]


def test_patient_updates_and_merges_keep_what_the_message_leaves_out(
    stores: Stores, clock: Clock
) -> None:
    orders = stores.orders
    fid = stores.index.add_facility("North").id
    for accession, pid in (("A1", "OLD1"), ("A2", "OLD2"), ("A3", "KEEP")):
        orders.add(order(fid, accession, pid), clock.now, "HL7")
    later = clock.after(minutes=1)
    assert orders.update_patient(fid, PatientDemographics("OLD1", "ROE^JANE"), later, "ADT") == 1
    a1 = orders.by_accession(fid, "A1")
    assert (a1.patient.name, a1.patient.birth_date) == ("ROE^JANE", "19800101")
    assert a1.updated_at == later
    assert orders.history(a1.id)[-1].event == "patient updated"
    assert orders.merge_patient(fid, "OLD2", PatientDemographics("KEEP"), later, "ADT") == 1
    a2 = orders.by_accession(fid, "A2")
    assert (a2.patient.patient_id, a2.patient.name) == ("KEEP", "DOE^JANE")
    assert orders.history(a2.id)[-1].event == "patient merged"
    assert orders.update_patient(fid, PatientDemographics("NOBODY"), later, "ADT") == 0


def test_patient_changes_reach_the_archive_index(stores: Stores, clock: Clock) -> None:
    fid = stores.index.add_facility("North").id
    for study, pid, name in (("1.1", "OLD1", "SMITH^JO"), ("1.2", "KEEP", "SMITH^JOANNA")):
        h = header(study, study + ".1", study + ".1.1", PatientID=pid, PatientName=name)
        stores.index.add_instance(fid, h, blob(h.SOPInstanceUID))

    def patients() -> dict[str, tuple[str, object]]:
        found = stores.index.search(Query(Level.PATIENT))
        return {
            str(p["PatientID"]): (str(p["PatientName"]), p["NumberOfPatientRelatedStudies"])
            for p in found
        }

    stores.orders.update_patient(fid, PatientDemographics("OLD1", "JONES^JO"), clock.now, "ADT")
    assert patients() == {"OLD1": ("JONES^JO", 1), "KEEP": ("SMITH^JOANNA", 1)}
    wildcard = stores.index.search(Query(Level.STUDY, matches={"PatientName": Exact("jones jo")}))
    assert [s["StudyInstanceUID"] for s in wildcard] == ["1.1"]
    stores.orders.merge_patient(fid, "OLD1", PatientDemographics("KEEP"), clock.now, "ADT")
    assert patients() == {"OLD1": ("JONES^JO", 0), "KEEP": ("SMITH^JOANNA", 2)}
    stores.orders.merge_patient(
        fid, "GONE", PatientDemographics("NEW", "NEW^ONE"), clock.now, "ADT"
    )
    assert "NEW" not in patients()  # nothing of the prior identifier: nothing made


def test_stations_are_unique_and_slots_book_one_order_each(stores: Stores, clock: Clock) -> None:
    orders = stores.orders
    north, south = stores.index.add_facility("North").id, stores.index.add_facility("South").id
    mr = orders.add_station(north, "MR01", "MR")
    ct = orders.add_station(north, "CT01", "CT", "CT room 1")
    orders.add_station(south, "CT02", "CT")
    with pytest.raises(OrderError, match="'CT01' is already registered"):
        orders.add_station(south, "CT01", "CT")
    assert [s.ae_title for s in orders.stations()] == ["CT01", "CT02", "MR01"]
    assert orders.stations(north) == [ct, mr]
    assert orders.station_by_ae("CT01") == ct == orders.station_by_id(ct.id)
    assert orders.station_by_ae("XX") is None and orders.station_by_id(999) is None
    t0 = clock.now.replace(microsecond=0)
    spans = [
        (t0 + timedelta(minutes=30 * i), t0 + timedelta(minutes=30 * (i + 1))) for i in (2, 0, 1)
    ]
    assert orders.add_slots(ct.id, spans) == 3
    assert (
        orders.add_slots(ct.id, spans[:1] + [(t0 + timedelta(hours=2), t0 + timedelta(hours=3))])
        == 1
    )
    assert orders.add_slots(mr.id, spans[:1]) == 1  # the same time on another station
    slots = orders.slots(ct.id, t0, t0 + timedelta(hours=2))
    assert [s.start for s in slots] == [t0, t0 + timedelta(minutes=30), t0 + timedelta(hours=1)]
    assert orders.slot(slots[0].id) == slots[0] and orders.slot(999) is None
    first = orders.add(order(north, "A1"), clock.now, "HL7")
    second = orders.add(order(north, "A2"), clock.now, "HL7")
    booked = orders.book(slots[0].id, first.id)
    assert booked.order_id == first.id and booked.station_id == ct.id
    with pytest.raises(OrderError, match="already booked"):
        orders.book(slots[0].id, second.id)
    with pytest.raises(OrderError, match="does not exist"):
        orders.book(999, second.id)
    assert orders.slot(slots[0].id).order_id == first.id  # a refusal changes nothing
    orders.book(slots[1].id, first.id)  # rebooked: the earlier slot is freed
    assert [s.order_id for s in orders.slots(ct.id, t0, t0 + timedelta(hours=2))] == [
        None,
        first.id,
        None,
    ]
    assert orders.book(slots[1].id, first.id).order_id == first.id  # the same slot again
    orders.free_slot_of(first.id)
    assert all(s.order_id is None for s in orders.slots(ct.id, t0, t0 + timedelta(days=1)))


def test_performed_procedure_steps_are_kept_by_their_uid(stores: Stores, clock: Clock) -> None:
    orders = stores.orders
    fid = stores.index.add_facility("North").id
    placed = orders.add(order(fid, "A1"), clock.now, "HL7")
    orders.put_mpps("1.5.1", fid, placed.id, "IN PROGRESS", "1.1", "{}", clock.now)
    orders.put_mpps("1.5.2", fid, None, "COMPLETED", "1.1", '{"a": 1}', clock.now)
    orders.put_mpps("1.5.1", fid, placed.id, "COMPLETED", "1.1", '{"b": 2}', clock.now)
    step = orders.mpps("1.5.1")
    assert (step["status"], step["json"], step["order_id"]) == ("COMPLETED", '{"b": 2}', placed.id)
    assert orders.mpps("9.9") is None
    assert sorted(s["sop_instance_uid"] for s in orders.mpps_of_study("1.1")) == ["1.5.1", "1.5.2"]
    assert orders.mpps_of_study("1.2") == []
