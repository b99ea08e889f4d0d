"""Use cases that write several stores do it in one unit of work (issue 10, part 4), over the
fakes: a failure injected half-way leaves nothing of the use case in any store, and the
reading worklist forgets what it held of it (the fast tier of
tests/integration/test_unit_of_work.py)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.fakes.instances import blob, header
from tests.fakes.unit_of_work import FakeUnitOfWork
from tests.fakes.world import World, world

from telerad.domain.audit import EventID
from telerad.domain.orders import Order, OrderStatus, PatientDemographics
from telerad.domain.readiness import Readiness
from telerad.services.audit import AuditService
from telerad.services.orders import Origin
from telerad.services.reconcile import ReadinessPolicy, Reconciler

RIS = Origin("HL7", "RIS")


class Injected(RuntimeError):
    """The failure a test injects half-way through a use case."""


def _fail_at(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise Injected(name)

    monkeypatch.setattr(owner, name, boom)


def _feeding_the_worklist(w: World) -> Reconciler:
    """Reconciliation as the platform wires it: the reading service is its queue."""
    return Reconciler(
        w.stores.states,
        w.orders,
        w.stores.index.facility_by_id,
        w.reading.deadline,
        ReadinessPolicy(),
        queue=w.reading,
        clock=w.clock,
        unit_of_work=w.unit,
    )


def _arrived(w: World, reconciler: Reconciler) -> tuple[int, Order]:
    """An order and its study, matched and stable: the next pass sends it to reading."""
    fid = w.stores.index.add_facility("North").id
    procedure = w.orders.catalogue.resolve("71250")
    order = w.orders.place(Order(fid, "ACC1", PatientDemographics("P1"), procedure), RIS)
    for n in range(1, 4):
        sop = f"1.1.1.{n}"
        h = header("1.1", "1.1.1", sop, InstanceNumber=n, AccessionNumber="ACC1")
        assert w.stores.index.add_instance(fid, h, blob(sop, fid))
    reconciler.run()
    w.clock.after(minutes=3)
    return fid, order


def test_a_failed_pass_leaves_nothing_and_the_worklist_forgets_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = world()
    reconciler = _feeding_the_worklist(w)
    _, order = _arrived(w, reconciler)
    audit, rollbacks = w.stores.audit.count(), w.unit.rollbacks
    _fail_at(monkeypatch, w.stores.states, "put_all")  # the pass's last write
    with pytest.raises(Injected):
        reconciler.run()
    assert w.unit.rollbacks == rollbacks + 1
    kept = w.orders.get(order.id or 0)
    assert kept is not None and kept.status is OrderStatus.ORDERED
    assert w.stores.audit.count() == audit
    assert w.stores.reading.open_entries() == [] and w.stores.reading.history("1.1") is None
    assert reconciler.states.by_uid("1.1").state is Readiness.ARRIVING  # type: ignore[union-attr]
    assert "1.1" not in w.reading.worklist.studies
    monkeypatch.undo()
    assert reconciler.run()["ready"] == 1
    ready = w.orders.get(order.id or 0)
    assert ready is not None and ready.status is OrderStatus.READY
    assert [e.study.uid for e in w.stores.reading.open_entries()] == ["1.1"]
    assert "1.1" in w.reading.worklist.studies


def test_a_pass_is_one_unit_and_an_idle_pass_none() -> None:
    w = world()
    reconciler = _feeding_the_worklist(w)
    _arrived(w, reconciler)
    commits = w.unit.commits
    assert reconciler.run()["ready"] == 1
    assert w.unit.commits == commits + 1  # the order, its audit, the entry and the state
    w.clock.after(minutes=1)
    assert reconciler.run().total() == 0
    assert w.unit.commits == commits + 1


def test_a_cancel_is_kept_only_with_its_audit_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = world()
    fid = w.stores.index.add_facility("North").id
    procedure = w.orders.catalogue.resolve("71250")
    order = w.orders.place(Order(fid, "ACC1", PatientDemographics("P1"), procedure), RIS)
    _fail_at(monkeypatch, w.audit, "record")
    with pytest.raises(Injected):
        w.orders.cancel(order, RIS, "wrong patient")
    kept = w.orders.get(order.id or 0)
    assert kept is not None and kept.status is OrderStatus.ORDERED
    assert [e.event for e in w.orders.history(kept)] == ["placed"]


def test_a_record_is_forwarded_once_its_unit_commits_and_never_when_undone() -> None:
    w = world()
    forwarded: list[str] = []
    audit = AuditService(w.stores.audit, [lambda r: forwarded.append(r.detail)], w.unit)
    with w.unit:
        audit.record(EventID.QUERY, "x", detail="kept")
        assert forwarded == []
    with pytest.raises(Injected), w.unit:
        audit.record(EventID.QUERY, "x", detail="undone")
        raise Injected
    audit.record(EventID.QUERY, "x", detail="alone")
    assert forwarded == ["kept", "alone"]
    assert [r.detail for r in w.stores.audit.records()] == ["kept", "alone"]


def test_the_fake_unit_undoes_nested_levels_alone() -> None:
    w = world()
    unit: FakeUnitOfWork = w.unit
    index = w.stores.index
    with unit:
        index.add_facility("North")
        with pytest.raises(Injected), unit:
            index.add_facility("South")
            raise Injected
    assert [f.name for f in index.list_facilities()] == ["North"]
    assert (unit.commits, unit.rollbacks, unit.undone) == (1, 0, 1)
