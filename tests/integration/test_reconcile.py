"""Reconciliation and readiness over a real archive: studies stored, orders placed, time moved."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydicom.uid import generate_uid
from tests.fakes.world import Queue

from telerad.bootstrap import Platform
from telerad.domain.modalities import InstanceOrigin, modality_problem
from telerad.domain.orders import Order, OrderError, OrderStatus, PatientDemographics
from telerad.domain.readiness import Readiness
from telerad.services.orders import Origin
from telerad.synthetic import StudySpec, ct_series, measurement_report, tiny_instance, to_bytes
from telerad.workflow.model import Priority

RIS = Origin("HL7", "RIS")


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def after(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def reset(self) -> None:
        """Back to the database's time: instances just stored are stamped with it."""
        self.now = datetime.now(UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def setup(request: pytest.FixtureRequest) -> tuple[Platform, Queue, Clock]:
    name = "platform" if request.param == "sqlite" else "pg_platform"
    p: Platform = request.getfixturevalue(name)
    queue, clock = Queue(), Clock()
    p.reconciler.queue = queue
    p.reconciler.clock = clock
    p.orders.clock = clock
    return p, queue, clock


def store(p: Platform, spec: StudySpec, slices: int = 6, skip: tuple[int, ...] = ()) -> None:
    fid = p.default_facility().id
    for i, ds in enumerate(ct_series(spec, slices=slices, rows=16, cols=16)):
        if i + 1 not in skip:
            assert p.archive.store(fid, to_bytes(ds)).ok


def place(p: Platform, accession: str, patient_id: str = "SYN0001", **kw: object) -> Order:
    values: dict[str, object] = {
        "facility_id": p.default_facility().id,
        "accession_number": accession,
        "patient": PatientDemographics(patient_id),
        "procedure": p.orders.catalogue.resolve("71250"),  # CT chest
        "priority": Priority.STAT,
    }
    values.update(kw)
    return p.orders.place(Order(**values), RIS)  # type: ignore[arg-type]


def state(p: Platform, uid: str) -> Readiness:
    found = p.reconciler.states.by_uid(uid)
    assert found is not None
    return found.state


def test_a_study_with_its_order_becomes_ready_once_stable(
    setup: tuple[Platform, Queue, Clock],
) -> None:
    p, queue, clock = setup
    order = place(p, "ACC1")
    spec = StudySpec(accession="ACC1")
    store(p, spec)
    p.reconciler.run()
    assert state(p, spec.study_uid) == Readiness.ARRIVING
    matched = p.orders.get(order.id or 0)
    assert matched is not None and matched.study_instance_uid == spec.study_uid
    assert queue.enqueued == []
    clock.after(minutes=3)
    assert p.reconciler.run()["ready"] == 1
    ready = p.orders.get(order.id or 0)
    assert ready is not None and ready.status == OrderStatus.READY
    [reading] = queue.enqueued
    assert (reading.uid, reading.priority, reading.modality, reading.subspecialty) == (
        spec.study_uid,
        Priority.STAT,
        "CT",
        "chest",
    )
    assert reading.deadline > reading.ready_at == clock.now
    clock.after(minutes=1)
    assert p.reconciler.run().total() == 0  # nothing changed: nothing looked at again


def test_more_images_after_ready_withdraw_the_study(setup: tuple[Platform, Queue, Clock]) -> None:
    p, queue, clock = setup
    place(p, "ACC1")
    spec = StudySpec(accession="ACC1")
    store(p, spec)
    clock.after(minutes=3)
    p.reconciler.run()
    assert state(p, spec.study_uid) == Readiness.READY
    store(p, spec, slices=2)  # a late series of the same study
    clock.reset()
    p.reconciler.run()
    assert queue.withdrawn == [spec.study_uid]
    assert state(p, spec.study_uid) != Readiness.READY
    clock.after(minutes=3)
    p.reconciler.run()
    assert state(p, spec.study_uid) == Readiness.READY
    assert len(queue.enqueued) == 2


def test_unmatched_studies_wait_and_match_when_the_order_comes(
    setup: tuple[Platform, Queue, Clock],
) -> None:
    p, queue, clock = setup
    spec = StudySpec(accession="LATE1")
    store(p, spec)
    clock.after(minutes=3)
    p.reconciler.run()
    waiting = p.reconciler.states.by_uid(spec.study_uid)
    assert waiting is not None and waiting.state == Readiness.UNMATCHED
    assert waiting.problems == ("no open order with accession number LATE1",)
    assert [w.study_uid for w in p.reconciler.waiting(None)] == [spec.study_uid]
    assert p.reconciler.waiting(frozenset({-1})) == []  # scoped by facility
    place(p, "LATE1")  # the order arrives after the images (common in teleradiology)
    clock.after(seconds=5)
    p.reconciler.run()
    assert state(p, spec.study_uid) == Readiness.READY
    assert [s.uid for s in queue.enqueued] == [spec.study_uid]


def test_gaps_hold_the_study_until_the_hold_limit(setup: tuple[Platform, Queue, Clock]) -> None:
    p, queue, clock = setup
    place(p, "ACC1")
    spec = StudySpec(accession="ACC1")
    store(p, spec, slices=8, skip=(4,))
    clock.after(minutes=3)
    p.reconciler.run()
    held = p.reconciler.states.by_uid(spec.study_uid)
    assert held is not None and held.state == Readiness.INCOMPLETE
    assert held.problems == ("series 1 (CT): instance 4 missing",)
    assert queue.enqueued == []
    clock.after(minutes=30)
    p.reconciler.run()
    assert state(p, spec.study_uid) == Readiness.READY  # read, with the gap shown


def test_mpps_in_progress_holds_and_completed_releases(
    setup: tuple[Platform, Queue, Clock],
) -> None:
    p, queue, clock = setup
    order = place(p, "ACC1")
    spec = StudySpec(accession="ACC1")
    store(p, spec)
    fid = p.default_facility().id
    mpps_uid = "1.2.826.0.1.3680043.2.1.99"
    p.orders.store.put_mpps(mpps_uid, fid, order.id, "IN PROGRESS", spec.study_uid, "{}", clock())
    clock.after(minutes=3)
    p.reconciler.run()
    assert state(p, spec.study_uid) == Readiness.INCOMPLETE
    performed = {
        "00400340": {
            "vr": "SQ",
            "Value": [
                {
                    "0020000E": {"vr": "UI", "Value": [_series_uid(p, spec.study_uid)]},
                    "00081140": {"vr": "SQ", "Value": [{} for _ in range(6)]},
                }
            ],
        }
    }
    p.orders.store.put_mpps(
        mpps_uid, fid, order.id, "COMPLETED", spec.study_uid, json.dumps(performed), clock()
    )
    clock.after(seconds=5)
    p.reconciler.run()
    assert state(p, spec.study_uid) == Readiness.READY
    [reading] = queue.enqueued  # the MPPS path gives the router a modality it knows
    assert reading.modality == "CT" and modality_problem(reading.modality) is None


def _series_uid(p: Platform, study_uid: str) -> str:
    from telerad.domain.model import Level

    return p.index.instances(Level.STUDY, [study_uid])[0].series_instance_uid


def test_a_person_assigns_or_releases(setup: tuple[Platform, Queue, Clock]) -> None:
    p, queue, clock = setup
    a, b = StudySpec(accession="", patient_id="Q1"), StudySpec(accession="", patient_id="Q2")
    store(p, a)
    store(p, b)
    clock.after(minutes=3)
    p.reconciler.run()
    assert state(p, a.study_uid) == state(p, b.study_uid) == Readiness.UNMATCHED
    other = p.index.add_facility("OTHER")
    foreign = p.orders.place(
        Order(other.id, "F1", PatientDemographics("Q1"), p.orders.catalogue.resolve("71250")),
        RIS,
    )
    with pytest.raises(OrderError, match="another facility"):
        p.reconciler.assign(a.study_uid, foreign, Origin("REST", "clerk", is_user=True))
    order = place(p, "MAN1", "Q9")  # a different patient id: a person knows better
    p.reconciler.assign(a.study_uid, order, Origin("REST", "clerk", is_user=True))
    p.reconciler.release(b.study_uid, Priority.URGENT)
    clock.after(seconds=5)
    p.reconciler.run()
    assert state(p, a.study_uid) == state(p, b.study_uid) == Readiness.READY
    tiers = {s.uid: s.priority for s in queue.enqueued}
    assert tiers == {a.study_uid: Priority.STAT, b.study_uid: Priority.URGENT}
    with pytest.raises(OrderError, match="already on the reading worklist"):
        p.reconciler.release(b.study_uid, Priority.ROUTINE)
    with pytest.raises(LookupError):
        p.reconciler.release("9.9.9", Priority.ROUTINE)


def test_objects_made_while_reading_never_withdraw_a_ready_study(
    setup: tuple[Platform, Queue, Clock],
) -> None:
    """Issue 9, fault 1: an SR saved from the viewer withdrew a STAT CT from the worklist."""
    p, queue, clock = setup
    place(p, "ACC1")
    spec = StudySpec(accession="ACC1")
    store(p, spec)
    clock.after(minutes=3)
    p.reconciler.run()
    assert state(p, spec.study_uid) == Readiness.READY
    fid = p.default_facility().id
    # The measurement report a radiologist saves in OHIF (stored over STOW-RS by them)…
    report = to_bytes(measurement_report(spec))
    assert p.archive.store(fid, report, InstanceOrigin.READING).ok
    clock.reset()
    p.reconciler.run()
    # …an SR from the facility's side too (a CAD report sent with the images)…
    assert p.archive.store(fid, to_bytes(measurement_report(spec, "CAD mark"))).ok
    # …and a secondary capture made by the reading network (an AI engine's result).
    series = generate_uid("2.25.")
    assert p.archive.store(fid, to_bytes(tiny_instance(spec, series, 1)), InstanceOrigin.READING).ok
    clock.reset()
    p.reconciler.run()
    assert queue.withdrawn == []
    assert state(p, spec.study_uid) == Readiness.READY
    assert len(queue.enqueued) == 1
    # Later images of the examination still do.
    store(p, spec, slices=2)
    clock.reset()
    p.reconciler.run()
    assert queue.withdrawn == [spec.study_uid]


def test_a_study_sent_to_reading_without_an_order_routes_by_its_modality(
    setup: tuple[Platform, Queue, Clock],
) -> None:
    """Issue 9, fault 2: "read as is" stored the modality as "/CT/", which nobody reads."""
    p, queue, clock = setup
    spec = StudySpec(accession="")
    store(p, spec)
    fid = p.default_facility().id
    assert p.archive.store(fid, to_bytes(measurement_report(spec))).ok  # CT + SR
    clock.after(minutes=3)
    p.reconciler.run()
    assert state(p, spec.study_uid) == Readiness.UNMATCHED
    p.reconciler.release(spec.study_uid, Priority.URGENT)
    clock.after(seconds=5)
    p.reconciler.run()
    [reading] = queue.enqueued
    assert reading.modality == "CT"
    assert modality_problem(reading.modality) is None


def test_an_order_with_a_modality_the_router_does_not_know_routes_by_the_images(
    setup: tuple[Platform, Queue, Clock],
) -> None:
    """A RIS that sends its own section code ("RAD") instead of a DICOM modality."""
    p, queue, clock = setup
    procedure = p.orders.catalogue.resolve("LOCAL-123", "Local CT code", modality="RAD")
    assert procedure.modality == "RAD"
    place(p, "ACC9", procedure=procedure)
    spec = StudySpec(accession="ACC9")
    store(p, spec)
    clock.after(minutes=3)
    p.reconciler.run()
    [reading] = queue.enqueued
    assert reading.modality == "CT"
