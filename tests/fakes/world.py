"""Every store a platform has, as fakes, and the services over them: the unit tier's
platform, built in memory in a millisecond.

:class:`Stores` names the stores the way the contract tests name the real ones
(tests/integration/contracts), so one assertion runs on both.
"""

from __future__ import annotations

import functools
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from tests.fakes.audit import FakeAuditRepository
from tests.fakes.blobs import FakeBlobStore
from tests.fakes.common import Clock
from tests.fakes.identity import FakeIdentity
from tests.fakes.index import FakeIndex
from tests.fakes.orders import FakeOrders
from tests.fakes.reading import FakeReading
from tests.fakes.reconcile import FakeReadingStates
from tests.fakes.templates import FakeTemplates
from tests.fakes.unit_of_work import FakeUnitOfWork

from telerad.domain.procedures import Catalogue, load_catalogue
from telerad.services.access_audit import AccessLog
from telerad.services.archive import Archive
from telerad.services.audit import AuditService
from telerad.services.auth import AuthPolicy, AuthService
from telerad.services.orders import OrderService
from telerad.services.reading import ReadingService
from telerad.services.reconcile import ReadinessPolicy, Reconciler
from telerad.services.studies import Studies
from telerad.services.templates import TemplateService
from telerad.workflow.model import ReadingStudy

#: argon2id at its cheapest: the same hashes and checks, in microseconds, not 0.4 s.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
SECRET = b"a platform secret for tests, 32+ bytes long"


@dataclass
class Stores:
    """The platform's stores, real or fake; ``Any`` where the two are different classes
    behind one port (and one or two methods beyond it: ``counts``, ``put_mpps``)."""

    index: Any
    blobs: Any
    identity: Any
    audit: Any
    orders: Any
    reading: Any
    states: Any
    templates: Any


def fake_stores(clock: Clock) -> Stores:
    index = FakeIndex(clock)
    identity = FakeIdentity()
    orders = FakeOrders(index)
    return Stores(
        index=index,
        blobs=FakeBlobStore(),
        identity=identity,
        audit=FakeAuditRepository(clock),
        orders=orders,
        reading=FakeReading(identity),
        states=FakeReadingStates(index, orders),
        templates=FakeTemplates(),
    )


@functools.cache
def catalogue() -> Catalogue:
    """The shipped procedure catalogue, read once per test session."""
    return load_catalogue()


@dataclass
class Queue:
    """The reading worklist as reconciliation sees it, recording what it was given."""

    enqueued: list[ReadingStudy] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)

    def enqueue(self, study: ReadingStudy, now: datetime) -> None:
        self.enqueued.append(study)

    def withdraw(self, study_uid: str, now: datetime) -> None:
        self.withdrawn.append(study_uid)

    def held(self) -> AbstractContextManager[object]:
        return nullcontext()


@dataclass
class World:
    """The services of one platform over fake stores, sharing one clock."""

    clock: Clock
    stores: Stores
    #: The one unit of work over every fake store but the blobs.
    unit: FakeUnitOfWork
    audit: AuditService
    #: The access log every service shares (repeats within its window folded).
    access: AccessLog
    archive: Archive
    studies: Studies
    auth: AuthService
    orders: OrderService
    reading: ReadingService
    queue: Queue
    reconciler: Reconciler
    templates: TemplateService


def world(clock: Clock | None = None, policy: AuthPolicy | None = None) -> World:
    clock = clock or Clock()
    stores = fake_stores(clock)
    unit = FakeUnitOfWork(
        stores.index, stores.identity, stores.audit, stores.orders, stores.reading, stores.states
    )
    audit = AuditService(stores.audit, unit_of_work=unit)

    def names(facility_id: int) -> str:
        found = stores.index.facility_by_id(facility_id)
        return found.name if found is not None else str(facility_id)

    access = AccessLog(audit, names, clock=lambda: clock().timestamp())
    orders = OrderService(
        stores.orders, audit, catalogue(), names, clock=clock, access=access, unit_of_work=unit
    )
    reading = ReadingService(
        stores.reading, clock=clock, audit=audit, facility_name=names, unit_of_work=unit
    )
    queue = Queue()
    reconciler = Reconciler(
        stores.states,
        orders,
        stores.index.facility_by_id,
        reading.deadline,
        ReadinessPolicy(),
        queue=queue,
        clock=clock,
        unit_of_work=unit,
    )
    archive = Archive(stores.index, stores.blobs)
    return World(
        clock=clock,
        stores=stores,
        unit=unit,
        audit=audit,
        access=access,
        archive=archive,
        studies=Studies(archive, access),
        auth=AuthService(stores.identity, SECRET, audit, policy, clock, hasher=CHEAP_HASHER),
        orders=orders,
        reading=reading,
        queue=queue,
        reconciler=reconciler,
        templates=TemplateService(stores.templates, audit, clock=clock),
    )
