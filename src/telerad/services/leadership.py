"""Which process makes the reading worklist's decisions (and runs reconciliation).

Several `telerad serve` processes may share one database behind one address.
They all serve DICOM and HTTP, but the reading worklist lives in one process's
memory and decides one thing at a time: exactly one process — the holder of
the ``reading`` lease in the database — routes, runs the worklist's clock and
reconciles. The others forward the worklist's and reconciliation's requests to
it (:mod:`telerad.web.leader`).

The lease is taken or renewed every :data:`RENEW` and lasts :data:`TTL`; a
holder that stops (killed, cut off from the database) loses it when it
expires, and another process takes it: it rebuilds the worklist from the
database (holds kept) and carries on. A holder that finds it lost the lease
drops its worklist at once, before another could decide anything.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from telerad.domain.leases import Lease

log = logging.getLogger(__name__)

READING = "reading"
#: How long a lease lasts without renewal; how often it is renewed.
TTL = timedelta(seconds=10)
RENEW = 2.0


class LeaseStore(Protocol):
    """Leases in the database (storage.db.lease_repository.SqlLeases)."""

    def acquire(
        self, name: str, holder: str, address: str, now: datetime, ttl: timedelta
    ) -> bool: ...

    def holder(self, name: str, now: datetime) -> Lease | None: ...

    def release(self, name: str, holder: str) -> None: ...


def process_id() -> str:
    """This process, unique across machines and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Leadership:
    def __init__(
        self,
        store: LeaseStore,
        address: str,
        *,
        name: str = READING,
        ttl: timedelta = TTL,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.address = address
        self.name = name
        self.ttl = ttl
        self.clock = clock
        self.me = process_id()
        self._leader = False
        #: The lease is being kept (the ``leadership`` loop runs): requests for what
        #: the holder decides go to it. False in tests and commands: all is local.
        self.started = False
        self._lock = threading.Lock()
        #: Called (under no lock) when this process becomes the holder, and when it stops.
        self.on_gain: list[Callable[[], object]] = []
        self.on_loss: list[Callable[[], object]] = []

    @property
    def is_leader(self) -> bool:
        return self._leader

    def renew(self) -> bool:
        """Take or keep the lease; True while this process holds it. Run every RENEW s."""
        try:
            held = self.store.acquire(self.name, self.me, self.address, self.clock(), self.ttl)
        except Exception:  # the database is unreachable: we may not hold it any more
            log.warning("lease %s: the database did not answer; stepping down", self.name)
            held = False
        with self._lock:
            gained, lost = held and not self._leader, self._leader and not held
            self._leader = held
        if gained:
            log.info("lease %s: this process now decides", self.name)
            for call in self.on_gain:
                call()
        if lost:
            log.warning("lease %s: lost; another process decides now", self.name)
            for call in self.on_loss:
                call()
        return held

    def leader(self) -> Lease | None:
        """Who decides now (None while the lease changes hands)."""
        return self.store.holder(self.name, self.clock())

    def step_down(self) -> None:
        """Give the lease up (a clean stop): another process may take it at once."""
        with self._lock:
            was, self._leader = self._leader, False
            self.started = False
        if was:
            for call in self.on_loss:
                call()
            try:
                self.store.release(self.name, self.me)
            except Exception:
                log.warning("lease %s: not released; it expires by itself", self.name)
