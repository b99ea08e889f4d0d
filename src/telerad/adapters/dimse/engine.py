"""pynetdicom, tuned: event-driven reactors, large reads, guarded PDU lengths.

pynetdicom's two reactors poll: the DUL thread sleeps 1 ms whenever it finds
nothing to do and the association thread sleeps 1 ms on every loop. With one
request/response round trip per C-STORE that costs milliseconds per instance.
Here both wait on the things that can wake them instead (the socket, a
self-pipe written when a primitive is queued for sending, a queue put), so a
message is handled as soon as it is complete. The state machine, the
reactor-pause handshake used by the ``send_*`` methods and all protocol
behaviour stay pynetdicom's own.

Also:

* sockets get ``TCP_NODELAY`` (a command PDU followed by a small dataset PDU
  would otherwise wait for the peer's delayed ACK) and a network timeout, so a
  peer that stops half-way through a PDU cannot hold a thread for ever;
* a PDU whose header claims more than the largest PDU the archive accepts
  (plus room for a large A-ASSOCIATE-RQ) is refused as invalid (an A-ABORT)
  before anything is allocated for it;
* PDUs are read with ``recv_into`` in one buffer rather than 4 KiB pieces;
* on a TLS listener the handshake runs in the connection's own thread with the
  ACSE timeout (pynetdicom does it in the accepting thread, where one silent
  client stops every other from connecting), and the reactor's wait counts
  data already decrypted in the TLS layer, which ``select`` cannot see;
* in the data-transfer state (Sta6), a P-DATA-TF goes straight from the
  socket to the DIMSE provider (what DT-2 does, without the PDU objects, the
  event queue and the state machine) and a C-STORE-RSP served in the DUL
  thread is written straight to the socket (what DT-1 does), whenever
  nothing is queued ahead of them and nothing is bound to observe PDUs.

Nothing here depends on the archive; :mod:`telerad.adapters.dimse.server` wires it.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from copy import copy
from io import BytesIO
from typing import Any, cast

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom._globals import MODE_ACCEPTOR, MODE_REQUESTOR
from pynetdicom.ae import ApplicationEntity
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE, N_EVENT_REPORT
from pynetdicom.dsutils import encode
from pynetdicom.dul import _PDU_TYPES, DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.pdu_primitives import A_ABORT, A_P_ABORT, A_RELEASE
from pynetdicom.transport import (
    AddressInformation,
    AssociationSocket,
    RequestHandler,
    ThreadedAssociationServer,
)

from telerad.adapters.dimse.fastdimse import FastDIMSE

log = logging.getLogger(__name__)

#: Events whose handlers see PDUs or transitions: bound ones keep pynetdicom's path.
_PDU_OBSERVERS = (
    evt.EVT_DATA_RECV,
    evt.EVT_PDU_RECV,
    evt.EVT_DATA_SENT,
    evt.EVT_PDU_SENT,
    evt.EVT_FSM_TRANSITION,
)
P_DATA_TF_TYPE = 0x04

#: How long an idle reactor waits before re-checking its timers (seconds).
IDLE_WAIT = 0.05
#: Room above the maximum P-DATA PDU for association PDUs with many contexts.
ASSOCIATION_PDU_MARGIN = 256 * 1024
#: Ceiling when the archive's maximum PDU is 0 (unlimited in DICOM terms).
UNLIMITED_PDU_CEILING = 64 * 1024 * 1024


class _WakingQueue(queue.Queue):  # type: ignore[type-arg]
    """A queue that calls ``on_put`` after every put, to wake whoever waits for it."""

    def __init__(self, on_put: Callable[[], None]) -> None:
        super().__init__()
        self._on_put = on_put

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._on_put()


class TunedSocket(AssociationSocket):
    """``AssociationSocket`` with TCP_NODELAY, whole-buffer reads and ``sendall``."""

    def _create_socket(self, address: AddressInformation) -> socket.socket:
        sock = super()._create_socket(address)
        _nodelay(sock)
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


def _nodelay(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class TunedDUL(DULServiceProvider):
    """The DUL provider, waking on socket data or queued primitives instead of polling."""

    def __init__(self, assoc: Association, max_pdu_length: int) -> None:
        super().__init__(assoc)
        self.max_pdu_length = max_pdu_length
        self._waker_r, self._waker_w = socket.socketpair()
        self._waker_r.setblocking(False)
        self._waker_w.setblocking(False)
        self.to_provider_queue = _WakingQueue(self._wake)
        self.to_user_queue = _WakingQueue(assoc._wake_reactor)  # type: ignore[attr-defined]

    def _wake(self) -> None:
        # OSError: the buffer is full (so the reader is awake anyway) or it is closed.
        with contextlib.suppress(OSError):
            self._waker_w.send(b"\0")

    def kill_dul(self) -> None:
        self._kill_thread = True
        self._wake()

    def stop_dul(self) -> bool:
        if self.state_machine.current_state == "Sta1":
            self._kill_thread = True
            self._wake()
            if threading.current_thread() is not self:
                self.join(timeout=5)
            return True
        return False

    def _direct(self) -> bool:
        """True when P-DATA may bypass pynetdicom's queues and state machine: in
        Sta6, with no event or PDU waiting to be handled and no observer bound."""
        handlers = self.assoc._handlers
        return (
            self.state_machine.current_state == "Sta6"
            and not self.event_queue.qsize()
            and not self._recv_pdu.qsize()
            and not any(handlers.get(e) for e in _PDU_OBSERVERS)
        )

    def send_pdata_now(self, pdu: bytes) -> bool:
        """Write an encoded P-DATA-TF at once (DT-1 without the queue) when called
        from this DUL thread with nothing queued before it; False: queue it."""
        if threading.current_thread() is not self or self.to_provider_queue.qsize():
            return False
        if not self._direct() or self.socket is None:
            return False
        self.socket.send(pdu)
        return True

    def _wait_for_activity(self) -> None:
        """Block until the socket has data, a primitive is queued, or IDLE_WAIT passes."""
        if self.to_provider_queue.qsize() or self._kill_thread:
            return
        assoc_socket = self.socket
        sock = assoc_socket.socket if assoc_socket is not None else None
        if sock is None or not assoc_socket._is_connected or sock.fileno() < 0:  # type: ignore[union-attr]
            time.sleep(0.001)
            return
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return  # decrypted bytes wait in the TLS layer; select() would not wake for them
        try:
            readable, _, _ = select.select([sock, self._waker_r], [], [], IDLE_WAIT)
        except (OSError, ValueError):
            time.sleep(0.001)
            return
        if self._waker_r in readable:
            try:
                while self._waker_r.recv(4096):
                    pass
            except OSError:
                pass

    def run_reactor(self) -> None:
        try:
            self._run_tuned_reactor()
        finally:
            for s in (self._waker_r, self._waker_w):
                with contextlib.suppress(OSError):
                    s.close()
            self.assoc._wake_reactor()  # type: ignore[attr-defined]

    def _run_tuned_reactor(self) -> None:
        # pynetdicom's DULServiceProvider.run_reactor with the idle sleep
        # replaced by _wait_for_activity().
        self._idle_timer.start()
        assert self.socket is not None
        while True:
            if not self.assoc._dul_ready.is_set():
                self.assoc._dul_ready.set()
            if self._kill_thread:
                break
            if self.artim_timer.expired:
                self.event_queue.put("Evt18")
            try:
                if self._process_recv_primitive():
                    pass
                elif self._is_transport_event():
                    self._idle_timer.restart()
            except Exception as exc:
                log.error(
                    "DICOM upper layer failed, aborting the association: %s", type(exc).__name__
                )
                abort_pdu = A_ABORT_RQ()
                abort_pdu.source = 0x02
                abort_pdu.reason_diagnostic = 0x00
                with contextlib.suppress(Exception):
                    self.socket.send(abort_pdu.encode())
                self.assoc.is_aborted = True
                self.assoc.is_established = False
                self.assoc._kill = True
                self._kill_thread = True
                return
            try:
                event = self.event_queue.get(block=False)
            except queue.Empty:
                self._wait_for_activity()
                continue
            self.state_machine.do_action(event)

    def _read_pdu_data(self) -> None:
        """Read one PDU: like pynetdicom's, but capped in length and read in one buffer."""
        sock = self.socket
        assert sock is not None
        try:
            header = bytes(sock.recv(6))
        except (OSError, TimeoutError):
            self.event_queue.put("Evt17")
            return
        try:
            pdu_type, _, pdu_length = struct.unpack(">BBL", header)
        except struct.error:
            self.event_queue.put("Evt17")
            return
        if pdu_type not in (0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07):
            # After the A-ABORT (Sta13) the rest of the garbage is read and dropped quietly.
            if self.state_machine.current_state != "Sta13":
                log.warning("unknown PDU type 0x%02X received, aborting", pdu_type)
            self.event_queue.put("Evt19")
            return
        if pdu_length > self.max_pdu_length:
            log.warning(
                "PDU of %d bytes refused (limit %d), aborting", pdu_length, self.max_pdu_length
            )
            self.event_queue.put("Evt19")
            return
        try:
            body = sock.recv(pdu_length)
        except (OSError, TimeoutError):
            log.warning("connection closed or timed out inside a PDU")
            self.event_queue.put("Evt17")
            return
        if len(body) != pdu_length:
            self.event_queue.put("Evt17")
            return
        if pdu_type == P_DATA_TF_TYPE and self._direct():
            receive = getattr(self.assoc.dimse, "receive_pdata_tf", None)
            if receive is not None:
                if not receive(body):
                    log.warning("undecodable PDU received (P-DATA-TF), aborting")
                    self.event_queue.put("Evt19")
                return
        data = header + body
        try:
            evt.trigger(self.assoc, evt.EVT_DATA_RECV, {"data": data})
            pdu_cls, event = _PDU_TYPES[data[0:1]]
            pdu = pdu_cls()
            pdu.decode(data)
            evt.trigger(self.assoc, evt.EVT_PDU_RECV, {"pdu": pdu})
        except Exception as exc:
            log.warning("undecodable PDU received (%s), aborting", type(exc).__name__)
            self.event_queue.put("Evt19")
            return
        self.event_queue.put(event)
        self._recv_pdu.put(pdu)


