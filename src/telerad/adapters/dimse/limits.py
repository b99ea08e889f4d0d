"""How many associations at once, and whose: slots for admitted peers, room for newcomers.

``TELERAD_DICOM_MAX_ASSOCIATIONS`` (N) bounds the associations the archive
holds once admitted (:mod:`gate`). What a real archive needs beyond a bare
count is that one peer holding associations open — a modality stuck in a retry
loop, a misconfigured router, a hostile host behind a registered address —
cannot lock out everyone else:

* no one calling AE title, and not all unregistered peers together (admitted
  only while the platform is open), may hold more than N − N/4: the last
  quarter stays for the other registered peers;
* beyond N, or beyond that share, the association is rejected at once with
  A-ASSOCIATE-RJ rejected-transient, service-provider (presentation),
  local-limit-exceeded — its thread ends and nothing of it is kept;
* connections not admitted yet (a TLS handshake, an A-ASSOCIATE-RQ still to
  come) are at most N at once, apart from the admitted ones: a new connection
  beyond that closes the one that has waited longest, so a peer that connects
  and says nothing can hold a thread only until newer connections push it out
  (or the ACSE timeout ends it), and a peer that asks at once is always heard.

Only pynetdicom's association threads are counted here; its own limit, which
counts every thread including those still negotiating, is set out of the way.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

#: A-ASSOCIATE-RJ: rejected-transient, service-provider (presentation), local-limit-exceeded.
REJECT_LIMIT = (0x02, 0x03, 0x02)


@dataclass(frozen=True)
class _Slot:
    ae_title: str
    registered: bool


class AssociationLimits:
    """The counts behind the rules of this module, shared by a listener's threads."""

    def __init__(self, total: int) -> None:
        self.total = max(1, total)
        self.share = self.total - self.total // 4
        self._lock = threading.Lock()
        self._pending: OrderedDict[object, Callable[[], None]] = OrderedDict()
        self._slots: dict[object, _Slot] = {}
        self._held: Counter[str] = Counter()
        self._unregistered = 0

    @property
    def held(self) -> int:
        return len(self._slots)

    def connected(self, key: object, close: Callable[[], None]) -> None:
        """A new connection, not admitted yet: past N such, the one that has waited
        longest is closed (``close`` of the connection it was given with)."""
        with self._lock:
            self._pending[key] = close
            evicted = []
            while len(self._pending) > self.total:
                evicted.append(self._pending.popitem(last=False)[1])
        for close_old in evicted:
            log.warning("connection closed unadmitted: %d newer ones are waiting", self.total)
            close_old()

    def admit(self, key: object, ae_title: str, registered: bool) -> str | None:
        """Take a slot for an admitted peer: None, or why there is none."""
        ae = ae_title.strip()
        with self._lock:
            self._pending.pop(key, None)
            if len(self._slots) >= self.total:
                return f"all {self.total} associations are in use"
            if self._held[ae] >= self.share:
                return f"this AE title already holds {self.share} associations"
            if not registered and self._unregistered >= self.share:
                return f"unregistered peers already hold {self.share} associations"
            self._slots[key] = _Slot(ae, registered)
            self._held[ae] += 1
            self._unregistered += not registered
        return None

    def ended(self, key: object) -> None:
        """The connection is gone: its slot (if it had one) is free again."""
        with self._lock:
            self._pending.pop(key, None)
            slot = self._slots.pop(key, None)
            if slot is None:
                return
            self._held[slot.ae_title] -= 1
            if self._held[slot.ae_title] <= 0:
                del self._held[slot.ae_title]
            self._unregistered -= not slot.registered
