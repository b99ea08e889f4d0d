"""pynetdicom's association, tuned: a reactor that waits for work, tuned DUL and
DIMSE providers, C-STOREs of already encoded bytes, N-EVENT-REPORTs that stop
waiting when the peer leaves.

Overrides :class:`pynetdicom.association.Association` (pynetdicom 3.0.4, see
:mod:`telerad.adapters.dimse.upstream`):

* ``__init__`` — after pynetdicom's own, the DUL provider is a
  :class:`~telerad.adapters.dimse.tuned_dul.TunedDUL` (with the PDU ceiling) and
  the DIMSE provider a :class:`~telerad.adapters.dimse.tuned_dimse.FastDIMSE`
  (serving C-STOREs inline when the AE has a ``store_handler``), whose message
  queue wakes this reactor; the ACSE and network timeouts, which live partly in
  the DUL's timers, are applied again to the new DUL.
* ``_run_reactor`` — pynetdicom's loop sleeps 1 ms on every turn, once more per
  request/response round trip; the copy here waits on an event set when a
  message is queued, the DUL ends or the association is killed (at most
  :data:`~telerad.adapters.dimse.tuned_dul.IDLE_WAIT`). The pause handshake of
  the ``send_*`` methods, the release, abort and network-timeout handling are
  pynetdicom's.
* ``kill`` — wakes the reactor first, so it leaves at once.
* ``send_c_store`` — pynetdicom's C-GET and C-MOVE SCPs call it with what the
  handler yielded; an object with a ``send_over()`` method (a stored instance
  kept as bytes) sends itself, through :meth:`TunedAssociation.send_c_store_bytes`,
  without being decoded and encoded again.

New: :meth:`TunedAssociation.send_c_store_bytes` (pynetdicom's ``send_c_store``
for a dataset already encoded in the context's transfer syntax) and
:meth:`TunedAssociation.send_event_report` (``send_n_event_report`` that returns
None, without waiting out its timeout, when the peer releases or aborts
meanwhile: Storage Commitment reports on the requesting association).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from io import BytesIO
from typing import Any, cast

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.ae import ApplicationEntity
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE, N_EVENT_REPORT
from pynetdicom.dsutils import encode
from pynetdicom.pdu_primitives import A_ABORT, A_P_ABORT, A_RELEASE

from telerad.adapters.dimse.tuned_dimse import FastDIMSE
from telerad.adapters.dimse.tuned_dul import IDLE_WAIT, TunedDUL, WakingQueue

log = logging.getLogger(__name__)


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
        self.dimse.msg_queue = WakingQueue(self._wake_reactor)

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