class TunedAssociation(Association):
    """An association whose reactor waits for work instead of sleeping 1 ms per loop."""

    def __init__(self, ae: ApplicationEntity, mode: str, max_pdu_length: int) -> None:
        self._wake_event = threading.Event()
        super().__init__(ae, mode)
        self.dul = TunedDUL(self, max_pdu_length)
        # The timeouts live partly in the DUL's timers: apply them to the new one.
        self.acse_timeout = self.ae.acse_timeout
        self.network_timeout = self.ae.network_timeout
        self.dimse = FastDIMSE(self, getattr(ae, "store_handler", None))
        self.dimse.msg_queue = _WakingQueue(self._wake_reactor)

    def _wake_reactor(self) -> None:
        self._wake_event.set()

    def kill(self) -> None:
        self._wake_event.set()
        super().kill()

    def send_c_store(self, dataset: Any, *args: Any, **kwargs: Any) -> Dataset:
        # pynetdicom's C-GET and C-MOVE SCPs call send_c_store() with what the
        # handler yielded; an object with a send_over() method (a stored
        # instance kept as bytes) sends itself without being decoded.
        send_over = getattr(type(dataset), "send_over", None)
        if send_over is not None:
            return send_over(dataset, self, *args, **kwargs)  # type: ignore[no-any-return]
        return super().send_c_store(dataset, *args, **kwargs)

    def send_event_report(
        self,
        info: Dataset,
        event_type: int,
        class_uid: str,
        instance_uid: str,
        timeout: float,
        msg_id: int = 1,
    ) -> int | None:
        """Send an N-EVENT-REPORT-RQ and return the response status.

        Returns None, without waiting out ``timeout``, when the peer asks to
        release or abort meanwhile (an SCU often releases right after its
        request, and then never answers a report sent on that association).
        """
        if not self.is_established:
            return None
        context = self._get_valid_context(class_uid, "", None)
        ts = context.transfer_syntax[0]
        encoded = encode(info, ts.is_implicit_VR, ts.is_little_endian, ts.is_deflated)
        if encoded is None:
            raise ValueError("the Event Information cannot be encoded")
        req = N_EVENT_REPORT()
        req.MessageID = msg_id
        req.AffectedSOPClassUID = class_uid
        req.AffectedSOPInstanceUID = instance_uid
        req.EventTypeID = event_type
        req.EventInformation = BytesIO(encoded)
        self._reactor_checkpoint.clear()
        while not self._is_paused:
            time.sleep(0.0001)
        try:
            if not self.is_established or self.peer_is_leaving():
                return None
            self.dimse.send_msg(req, cast(int, context.context_id))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    _, rsp = self.dimse.msg_queue.get(timeout=0.05)
                except queue.Empty:
                    if self.peer_is_leaving() or not self.dul.is_alive():
                        return None
                    continue
                status = getattr(rsp, "Status", None)  # rsp is None after an abort
                return None if status is None else int(status)
            return None
        finally:
            self._reactor_checkpoint.set()

    def peer_is_leaving(self) -> bool:
        """True when the peer's A-RELEASE-RQ or A-ABORT is waiting to be handled."""
        return isinstance(self.dul.peek_next_pdu(), (A_RELEASE, A_ABORT, A_P_ABORT))

    def send_c_store_bytes(
        self,
        context_id: int,
        sop_class_uid: str,
        sop_instance_uid: str,
        dataset_bytes: bytes,
        msg_id: int = 1,
        priority: int = 2,
        originator_aet: str | None = None,
        originator_id: int | None = None,
    ) -> Dataset:
        """Send a C-STORE-RQ whose dataset is already encoded for the context; return the status."""
        if not self.is_established:
            raise RuntimeError("the association is not established")
        req = C_STORE()
        req.MessageID = msg_id
        req.Priority = priority
        req.MoveOriginatorApplicationEntityTitle = originator_aet
        req.MoveOriginatorMessageID = originator_id
        req.AffectedSOPClassUID = sop_class_uid
        req.AffectedSOPInstanceUID = sop_instance_uid
        req.DataSet = BytesIO(dataset_bytes)
        self._reactor_checkpoint.clear()  # the pause handshake of pynetdicom's send_*()
        while not self._is_paused:
            time.sleep(0.0001)
        try:
            self.dimse.send_msg(req, context_id)
            _, rsp = self.dimse.get_msg(block=True)
        finally:
            self._reactor_checkpoint.set()
        if rsp is None:
            self._handle_no_response()
            return Dataset()
        return self._check_received_status(rsp)

    def _run_reactor(self) -> None:
        # pynetdicom's Association._run_reactor without the per-loop sleep. The
        # pause handshake is kept: _is_paused is True only while this thread is
        # at a point where it touches neither the DIMSE nor the ACSE queues, so
        # a send_*() caller (C-GET sub-operations, N-EVENT-REPORT) owns them.
        self._is_paused = False
        wake = self._wake_event
        while not self._kill:
            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False
            if not self._reactor_checkpoint.is_set():
                continue  # a pause was requested while we were resuming
            wake.clear()
            context_id, msg = self.dimse.get_msg(block=False)
            if msg:
                self._serve_request(msg, context_id)  # type: ignore[arg-type]
                continue
            if self.is_established and self.acse.is_release_requested():
                self.acse.send_release(is_response=True)
                self.is_released = True
                self.is_established = False
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.kill()
                return
            if self.acse.is_aborted():
                self.dul.receive_pdu(wait=False)
                self.is_aborted = True
                self.is_established = False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return
            if not self.dul.is_alive():
                self.kill()
                return
            if self.dul.idle_timer_expired():
                log.warning("network timeout on an association, aborting it")
                if self.network_timeout_response == "A-RELEASE":
                    self._is_paused = True
                    self._reactor_checkpoint.wait()
                    self.release()
                    self._is_paused = False
                else:
                    self.abort()
                self.kill()
                return
            self._is_paused = True
            wake.wait(IDLE_WAIT)


