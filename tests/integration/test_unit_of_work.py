"""Use cases that write several stores do it in one unit of work, on SQLite and PostgreSQL:
a failure injected after the first writes leaves nothing of the use case written (issue 10,
part 4) — the reconciliation pass that sends a study to reading (order, audit records,
worklist entry, reading state), a match by hand, a release by a person."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from telerad.bootstrap import Platform
from telerad.domain.audit import AuditEvent, EventID, verify
from telerad.domain.identity import Role
from telerad.domain.orders import Order, OrderStatus, PatientDemographics
from telerad.domain.readiness import Readiness
from telerad.services.access_audit import Actor
from telerad.services.orders import Origin
from telerad.synthetic import StudySpec, ct_series, to_bytes
from telerad.workflow.model import Priority

RIS = Origin("HL7", "RIS")
CLERK = Actor("clerk", "facility-user", True, "10.0.0.8")


class Injected(RuntimeError):
    """The failure a test injects half-way through a use case."""


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def after(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def setup(request: pytest.FixtureRequest) -> tuple[Platform, Clock]:
    """A platform wired as `telerad serve` wires it (the reading service is the queue),
    its reconciliation and orders on a clock the test moves."""
    p: Platform = request.getfixturevalue(
        "platform" if request.param == "sqlite" else "pg_platform"
    )
    clock = Clock()
    p.reconciler.clock = clock
    p.orders.clock = clock
    return p, clock


def _arrived(p: Platform, clock: Clock, accession: str = "ACC1") -> tuple[Order, StudySpec]:
    """An order and its study, matched by a first pass and stable since: the next pass
    makes the study ready and sends it to reading."""
    fid = p.default_facility().id
    procedure = p.orders.catalogue.resolve("71250")  # CT chest
    order = p.orders.place(Order(fid, accession, PatientDemographics("SYN0001"), procedure), RIS)
    spec = StudySpec(accession=accession)
    for ds in ct_series(spec, slices=4, rows=16, cols=16):
        assert p.archive.store(fid, to_bytes(ds)).ok
    p.reconciler.run()
    clock.after(minutes=3)
    return order, spec


def _trail(p: Platform) -> list[tuple[str, str]]:
    return [(r.event_id, r.detail) for r in p.audit.repository.records()]


def _fail_at(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise Injected(name)

    monkeypatch.setattr(owner, name, boom)


def test_a_failed_pass_leaves_nothing_of_itself(
    setup: tuple[Platform, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    p, clock = setup
    order, spec = _arrived(p, clock)
    uid = spec.study_uid
    trail = _trail(p)
    # The pass moves the order to READY (and audits it), writes the worklist entry and
    # routes it, then fails on its last write: the reading states.
    _fail_at(monkeypatch, p.reconciler.states, "put_all")
    with pytest.raises(Injected):
        p.reconciler.run()
    kept = p.orders.get(order.id or 0)
    assert kept is not None and kept.status is OrderStatus.ORDERED
    assert kept.study_instance_uid == uid  # the first pass's match stays
    assert _trail(p) == trail
    assert p.reading.store.history(uid) is None
    assert p.reading.store.open_entries() == []
    found = p.reconciler.states.by_uid(uid)
    assert found is not None and found.state is Readiness.ARRIVING
    assert uid not in p.reading.worklist.studies  # what memory held of it is gone too
    monkeypatch.undo()
    # The same pass without the failure writes all of it.
    assert p.reconciler.run()["ready"] == 1
    ready = p.orders.get(order.id or 0)
    assert ready is not None and ready.status is OrderStatus.READY
    assert [e.study.uid for e in p.reading.store.open_entries()] == [uid]
    assert uid in p.reading.worklist.studies
    assert any(f"order {order.accession_number} ready" in d for _, d in _trail(p)[len(trail) :])
    assert verify(p.audit.repository.records()).ok


def test_a_failure_while_routing_undoes_the_order_moved_before(
    setup: tuple[Platform, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The failure right after the pass's first writes (the order moved and audited): the
    worklist entry cannot be written."""
    p, clock = setup
    order, spec = _arrived(p, clock)
    trail = _trail(p)
    _fail_at(monkeypatch, p.reading.store, "add_entry")
    with pytest.raises(Injected):
        p.reconciler.run()
    kept = p.orders.get(order.id or 0)
    assert kept is not None and kept.status is OrderStatus.ORDERED
    assert _trail(p) == trail
    found = p.reconciler.states.by_uid(spec.study_uid)
    assert found is not None and found.state is Readiness.ARRIVING


