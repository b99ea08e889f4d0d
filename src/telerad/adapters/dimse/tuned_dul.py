"""pynetdicom's DICOM upper layer, tuned: a reactor that waits instead of polling,
PDUs read whole and capped in length, P-DATA-TF straight to the DIMSE provider.

Overrides :class:`pynetdicom.dul.DULServiceProvider` (pynetdicom 3.0.4, see
:mod:`telerad.adapters.dimse.upstream`):

* ``run_reactor`` — pynetdicom's loop sleeps ``_run_loop_delay`` (1 ms) whenever
  it found nothing to do; with one request/response round trip per C-STORE that
  costs milliseconds per instance. The copy here waits on what can wake it
  instead (the socket, a self-pipe written when a primitive is queued for
  sending) for at most :data:`IDLE_WAIT`, so a PDU is handled as soon as it
  arrives; it also counts data already decrypted in the TLS layer, which
  ``select`` cannot see. Everything else in the loop (the ARTIM timer, the
  abort on an exception, the state machine) is pynetdicom's.
* ``__init__`` — the provider and user queues are :class:`WakingQueue` objects
  (a put wakes the DUL thread, or the association's reactor).
* ``kill_dul``, ``stop_dul`` — wake the reactor so it sees the flag at once;
  ``stop_dul`` joins the thread (at most 5 s, never from itself: that would
  deadlock) instead of polling ``is_alive`` every millisecond.
* ``_read_pdu_data`` — a PDU whose header claims more than :func:`pdu_ceiling`
  (the archive's largest PDU plus room for a large A-ASSOCIATE-RQ) is refused
  as invalid (Evt19, an A-ABORT) before anything is allocated for it: the
  socket reads a PDU into one buffer of its announced length
  (:class:`~telerad.adapters.dimse.tuned_transport.TunedSocket`), so six bytes
  could otherwise make the archive reserve 4 GiB. In the
  data-transfer state (Sta6), with nothing queued ahead and nothing bound to
  observe PDUs, a P-DATA-TF's body goes straight to the DIMSE provider's
  ``receive_pdata_tf`` (what DT-2 does, without the PDU objects, two queue hops
  and the state machine; tiny C-STORE 2.29 → 2.03 ms per instance, see
  docs/benchmarks.md); anything else is decoded and queued as pynetdicom does.

:meth:`TunedDUL.send_pdata_now` is new: it writes a C-STORE-RSP served in the
DUL thread straight to the socket (what DT-1 does) under the same conditions.
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
from typing import TYPE_CHECKING, Any

from pynetdicom import evt
from pynetdicom.dul import _PDU_TYPES, DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ

if TYPE_CHECKING:
    from pynetdicom.association import Association

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


def pdu_ceiling(max_pdu: int) -> int:
    """The largest PDU length accepted from a peer, given the archive's maximum PDU."""
    base = max_pdu if max_pdu > 0 else UNLIMITED_PDU_CEILING
    return base + ASSOCIATION_PDU_MARGIN


class WakingQueue(queue.Queue):  # type: ignore[type-arg]
    """A queue that calls ``on_put`` after every put, to wake whoever waits for it."""

    def __init__(self, on_put: Callable[[], None]) -> None:
        super().__init__()
        self._on_put = on_put

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._on_put()


class TunedDUL(DULServiceProvider):
    """The DUL provider, waking on socket data or queued primitives instead of polling."""

    def __init__(self, assoc: Association, max_pdu_length: int) -> None:
        super().__init__(assoc)
        self.max_pdu_length = max_pdu_length
        self._waker_r, self._waker_w = socket.socketpair()
        self._waker_r.setblocking(False)
        self._waker_w.setblocking(False)
        self.to_provider_queue = WakingQueue(self._wake)
        self.to_user_queue = WakingQueue(assoc._wake_reactor)  # type: ignore[attr-defined]

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
