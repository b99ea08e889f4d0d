"""Who may associate, and for which facility: checked before any DIMSE message.

An AE title is not authentication. A peer is admitted when its calling AE title
is registered (a facility's AE, or a node) *and* the association comes from the
address registered for it (an address, a CIDR network or a host name), *and*,
when a certificate fingerprint is registered, it presented that TLS client
certificate. Everything else is rejected at association with "calling AE title
not recognised" — the same answer whether the title is unknown, spoofed from
another address or missing its certificate, so probing learns nothing.

Until the platform has its first account it runs open on loopback: unknown AE
titles are then admitted for the default facility, as a clinic's first
modality would expect.

The decision is kept on the association; the C-STORE, C-FIND, C-MOVE and C-GET
handlers read the facility and the scope from it (see :mod:`scope`).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from typing import Any

from pynetdicom import evt
from pynetdicom.acse import ACSE

from telerad.adapters.dimse.limits import REJECT_LIMIT, AssociationLimits
from telerad.adapters.dimse.tuned_transport import TunedRequestHandler
from telerad.adapters.tls import peer_fingerprint
from telerad.services.access_audit import Actor
from telerad.services.admission import Peer
from telerad.services.platform import Platform

log = logging.getLogger(__name__)

#: A-ASSOCIATE-RJ: rejected-permanent, service-user, calling AE title not recognised.
REJECT_CALLING_AE = (0x01, 0x01, 0x03)


def admit(platform: Platform, calling_ae: str, address: str, cert: str | None) -> Peer | None:
    """The peer this association is, or None to reject it (the admission rule:
    :meth:`~telerad.services.admission.Admission.peer`)."""
    return platform.admission.peer(calling_ae, address, cert)


class GatedACSE(ACSE):
    """pynetdicom's ACSE, asking the admission rule
    (:meth:`~telerad.services.admission.Admission.association`), then the association
    limits (:mod:`limits`), before negotiating anything."""

    def __init__(
        self, assoc: Any, platform: Platform, limits: AssociationLimits, key: object
    ) -> None:
        super().__init__(assoc)
        self.platform = platform
        self.limits = limits
        self.key = key

    def _negotiate_as_acceptor(self) -> None:
        assoc: Any = self.assoc
        primitive: Any = self.requestor.primitive
        calling = str(primitive.calling_ae_title)
        address = str(assoc.requestor.address)
        # A refusal is audited by the admission service (a security alert).
        peer = self.platform.admission.association(calling, address, peer_fingerprint(assoc))
        if peer is None:
            self.requestor.ae_title = calling
            log.warning("association from %s rejected (AE title not registered there)", address)
            self.send_reject(*REJECT_CALLING_AE)
            evt.trigger(assoc, evt.EVT_REJECTED, {})
            assoc.kill()
            return
        refusal = self.limits.admit(self.key, peer.ae_title, peer.registered)
        if refusal is not None:
            self.requestor.ae_title = calling
            log.warning("association from %s at %s refused: %s", peer.ae_title, address, refusal)
            self.send_reject(*REJECT_LIMIT)
            evt.trigger(assoc, evt.EVT_REJECTED, {})
            assoc.kill()
            return
        assoc._telerad_peer = peer
        assoc._telerad_facility_id = peer.store_facility_id
        super()._negotiate_as_acceptor()


def peer_of(platform: Platform, assoc: Any) -> Peer:
    """The admitted peer of an association (decided again for associations made elsewhere)."""
    peer = getattr(assoc, "_telerad_peer", None)
    if isinstance(peer, Peer):
        return peer
    found = admit(platform, str(assoc.requestor.ae_title), str(assoc.requestor.address), None)
    if found is None:
        raise PermissionError("peer not admitted")
    return found


def actor_of(assoc: Any) -> Actor:
    """The audit trail's actor for an association's peer: its AE title and address."""
    actor = getattr(assoc, "_telerad_actor", None)
    if not isinstance(actor, Actor):
        actor = Actor(
            str(assoc.requestor.ae_title).strip() or "?",
            "dicom-peer",
            False,
            str(assoc.requestor.address),
        )
        assoc._telerad_actor = actor
    return actor


def gated_handler(platform: Platform, limits: AssociationLimits) -> type[TunedRequestHandler]:
    """The listener's request handler: every connection is counted by ``limits``
    from its accept to its end, and every association goes through :class:`GatedACSE`."""

    class GatedRequestHandler(TunedRequestHandler):
        def handle(self) -> None:
            key = self.request
            self._telerad_assoc: Any = None
            limits.connected(key, self._close_unadmitted)
            self._telerad_started = False
            try:
                super().handle()  # a TLS handshake, then the association's own thread
            finally:
                if not self._telerad_started:
                    limits.ended(key)

        def _create_association(self) -> Any:
            assoc = super()._create_association()
            key = self.request
            assoc.acse = GatedACSE(assoc, platform, limits, key)
            run = assoc.run

            def run_then_free() -> None:
                try:
                    run()
                finally:
                    limits.ended(key)

            assoc.run = run_then_free  # type: ignore[method-assign]
            self._telerad_started = True
            self._telerad_assoc = assoc
            return assoc

        def _close_unadmitted(self) -> None:
            """Close a connection that has not been admitted, and end its association's
            wait for an A-ASSOCIATE-RQ now rather than at the ACSE timeout."""
            with contextlib.suppress(OSError):
                self.request.shutdown(socket.SHUT_RDWR)
            assoc = self._telerad_assoc
            if assoc is not None:
                assoc.dul.to_user_queue.put(None)

    return GatedRequestHandler
