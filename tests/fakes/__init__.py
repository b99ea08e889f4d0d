"""Fakes: an in-memory implementation of every port, and stand-ins for the parts of
third-party objects that handlers read.

One module per store, each behaving like its SQL (or file) store where services
rely on it; tests/integration/contracts runs the same assertions on both:

* :mod:`tests.fakes.index` — the archive index (``services.ports.Index``)
* :mod:`tests.fakes.blobs` — the blob store (``services.ports.BlobStore``)
* :mod:`tests.fakes.identity` — accounts, sessions, grants (``services.auth.IdentityStore``)
* :mod:`tests.fakes.audit` — the audit trail (``services.audit.AuditRepository``)
* :mod:`tests.fakes.orders` — orders, stations, slots, steps (``services.orders.OrderStore``)
* :mod:`tests.fakes.reading` — the reading worklist (``services.ports.ReadingStore``)
* :mod:`tests.fakes.reconcile` — reading states (``services.reconcile.StateStore``)
* :mod:`tests.fakes.templates` — imported report templates (``services.templates.TemplateStore``)

:mod:`tests.fakes.world` puts them together with the services over them.
"""

from __future__ import annotations

from types import SimpleNamespace

from pydicom import Dataset
from tests.fakes.audit import FakeAuditRepository
from tests.fakes.blobs import FakeBlobStore
from tests.fakes.common import Clock
from tests.fakes.identity import FakeIdentity
from tests.fakes.index import FakeIndex
from tests.fakes.orders import FakeOrders
from tests.fakes.reading import FakeReading
from tests.fakes.reconcile import FakeReadingStates
from tests.fakes.templates import FakeTemplates

__all__ = [
    "Clock",
    "FakeAuditRepository",
    "FakeBlobStore",
    "FakeIdentity",
    "FakeIndex",
    "FakeOrders",
    "FakeReading",
    "FakeReadingStates",
    "FakeTemplates",
    "FindEvent",
]


class FindEvent:
    """The parts of a pynetdicom C-FIND event a handler reads; cancelled on the n-th check."""

    def __init__(
        self, identifier: Dataset, sop_class: str, calling_ae: str, cancel_on_check: int
    ) -> None:
        self.identifier = identifier
        self.request = SimpleNamespace(AffectedSOPClassUID=sop_class)
        self.assoc = SimpleNamespace(
            requestor=SimpleNamespace(ae_title=calling_ae, address="127.0.0.1"),
            acceptor=SimpleNamespace(ae_title="TELERAD"),
        )
        self._checks = 0
        self._cancel_on = cancel_on_check

    @property
    def is_cancelled(self) -> bool:
        self._checks += 1
        return self._checks >= self._cancel_on
