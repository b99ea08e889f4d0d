"""The unit of work (``services.ports.UnitOfWork``) over the stores a use case writes: the
fake (tests/fakes/unit_of_work.py) and SqlUnitOfWork on SQLite and PostgreSQL keep all of
a unit's writes or none, nest as savepoints and run their callbacks at the same moments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tests.fakes.instances import blob, header
from tests.fakes.orders import FakeOrders
from tests.fakes.unit_of_work import FakeUnitOfWork
from tests.fakes.world import Stores

from telerad.domain.audit import AuditEvent, EventID
from telerad.domain.orders import Order, OrderError, PatientDemographics, Procedure
from telerad.domain.readiness import Readiness, ReadingState
from telerad.services.ports import UnitOfWork
from telerad.storage.db.unit_of_work import SqlUnitOfWork
from telerad.workflow.model import Priority, ReadingStudy

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


class Injected(RuntimeError):
    """The failure a test injects half-way through a unit."""


@pytest.fixture
def unit(stores: Stores) -> UnitOfWork:
    if isinstance(stores.orders, FakeOrders):
        return FakeUnitOfWork(
            stores.index,
            stores.identity,
            stores.audit,
            stores.orders,
            stores.reading,
            stores.states,
        )
    return SqlUnitOfWork(stores.orders.engine)


def _order(fid: int, accession: str) -> Order:
    return Order(fid, accession, PatientDemographics("P1"), Procedure("71250"))


def _reading(uid: str, fid: int) -> ReadingStudy:
    return ReadingStudy(
        uid, fid, "US-CA", "CT", Priority.STAT, ready_at=T0, deadline=T0 + timedelta(hours=1)
    )


def _study(stores: Stores, fid: int, uid: str) -> ReadingState:
    sop = uid + ".1.1"
    assert stores.index.add_instance(fid, header(uid, uid + ".1", sop), blob(sop, fid))
    [facts] = [f for f in stores.states.to_check(None, 100) if f.uid == uid]
    assert facts.pk is not None
    return ReadingState(facts.pk, uid, fid, Readiness.READY, facts.last_change, 1)


def _written(stores: Stores, fid: int, uid: str) -> dict[str, object]:
    """What the writes of these tests left, store by store."""
    return {
        "order": stores.orders.by_accession(fid, "A1") is not None,
        "audit": stores.audit.count(),
        "entries": [e.study.uid for e in stores.reading.open_entries()],
        "state": stores.states.by_uid(uid) is not None,
    }


def _write_all(stores: Stores, fid: int, state: ReadingState, now: datetime) -> None:
    """One use case's writes over four stores: an order, an audit record, a worklist
    entry and a reading state."""
    stores.orders.add(_order(fid, "A1"), now, "REST")
    stores.audit.append(AuditEvent(EventID.ORDER_RECORD, "clerk", detail="placed"))
    stores.reading.add_entry(_reading(state.study_uid, fid))
    stores.states.put(state)


def test_a_failure_after_the_first_write_leaves_nothing_written(
    stores: Stores, unit: UnitOfWork
) -> None:
    fid = stores.index.add_facility("North").id
    state = _study(stores, fid, "1.1")
    before = _written(stores, fid, "1.1")
    assert before == {"order": False, "audit": 0, "entries": [], "state": False}
    with pytest.raises(Injected), unit:
        stores.orders.add(_order(fid, "A1"), T0, "REST")
        assert stores.orders.by_accession(fid, "A1") is not None  # the unit reads its writes
        raise Injected
    assert _written(stores, fid, "1.1") == before
    with pytest.raises(Injected), unit:
        _write_all(stores, fid, state, T0)
        raise Injected
    assert _written(stores, fid, "1.1") == before


def test_a_unit_that_ends_keeps_every_write(stores: Stores, unit: UnitOfWork) -> None:
    fid = stores.index.add_facility("North").id
    state = _study(stores, fid, "1.1")
    with unit:
        _write_all(stores, fid, state, T0)
    assert _written(stores, fid, "1.1") == {
        "order": True,
        "audit": 1,
        "entries": ["1.1"],
        "state": True,
    }
    assert [r.detail for r in stores.audit.records()] == ["placed"]


def test_nested_units_are_savepoints(stores: Stores, unit: UnitOfWork) -> None:
    fid = stores.index.add_facility("North").id
    with unit:
        stores.orders.add(_order(fid, "A1"), T0, "REST")
        with pytest.raises(Injected), unit:
            stores.orders.add(_order(fid, "A2"), T0, "REST")
            stores.audit.append(AuditEvent(EventID.ORDER_RECORD, "clerk", detail="inner"))
            raise Injected
        stores.audit.append(AuditEvent(EventID.ORDER_RECORD, "clerk", detail="outer"))
    assert stores.orders.by_accession(fid, "A1") is not None
    assert stores.orders.by_accession(fid, "A2") is None
    assert [r.detail for r in stores.audit.records()] == ["outer"]


def test_a_write_the_store_refuses_leaves_the_unit_usable(stores: Stores, unit: UnitOfWork) -> None:
    """PostgreSQL aborts a transaction at a failed statement: each store write in a unit is
    a savepoint, so a duplicate the store turns into an OrderError is undone alone."""
    fid = stores.index.add_facility("North").id
    with unit:
        stores.orders.add(_order(fid, "A1"), T0, "REST")
        with pytest.raises(OrderError):
            stores.orders.add(_order(fid, "A1"), T0, "REST")
        stores.orders.add(_order(fid, "A2"), T0, "REST")
    assert stores.orders.by_accession(fid, "A1") is not None
    assert stores.orders.by_accession(fid, "A2") is not None


def test_callbacks_run_after_the_commit_or_the_rollback(unit: UnitOfWork) -> None:
    ran: list[str] = []
    unit.after_commit(lambda: ran.append("no unit: at once"))
    unit.on_rollback(lambda: ran.append("no unit: never"))
    with unit:
        unit.after_commit(lambda: ran.append("committed"))
        unit.on_rollback(lambda: ran.append("never"))
        assert ran == ["no unit: at once"]
    with pytest.raises(Injected), unit:
        unit.after_commit(lambda: ran.append("never"))
        with unit:  # an inner level's callbacks follow the outer one's fate
            unit.on_rollback(lambda: ran.append("rolled back"))
        raise Injected
    assert ran == ["no unit: at once", "committed", "rolled back"]
