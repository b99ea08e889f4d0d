"""Reconciliation's reading states (``services.reconcile.StateStore``): what the fake and
SqlReadingStates both do, over the index and the orders they read."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

from tests.fakes.common import Clock
from tests.fakes.instances import blob, header
from tests.fakes.world import Stores

from telerad.domain.orders import Order, PatientDemographics, Procedure
from telerad.domain.readiness import Readiness, ReadingState, StudyFacts
from telerad.synthetic import COMPREHENSIVE_3D_SR


def _store(stores: Stores, fid: int, study: str, series: str, n: int, **kw: object) -> None:
    sop = f"{series}.{n}"
    values: dict[str, object] = {"InstanceNumber": n, "AccessionNumber": "ACC-" + study}
    values.update(kw)
    assert stores.index.add_instance(fid, header(study, series, sop, **values), blob(sop, fid))


def _state(facts: StudyFacts, state: Readiness, **kw: object) -> ReadingState:
    values: dict[str, object] = {
        "study_pk": facts.pk,
        "study_uid": facts.uid,
        "facility_id": facts.facility_id,
        "state": state,
        "last_change": facts.last_change,
        "instances": facts.num_instances,
    }
    values.update(kw)
    return ReadingState(**values)  # type: ignore[arg-type]


def _order(fid: int, accession: str, patient_id: str) -> Order:
    return Order(fid, accession, PatientDemographics(patient_id), Procedure("71250"))


def test_new_grown_and_unsettled_studies_are_looked_at(stores: Stores, clock: Clock) -> None:
    states = stores.states
    fid = stores.index.add_facility("North").id
    for study in ("1.1", "1.2", "1.3", "1.4"):
        _store(stores, fid, study, study + ".1", 1, PatientID="P" + study[-1])
    facts = states.to_check(None, 10)
    assert [f.uid for f in facts] == ["1.1", "1.2", "1.3", "1.4"]  # by the study's key
    first = facts[0]
    assert (first.facility_id, first.patient_id, first.accession_number) == (fid, "P1", "ACC-1.1")
    assert (first.modalities, first.num_instances, first.series) == (frozenset({"CT"}), 1, ())
    assert first.pk is not None and first.last_change.tzinfo is not None
    assert [f.uid for f in states.to_check(None, 2)] == ["1.1", "1.2"]
    by_uid = {f.uid: f for f in facts}
    states.put_all(
        [
            _state(by_uid["1.1"], Readiness.READY),
            _state(by_uid["1.2"], Readiness.ARRIVING),
            _state(by_uid["1.3"], Readiness.INCOMPLETE),
            _state(by_uid["1.4"], Readiness.UNMATCHED),
        ]
    )
    assert [f.uid for f in states.to_check(None, 10)] == ["1.2", "1.3", "1.4"]
    since = clock.now + timedelta(hours=1)  # no order changed since then
    assert [f.uid for f in states.to_check(since, 10)] == ["1.2", "1.3"]
    _store(stores, fid, "1.1", "1.1.1", 2)  # more images: looked at again
    assert [f.uid for f in states.to_check(since, 10)] == ["1.1", "1.2", "1.3"]


def test_an_unmatched_study_is_looked_at_when_an_order_for_it_changes(
    stores: Stores, clock: Clock
) -> None:
    states, orders = stores.states, stores.orders
    north, south = stores.index.add_facility("North").id, stores.index.add_facility("South").id
    _store(stores, north, "1.1", "1.1.1", 1, PatientID="P1")
    _store(stores, north, "1.2", "1.2.1", 1, PatientID="P2")
    states.put_all([_state(f, Readiness.UNMATCHED) for f in states.to_check(None, 10)])
    since = clock.now
    later = since + timedelta(minutes=1)
    orders.add(_order(south, "ACC-1.1", "P1"), later, "HL7")  # another facility's
    orders.add(_order(north, "OTHER", "P9"), later, "HL7")  # another patient
    orders.add(_order(north, "OLD", "P2"), since - timedelta(minutes=1), "HL7")  # before
    assert states.to_check(since, 10) == []
    orders.add(_order(north, "NEW", "P1"), later, "HL7")  # the patient's new order
    assert [f.uid for f in states.to_check(since, 10)] == ["1.1"]
    orders.add(_order(north, "ACC-1.2", "P7"), later, "HL7")  # the study's accession number
    assert [f.uid for f in states.to_check(since, 10)] == ["1.1", "1.2"]


def test_series_facts_count_the_acquired_images(stores: Stores) -> None:
    states = stores.states
    fid = stores.index.add_facility("North").id
    _store(stores, fid, "1.1", "1.1.2", 3, SeriesNumber=2)
    _store(stores, fid, "1.1", "1.1.2", 1, SeriesNumber=2)
    _store(stores, fid, "1.1", "1.1.2", 2, SeriesNumber=2, origin="reading")
    _store(stores, fid, "1.1", "1.1.1", 5, SeriesNumber=1, InstanceNumber=None)
    _store(stores, fid, "1.1", "1.1.1", 4, SeriesNumber=1)
    _store(stores, fid, "1.1", "1.1.9", 1, SeriesNumber=None, Modality="SR",
           SOPClassUID=COMPREHENSIVE_3D_SR)  # fmt: skip
    _store(stores, fid, "1.2", "1.2.1", 1)
    [one, two] = states.to_check(None, 10)
    found = states.series_of([one.pk, two.pk, 999])
    assert set(found) == {one.pk, two.pk}
    assert [
        (s.uid, s.modality, s.number, s.instance_numbers, s.acquired) for s in found[one.pk]
    ] == [
        ("1.1.1", "CT", 1, (4, None), 2),
        ("1.1.2", "CT", 2, (1, 2, 3), 2),
        ("1.1.9", "SR", None, (1,), 0),
    ]
    assert states.series_of([]) == {}


def test_steps_of_a_study_with_their_performed_series(stores: Stores, clock: Clock) -> None:
    fid = stores.index.add_facility("North").id
    performed = {
        "00400340": {
            "vr": "SQ",
            "Value": [
                {
                    "0020000E": {"vr": "UI", "Value": ["1.1.1"]},
                    "00081140": {"vr": "SQ", "Value": [{}, {}, {}]},
                }
            ],
        }
    }
    stores.orders.put_mpps("5.1", fid, None, "COMPLETED", "1.1", json.dumps(performed), clock.now)
    stores.orders.put_mpps("5.2", fid, None, "IN PROGRESS", "1.1", "not json", clock.now)
    stores.orders.put_mpps("5.3", fid, None, "IN PROGRESS", "1.2", "{}", clock.now)
    steps = stores.states.steps_of(["1.1", "9.9"])
    assert set(steps) == {"1.1"}
    assert sorted((s.status, tuple(s.series.items())) for s in steps["1.1"]) == [
        ("COMPLETED", (("1.1.1", 3),)),
        ("IN PROGRESS", ()),
    ]


def test_states_are_kept_and_listed_with_their_study_s_facts(stores: Stores, clock: Clock) -> None:
    states = stores.states
    north, south = stores.index.add_facility("North").id, stores.index.add_facility("South").id
    _store(stores, north, "1.1", "1.1.1", 1, PatientID="P1", StudyDate="20260101",
           StudyDescription="CT CHEST")  # fmt: skip
    _store(stores, north, "1.1", "1.1.2", 1, Modality="SR", SOPClassUID=COMPREHENSIVE_3D_SR)
    _store(stores, north, "1.2", "1.2.1", 1)
    _store(stores, south, "1.3", "1.3.1", 1)
    one, two, three = states.to_check(None, 10)
    t = clock.now
    ready = t + timedelta(minutes=3)
    states.put_all(
        [
            _state(one, Readiness.READY, last_change=t + timedelta(minutes=2), ready_at=ready,
                   order_id=None, matched_by="accession", problems=("a", "b"), acquired=1,
                   released_as="urgent"),
            _state(two, Readiness.UNMATCHED, last_change=t + timedelta(minutes=1)),
            _state(three, Readiness.UNMATCHED, last_change=t),
        ]
    )  # fmt: skip
    found = states.by_uid("1.1")
    assert found == ReadingState(
        study_pk=one.pk, study_uid="1.1", facility_id=north, state=Readiness.READY,
        last_change=t + timedelta(minutes=2), instances=2, acquired=1, matched_by="accession",
        problems=("a", "b"), ready_at=ready, released_as="urgent", patient_id="P1",
        accession_number="ACC-1.1", modalities="/CT/SR/", study_date="20260101",
        study_description="CT CHEST",
    )  # fmt: skip
    assert states.by_uid("9.9") is None
    assert states.states([one.pk, 999]) == {one.pk: found}
    unmatched = frozenset({Readiness.UNMATCHED})
    assert [s.study_uid for s in states.listing(unmatched, None)] == ["1.3", "1.2"]  # oldest first
    assert [s.study_uid for s in states.listing(unmatched, frozenset({north}))] == ["1.2"]
    assert [s.study_uid for s in states.listing(unmatched, None, limit=1)] == ["1.3"]
    both = unmatched | {Readiness.READY}
    assert [s.study_uid for s in states.listing(both, None)] == ["1.3", "1.2", "1.1"]
    states.put(replace(found, state=Readiness.ARRIVING, problems=(), ready_at=None))
    again = states.by_uid("1.1")
    assert (again.state, again.problems, again.ready_at, again.released_as) == (
        Readiness.ARRIVING,
        (),
        None,
        "urgent",
    )
    states.put_all([])