def pdu_ceiling(max_pdu: int) -> int:
    """The largest PDU length accepted from a peer, given the archive's maximum PDU."""
    base = max_pdu if max_pdu > 0 else UNLIMITED_PDU_CEILING
    return base + ASSOCIATION_PDU_MARGIN


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
        _nodelay(sock)
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


class TunedAE(ApplicationEntity):
    """An AE whose outgoing associations (C-MOVE, storage commitment) are tuned too."""

    #: Serves C-STORE requests inline (see FastDIMSE); None: pynetdicom's EVT_C_STORE path.
    store_handler: Callable[[Any], Any] | None = None

    def associate(  # type: ignore[override]
        self,
        addr: str,
        port: int,
        contexts: list[Any] | None = None,
        ae_title: str = "ANY-SCP",
        max_pdu: int = 0,
        ext_neg: list[Any] | None = None,
        evt_handlers: list[Any] | None = None,
        tls_args: tuple[ssl.SSLContext, str] | None = None,
        **_ignored: Any,
    ) -> Association:
        from copy import deepcopy

        remote = AddressInformation.from_addr_port(addr, port)
        local = AddressInformation.from_tuple(
            ("::0", 0) if remote.address_family == socket.AF_INET6 else ("", 0)
        )
        assoc = TunedAssociation(self, MODE_REQUESTOR, pdu_ceiling(self.maximum_pdu_size))
        assoc.name = f"RequestorThread@{time.strftime('%Y%m%d%H%M%S')}"
        assoc_socket = TunedSocket(assoc, address=local)
        assoc_socket.tls_args = tls_args
        assoc.set_socket(assoc_socket)
        assoc.acceptor.ae_title = ae_title
        assoc.acceptor.address_info = remote
        assoc.requestor.address_info = local
        assoc.requestor.ae_title = self.ae_title
        assoc.requestor.maximum_length = max_pdu if max_pdu else self.maximum_pdu_size
        assoc.requestor.implementation_class_uid = self.implementation_class_uid
        assoc.requestor.implementation_version_name = self.implementation_version_name
        for item in ext_neg or []:
            assoc.requestor.add_negotiation_item(item)
        proposed = deepcopy(contexts or self.requested_contexts)
        if not proposed:
            raise RuntimeError("no presentation contexts to propose")
        for i, context in enumerate(proposed):
            context.context_id = 2 * i + 1
        assoc.requestor.requested_contexts = proposed
        for handler in evt_handlers or []:
            assoc.bind(*handler)
        assoc.request()
        if assoc.is_established:
            assoc.start()
        return assoc
