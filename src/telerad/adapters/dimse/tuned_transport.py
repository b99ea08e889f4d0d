"""pynetdicom's transport, tuned: sockets with TCP_NODELAY and whole-buffer
reads, the TLS handshake in the connection's own thread, a tuned association
for every connection.

Overrides, in :mod:`pynetdicom.transport` (pynetdicom 3.0.4, see
:mod:`telerad.adapters.dimse.upstream`):

* :class:`~pynetdicom.transport.AssociationSocket` ``_create_socket`` — outgoing
  sockets get ``TCP_NODELAY``: a command PDU followed by a small dataset PDU
  would otherwise wait for the peer's delayed ACK.
* ``AssociationSocket.recv`` — a PDU is read with ``recv_into`` into one buffer
  of its length rather than appended 4 KiB at a time (the DUL caps the length
  first, :func:`~telerad.adapters.dimse.tuned_dul.pdu_ceiling`).
* ``AssociationSocket.send`` — one ``sendall`` instead of a loop of ``send``.
* :class:`~pynetdicom.transport.ThreadedAssociationServer` ``get_request``
  (pynetdicom's ``AssociationServer.get_request``) — a TLS connection is wrapped
  without its handshake: pynetdicom handshakes in the accepting thread, where
  one silent client stops every other from connecting.
* :class:`~pynetdicom.transport.RequestHandler` ``handle`` — the handshake runs
  here, in the connection's thread, within the ACSE timeout (:func:`tls_handshake`).
* ``RequestHandler._create_association`` — pynetdicom's, making a
  :class:`~telerad.adapters.dimse.tuned_association.TunedAssociation` on a
  :class:`TunedSocket`; the accepted socket gets ``TCP_NODELAY`` and the network
  timeout (a peer that stops half-way through a PDU cannot hold a thread for
  ever); the supported contexts are copied shallowly (negotiation builds new
  result contexts and never changes them; pynetdicom deep-copies ~190 contexts
  per association).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time
from copy import copy
from typing import Any, cast

from pynetdicom import evt
from pynetdicom._globals import MODE_ACCEPTOR
from pynetdicom.association import Association
from pynetdicom.transport import (
    AddressInformation,
    AssociationSocket,
    RequestHandler,
    ThreadedAssociationServer,
)

from telerad.adapters.dimse.tuned_association import TunedAssociation
from telerad.adapters.dimse.tuned_dul import pdu_ceiling

log = logging.getLogger(__name__)


class TunedSocket(AssociationSocket):
    """``AssociationSocket`` with TCP_NODELAY, whole-buffer reads and ``sendall``."""

    def _create_socket(self, address: AddressInformation) -> socket.socket:
        sock = super()._create_socket(address)
        nodelay(sock)
        return sock

    def recv(self, nr_bytes: int) -> bytearray:
        sock = self.socket
        assert sock is not None
        buffer = bytearray(nr_bytes)
        view = memoryview(buffer)
        received = 0
        while received < nr_bytes:
            n = sock.recv_into(view[received:], nr_bytes - received)
            if n == 0:  # connection closed: return what there is, as pynetdicom does
                del view
                return buffer[:received]
            received += n
        del view
        return buffer

    def send(self, bytestream: bytes) -> None:
        sock = self.socket
        try:
            assert sock is not None
            sock.sendall(bytestream)
            evt.trigger(self.assoc, evt.EVT_DATA_SENT, {"data": bytestream})
        except Exception:
            self.event_queue.put("Evt17")  # transport connection closed


def nodelay(sock: socket.socket) -> None:
    """Set TCP_NODELAY: small writes go out at once, not after the peer's delayed ACK."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class TunedAssociationServer(ThreadedAssociationServer):
    """A threaded association server that leaves the TLS handshake to the connection's thread."""

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None
        client_socket, address = self.socket.accept()
        if self.ssl_context:
            client_socket = self.ssl_context.wrap_socket(
                client_socket, server_side=True, do_handshake_on_connect=False
            )
        return client_socket, address


def tls_handshake(sock: ssl.SSLSocket, timeout: float | None, peer: object) -> bool:
    """Complete a server-side handshake within ``timeout``; close the socket if it fails."""
    try:
        sock.settimeout(timeout)
        sock.do_handshake()
        return True
    except (OSError, ValueError) as exc:  # SSLError, timeout, reset by peer
        reason = getattr(exc, "reason", None) or type(exc).__name__
        log.warning("TLS handshake with %s failed: %s", peer, reason)
        with contextlib.suppress(OSError):
            sock.close()
        return False


class TunedRequestHandler(RequestHandler):
    """Creates a :class:`TunedAssociation` for every incoming connection."""

    def handle(self) -> None:
        sock = self.request
        if isinstance(sock, ssl.SSLSocket) and not tls_handshake(
            sock, self.ae.acse_timeout, self.client_address[0]
        ):
            return
        super().handle()

    def _create_association(self) -> Association:
        ae = self.ae
        sock: socket.socket = self.request
        nodelay(sock)
        if ae.network_timeout is not None:
            sock.settimeout(ae.network_timeout)
        assoc = TunedAssociation(ae, MODE_ACCEPTOR, pdu_ceiling(ae.maximum_pdu_size))
        assoc._server = self.server
        assoc.name = f"AcceptorThread@{time.strftime('%Y%m%d%H%M%S')}"
        assoc.set_socket(TunedSocket(assoc, client_socket=sock))
        assoc.acceptor.maximum_length = ae.maximum_pdu_size
        assoc.acceptor.ae_title = self.server.ae_title
        assoc.acceptor.address_info = self.local
        assoc.acceptor.implementation_class_uid = ae.implementation_class_uid
        assoc.acceptor.implementation_version_name = ae.implementation_version_name
        # Negotiation never changes the supported contexts (it builds new result
        # contexts), so a shallow copy of the list is enough; pynetdicom deep-copies
        # ~190 contexts per association.
        assoc.acceptor.supported_contexts = copy(self.server.contexts)
        assoc.requestor.address_info = self.remote
        for event in self.server._handlers:
            if event.is_intervention and self.server._handlers[event]:
                assoc.bind(event, *self.server._handlers[event])
            elif isinstance(event, evt.NotificationEvent):
                for handler in self.server._handlers[event]:
                    function, args = cast(tuple[Any, Any], handler)
                    assoc.bind(event, function, args)
        return assoc