def test_a_match_by_hand_and_a_release_are_whole_or_nothing(
    setup: tuple[Platform, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    p, clock = setup
    fid = p.default_facility().id
    a, b = StudySpec(accession="", patient_id="Q1"), StudySpec(accession="", patient_id="Q2")
    for spec in (a, b):
        for ds in ct_series(spec, slices=2, rows=16, cols=16):
            assert p.archive.store(fid, to_bytes(ds)).ok
    clock.after(minutes=3)
    p.reconciler.run()
    procedure = p.orders.catalogue.resolve("71250")
    order = p.orders.place(Order(fid, "MAN1", PatientDemographics("Q9"), procedure), RIS)
    trail = _trail(p)
    # The order is matched (and audited) before the study's state is written.
    _fail_at(monkeypatch, p.reconciler.states, "put_all")
    with pytest.raises(Injected):
        p.reconciler.assign(a.study_uid, order, Origin("REST", "clerk", is_user=True))
    monkeypatch.undo()
    # The state is written before the release's audit record.
    _fail_at(monkeypatch, p.audit.repository, "append")
    with pytest.raises(Injected):
        p.reconciler.release(b.study_uid, Priority.URGENT, CLERK)
    monkeypatch.undo()
    unmatched = p.orders.get(order.id or 0)
    assert unmatched is not None and unmatched.study_instance_uid == ""
    assert _trail(p) == trail
    for spec in (a, b):
        found = p.reconciler.states.by_uid(spec.study_uid)
        assert found is not None and found.state is Readiness.UNMATCHED
        assert found.matched_by == found.released_as == ""
    p.reconciler.assign(a.study_uid, order, Origin("REST", "clerk", is_user=True))
    p.reconciler.release(b.study_uid, Priority.URGENT, CLERK)
    details = [d for _, d in _trail(p)[len(trail) :]]
    assert details == [
        "order MAN1 matched to its study by a person (REST)",
        "released to reading as urgent",
    ]


def test_an_audit_append_waiting_elsewhere_never_blocks_a_unit(
    setup: tuple[Platform, Clock],
) -> None:
    """Another thread appending to the trail while a unit holds the database (SQLite's
    write lock) waits for the unit; the unit's own appends must not wait for it."""
    p, clock = setup
    fid = p.default_facility().id
    procedure = p.orders.catalogue.resolve("71250")
    done = threading.Event()

    def elsewhere() -> None:
        p.audit.record(EventID.SECURITY_ALERT, "other", detail="elsewhere")
        done.set()

    started = time.monotonic()
    with p.orders.unit:
        p.orders.place(Order(fid, "U1", PatientDemographics("P1"), procedure), RIS)
        other = threading.Thread(target=elsewhere)
        other.start()
        time.sleep(0.3)  # the other append is under way (on SQLite: waiting for the lock)
        p.audit.repository.append(AuditEvent(EventID.ORDER_RECORD, "clerk", detail="inside"))
    other.join(20)
    assert done.is_set() and time.monotonic() - started < 10
    details = [d for _, d in _trail(p)]
    assert "inside" in details and "elsewhere" in details
    assert verify(p.audit.repository.records()).ok


def test_a_worklist_command_during_a_pass_waits_for_it_rather_than_deadlocking(
    setup: tuple[Platform, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pass takes the worklist's lock before its transaction: a radiologist's request
    that writes under that lock waits for the pass instead of holding the lock while it
    waits for the pass's transaction (on SQLite, the database's write lock)."""
    p, clock = setup
    reader = p.auth.create_user("ana", Role.RADIOLOGIST)
    p.reading.start()
    _arrived(p, clock)
    step, stepped = p.orders.step, threading.Event()

    def step_then_pause(*args: Any, **kwargs: Any) -> Order:
        moved = step(*args, **kwargs)  # the pass has written: its transaction holds on
        stepped.set()
        time.sleep(0.5)  # the request below comes now
        return moved

    monkeypatch.setattr(p.orders, "step", step_then_pause)
    failures: list[BaseException] = []

    def request() -> None:
        stepped.wait(10)
        try:
            p.reading.seen(reader.id, token=True)  # writes the token's use
        except BaseException as exc:
            failures.append(exc)

    other = threading.Thread(target=request)
    other.start()
    started = time.monotonic()
    assert p.reconciler.run()["ready"] == 1
    other.join(20)
    assert not other.is_alive() and failures == []
    assert time.monotonic() - started < 10
