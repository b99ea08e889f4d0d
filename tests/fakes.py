"""Stand-ins for the parts of third-party objects that handlers read."""

from __future__ import annotations

from types import SimpleNamespace

from pydicom import Dataset


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
