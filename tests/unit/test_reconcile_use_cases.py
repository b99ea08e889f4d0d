"""Reconciliation and readiness over fake stores (the fast tier of
tests/integration/test_reconcile.py): matching, readiness, objects made while
reading, release with a tier, performed procedure steps. Instances go into the
fake index as headers; time moves by the fakes' clock."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from tests.fakes.instances import blob, header
from tests.fakes.world import World, world

from telerad.domain.modalities import InstanceOrigin, modality_problem
from telerad.domain.orders import Order, OrderError, OrderStatus, PatientDemographics
from telerad.domain.readiness import Readiness, ReadingState
from telerad.domain.reconciliation import MatchedBy
from telerad.services.orders import Origin
from telerad.services.reconcile import ReadinessPolicy, Reconciler
from telerad.synthetic import COMPREHENSIVE_3D_SR
from telerad.workflow.model import Priority

RIS = Origin("HL7", "RIS")
CLERK = Origin("REST", "clerk", is_user=True)
SC = "1.2.840.10008.5.1.4.1.1.7"  # secondary capture


@dataclass
class Site:
    w: World
    fid: int

    @property
    def reconciler(self) -> Reconciler:
        return self.w.reconciler

    def scan(
        self,
        study: str,
        numbers: Sequence[int] = range(1, 7),
        *,
        series: str = "",
        accession: str = "ACC1",
        patient_id: str = "SYN0001",
        **values: object,
    ) -> None:
        """Instances of one series arrive (CT unless ``values`` say otherwise)."""
        series = series or study + ".1"
        for n in numbers:
            sop = f"{series}.{n}"
            h = header(study, series, sop, InstanceNumber=n, AccessionNumber=accession,
                       PatientID=patient_id, **values)  # fmt: skip
            assert self.w.stores.index.add_instance(self.fid, h, blob(sop, self.fid))

    def place(self, accession: str, patient_id: str = "SYN0001", **kw: object) -> Order:
        values: dict[str, object] = {
            "facility_id": self.fid,
            "accession_number": accession,
            "patient": PatientDemographics(patient_id),
            "procedure": self.w.orders.catalogue.resolve("71250"),  # CT chest
            "priority": Priority.STAT,
        }
        values.update(kw)
        return self.w.orders.place(Order(**values), RIS)  # type: ignore[arg-type]

    def after(self, **delta: float) -> Counter[str]:
        """Time passes, then reconciliation makes a pass: how many studies ended in each state."""
        self.w.clock.after(**delta)
        return self.reconciler.run()

    def known(self, uid: str) -> ReadingState:
        found = self.reconciler.states.by_uid(uid)
        assert found is not None
        return found

    def state(self, uid: str) -> Readiness:
        return self.known(uid).state

    def order(self, placed: Order) -> Order:
        found = self.w.orders.get(placed.id or 0)
        assert found is not None
        return found


@pytest.fixture
def site() -> Site:
    w = world()
    return Site(w, w.stores.index.add_facility("DEFAULT").id)


def test_a_study_with_its_order_becomes_ready_once_stable(site: Site) -> None:
    placed = site.place("ACC1")
    site.scan("1.1")
    assert site.reconciler.run() == {"arriving": 1}
    assert site.state("1.1") == Readiness.ARRIVING
    assert site.order(placed).study_instance_uid == "1.1"  # matched by its accession
    assert site.w.queue.enqueued == []
    assert site.after(minutes=3)["ready"] == 1
    assert site.order(placed).status == OrderStatus.READY
    [reading] = site.w.queue.enqueued
    assert (reading.uid, reading.priority, reading.modality, reading.subspecialty) == (
        "1.1",
        Priority.STAT,
        "CT",
        "chest",
    )
    assert (reading.ready_at, reading.rvu) == (site.w.clock(), placed.procedure.rvu)
    assert reading.deadline == site.w.reading.deadline(site.fid, Priority.STAT, reading.ready_at)
    assert site.after(minutes=1).total() == 0  # nothing changed: nothing looked at again
    history = [h.event for h in site.w.orders.history(site.order(placed))]
    assert history == ["placed", "matched", "ready"]


def test_more_images_after_ready_withdraw_the_study_and_reopen_its_order(site: Site) -> None:
    placed = site.place("ACC1")
    site.scan("1.1")
    site.after(minutes=3)
    assert site.state("1.1") == Readiness.READY
    site.scan("1.1", [1, 2], series="1.1.2")  # a late series of the same study
    site.reconciler.run()
    assert site.w.queue.withdrawn == ["1.1"]
    assert site.state("1.1") == Readiness.ARRIVING
    assert site.order(placed).status == OrderStatus.IN_PROGRESS
    site.after(minutes=3)
    assert site.state("1.1") == Readiness.READY
    assert [s.uid for s in site.w.queue.enqueued] == ["1.1", "1.1"]


def test_unmatched_studies_wait_and_match_when_the_order_comes(site: Site) -> None:
    site.scan("1.1", accession="LATE1")
    site.after(minutes=3)
    waiting = site.known("1.1")
    assert waiting.state == Readiness.UNMATCHED
    assert waiting.problems == ("no open order with accession number LATE1",)
    assert [w.study_uid for w in site.reconciler.waiting(None)] == ["1.1"]
    assert site.reconciler.waiting(frozenset({site.fid + 1})) == []  # scoped by facility
    assert site.after(seconds=5).total() == 0  # no order changed: not looked at again
    site.place("LATE1")  # the order after the images (common in teleradiology)
    site.after(seconds=5)
    assert site.state("1.1") == Readiness.READY
    assert [s.uid for s in site.w.queue.enqueued] == ["1.1"]
    assert site.reconciler.waiting(None) == []


def test_gaps_hold_the_study_until_the_hold_limit(site: Site) -> None:
    site.place("ACC1")
    site.scan("1.1", [1, 2, 3, 5, 6, 7, 8])
    site.after(minutes=3)
    held = site.known("1.1")
    assert held.state == Readiness.INCOMPLETE
    assert held.problems == ("series 1 (CT): instance 4 missing",)
    assert [w.study_uid for w in site.reconciler.waiting(None)] == ["1.1"]
    assert site.w.queue.enqueued == []
    site.after(minutes=30)
    assert site.state("1.1") == Readiness.READY  # read, with the gap shown
    assert "instance 4 missing" in " ".join(site.known("1.1").problems)


def test_a_performed_step_in_progress_holds_and_its_completion_releases(site: Site) -> None:
    placed = site.place("ACC1")
    site.scan("1.1")
    steps = site.w.stores.orders
    steps.put_mpps("5.1", site.fid, placed.id, "IN PROGRESS", "1.1", "{}", site.w.clock())
    site.after(minutes=3)
    assert site.state("1.1") == Readiness.INCOMPLETE
    performed = {
        "00400340": {
            "vr": "SQ",
            "Value": [
                {
                    "0020000E": {"vr": "UI", "Value": ["1.1.1"]},
                    "00081140": {"vr": "SQ", "Value": [{} for _ in range(6)]},
                }
            ],
        }
    }
    steps.put_mpps(
        "5.1", site.fid, placed.id, "COMPLETED", "1.1", json.dumps(performed), site.w.clock()
    )
    site.after(seconds=5)
    assert site.state("1.1") == Readiness.READY
    [reading] = site.w.queue.enqueued
    assert reading.modality == "CT" and modality_problem(reading.modality) is None


def test_a_person_assigns_an_order_or_releases_a_study_at_a_tier(site: Site) -> None:
    site.scan("1.1", accession="", patient_id="Q1")
    site.scan("1.2", accession="", patient_id="Q2")
    site.after(minutes=3)
    assert site.state("1.1") == site.state("1.2") == Readiness.UNMATCHED
    other = site.w.stores.index.add_facility("OTHER").id
    foreign = site.w.orders.place(
        Order(other, "F1", PatientDemographics("Q1"), site.w.orders.catalogue.resolve("71250")),
        RIS,
    )
    with pytest.raises(OrderError, match="another facility"):
        site.reconciler.assign("1.1", foreign, CLERK)
    cancelled = site.w.orders.cancel(site.place("GONE", "Q1"), RIS)
    with pytest.raises(OrderError, match="cancelled cannot take a study"):
        site.reconciler.assign("1.1", cancelled, CLERK)
    order = site.place("MAN1", "Q9")  # another patient id: a person knows better
    matched = site.reconciler.assign("1.1", order, CLERK)
    assert (matched.matched_by, matched.state, matched.problems) == (
        MatchedBy.PERSON.value,
        Readiness.ARRIVING,
        (),
    )
    with pytest.raises(OrderError, match="already matched to another order"):
        site.reconciler.assign("1.1", site.place("MAN2", "Q9"), CLERK)
    site.reconciler.release("1.2", Priority.URGENT)
    site.after(seconds=5)
    assert site.state("1.1") == site.state("1.2") == Readiness.READY
    tiers = {s.uid: s.priority for s in site.w.queue.enqueued}
    assert tiers == {"1.1": Priority.STAT, "1.2": Priority.URGENT}
    assert site.order(order).study_instance_uid == "1.1"
    with pytest.raises(OrderError, match="already on the reading worklist"):
        site.reconciler.release("1.2", Priority.ROUTINE)
    with pytest.raises(LookupError):
        site.reconciler.release("9.9", Priority.ROUTINE)


def test_objects_made_while_reading_never_withdraw_a_ready_study(site: Site) -> None:
    """Issue 9, fault 1: an SR saved from the viewer withdrew a STAT CT from the worklist."""
    site.place("ACC1")
    site.scan("1.1")
    site.after(minutes=3)
    assert site.state("1.1") == Readiness.READY
    reading = InstanceOrigin.READING.value
    # The measurement report a radiologist saves in the viewer…
    site.scan("1.1", [1], series="1.1.900", Modality="SR", SOPClassUID=COMPREHENSIVE_3D_SR,
              origin=reading)  # fmt: skip
    site.reconciler.run()
    # …an SR from the facility's side (a CAD report sent with the images)…
    site.scan("1.1", [1], series="1.1.901", Modality="SR", SOPClassUID=COMPREHENSIVE_3D_SR)
    # …and a secondary capture the reading network made (an AI engine's result).
    site.scan("1.1", [1], series="1.1.902", Modality="OT", SOPClassUID=SC, origin=reading)
    site.reconciler.run()
    assert site.w.queue.withdrawn == [] and len(site.w.queue.enqueued) == 1
    kept = site.known("1.1")
    assert (kept.state, kept.instances) == (Readiness.READY, 9)
    site.scan("1.1", [7, 8])  # later images of the examination still do
    site.reconciler.run()
    assert site.w.queue.withdrawn == ["1.1"]


def test_a_study_read_without_an_order_is_routed_by_its_images_modality(site: Site) -> None:
    """Issue 9, fault 2: "read as is" stored the modality as "/CT/", which nobody reads."""
    site.scan("1.1", accession="")
    site.scan("1.1", [1], series="1.1.900", Modality="SR", SOPClassUID=COMPREHENSIVE_3D_SR)
    site.after(minutes=3)
    assert site.state("1.1") == Readiness.UNMATCHED
    site.reconciler.release("1.1", Priority.URGENT)
    site.after(seconds=5)
    [reading] = site.w.queue.enqueued
    assert (reading.modality, reading.priority, reading.subspecialty) == ("CT", Priority.URGENT, "")


def test_an_order_s_modality_the_router_does_not_know_gives_way_to_the_images(site: Site) -> None:
    """A RIS that sends its own section code ("RAD") instead of a DICOM modality."""
    procedure = site.w.orders.catalogue.resolve("LOCAL-123", "Local CT code", modality="RAD")
    site.place("ACC9", procedure=procedure)
    site.scan("1.1", accession="ACC9")
    site.after(minutes=3)
    [reading] = site.w.queue.enqueued
    assert reading.modality == "CT"


def test_a_pass_looks_at_a_batch_of_studies_at_most(site: Site) -> None:
    reconciler = Reconciler(
        site.w.stores.states,
        site.w.orders,
        site.w.stores.index.facility_by_id,
        site.w.reading.deadline,
        ReadinessPolicy(batch=2),
        queue=site.w.queue,
        clock=site.w.clock,
    )
    for uid in ("1.1", "1.2", "1.3"):
        site.scan(uid, accession="")
    site.w.clock.after(minutes=3)
    assert reconciler.run() == {"unmatched": 2}
    assert reconciler.run() == {"unmatched": 1}  # the rest next time
    assert [s.study_uid for s in reconciler.waiting(None)] == ["1.1", "1.2", "1.3"]
