"""What a signature queues as DICOM, and the two senders that deliver it.

:func:`dicom_deliveries` is a ``services.reports.Deliveries``: for every signature
(preliminary, final, addendum, correction) it queues, in the signature's transaction,

* an ``archive`` row: the local step that stores the version's SR and PDF into the
  study in this platform's archive (:class:`ArchiveStep`). It is an outbox row, not
  work done in the signature, so it happens once per signature, survives a process
  that dies (the next worker does it) and is traced per report with the other
  deliveries; building a PDF (a fraction of a second) never holds the signature's
  transaction;
* when the facility has a DICOM results endpoint (``AE@HOST:PORT``), a ``dicom`` row:
  the C-STORE of both objects to that node (:class:`CStoreSender`, pynetdicom as SCU).

Both payloads are the same small JSON, ``{"report": id, "version": n, "study": uid,
"sr": uid, "pdf": uid}``: what to deliver, not the bytes. Each sender calls
:meth:`~telerad.adapters.sr.objects.ReportObjects.ensure`, which returns the objects
the archive holds and makes them first when the archive step has not run yet, so the
PACS gets exactly what the archive keeps, whichever row goes first.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from typing import Any

from pydicom import dcmread
from pynetdicom import AE, build_context

from telerad.adapters.sr.objects import Made, ReportObjects
from telerad.adapters.sr.report_pdf import ENCAPSULATED_PDF
from telerad.adapters.sr.report_sr import COMPREHENSIVE_SR, DELIVERED, SrError, uids_of
from telerad.domain.outbox import (
    ARCHIVE_ADDRESS,
    Channel,
    Delivery,
    Endpoint,
    OutboxError,
    Outcome,
    host_port,
)
from telerad.domain.reports import Report
from telerad.services.outbox import EndpointStore, new_message_id
from telerad.services.reports import Deliveries, Outgoing, ReportFacts

log = logging.getLogger(__name__)

#: C-STORE statuses that keep the object: success and the warnings (PS3.4 B.2.3).
_KEPT = {0x0000, 0xB000, 0xB006, 0xB007}


def payload_of(report: Report) -> str:
    assert report.id is not None
    uids = uids_of(report.study_instance_uid, report.id, report.version)
    return json.dumps(
        {
            "report": report.id,
            "version": report.version,
            "study": report.study_instance_uid,
            "sr": uids.sr_instance,
            "pdf": uids.pdf_instance,
        }
    )


def dicom_deliveries(
    endpoints: EndpointStore, in_archive: Callable[[int, str], bool]
) -> Deliveries:
    """The archive step for every signature of a study the archive holds
    (``in_archive(facility id, study UID)``: the objects copy its patient and study),
    and the C-STORE for facilities with a DICOM results endpoint."""

    def deliveries(report: Report, facts: ReportFacts, now: datetime) -> Sequence[Outgoing]:
        if report.id is None or report.signed is None or report.status not in DELIVERED:
            return ()
        if not in_archive(report.facility_id, report.study_instance_uid):
            return ()
        payload = payload_of(report)
        out = [
            Outgoing(Channel.ARCHIVE.value, new_message_id(report.id, report.version), payload, now)
        ]
        if endpoints.endpoint(report.facility_id, Channel.DICOM) is not None:
            message_id = new_message_id(report.id, report.version)
            out.append(Outgoing(Channel.DICOM.value, message_id, payload, now))
        return out

    return deliveries


class WithArchive:
    """The worker's endpoint store: every facility has the local archive step's
    endpoint; every other channel's endpoints are the facilities' own."""

    def __init__(self, inner: EndpointStore) -> None:
        self.inner = inner

    def endpoint(self, facility_id: int, kind: Channel) -> Endpoint | None:
        if kind is Channel.ARCHIVE:
            return Endpoint(facility_id, Channel.ARCHIVE, ARCHIVE_ADDRESS)
        return self.inner.endpoint(facility_id, kind)

    def endpoints(self, facility_id: int | None = None) -> list[Endpoint]:
        return self.inner.endpoints(facility_id)

    def put(self, endpoint: Endpoint) -> Endpoint:
        return self.inner.put(endpoint)

    def remove(self, facility_id: int, kind: Channel) -> bool:
        return self.inner.remove(facility_id, kind)


def _made(objects: ReportObjects, payload: str) -> Made | Delivery:
    try:
        asked: dict[str, Any] = json.loads(payload)
        return objects.ensure(int(asked["report"]), int(asked["version"]))
    except (ValueError, KeyError, TypeError) as exc:  # SrError is a ValueError
        detail = str(exc) if isinstance(exc, SrError) else f"bad payload ({type(exc).__name__})"
        return Delivery(Outcome.FAILED, detail)


@dataclass
class ArchiveStep:
    """Stores the version's SR and PDF into the study (the ``archive`` channel's sender)."""

    objects: ReportObjects

    def send(self, endpoint: Endpoint, message_id: str, payload: str) -> Delivery:
        made = _made(self.objects, payload)
        if isinstance(made, Delivery):
            return made
        return Delivery(Outcome.ACCEPTED, f"SR {made.sr_uid} and PDF {made.pdf_uid} in the archive")


@dataclass
class CStoreSender:
    """C-STOREs the version's SR and PDF to the facility's node, one association."""

    objects: ReportObjects
    ae_title: str = "TELERAD"
    connect_timeout: float = 5.0
    answer_timeout: float = 30.0

    def send(self, endpoint: Endpoint, message_id: str, payload: str) -> Delivery:
        try:
            called, _, rest = endpoint.address.rpartition("@")
            host, port = host_port(rest)
        except OutboxError as exc:
            return Delivery(Outcome.FAILED, str(exc))
        made = _made(self.objects, payload)
        if isinstance(made, Delivery):
            return made
        ae = AE(ae_title=self.ae_title)
        ae.connection_timeout = self.connect_timeout
        ae.acse_timeout = self.connect_timeout
        ae.dimse_timeout = self.answer_timeout
        ae.network_timeout = self.answer_timeout
        contexts = [build_context(COMPREHENSIVE_SR), build_context(ENCAPSULATED_PDF)]
        where = f"{called}@{host}:{port}"
        if endpoint.tls:
            return Delivery(Outcome.FAILED, f"{where}: DICOM over TLS is not supported yet")
        assoc = ae.associate(host, port, contexts=contexts, ae_title=called)
        if not assoc.is_established:
            state = "rejected" if assoc.is_rejected else "not established"
            return Delivery(Outcome.FAILED, f"{where}: association {state}")
        answers = []
        try:
            for label, data in (("SR", made.sr), ("PDF", made.pdf)):
                status = assoc.send_c_store(dcmread(BytesIO(data)))
                code = int(getattr(status, "Status", -1)) if status else -1
                answers.append(f"{label} 0x{code:04X}" if code >= 0 else f"{label} no answer")
                if code not in _KEPT:
                    refused = code >= 0
                    assoc.release()
                    return Delivery(
                        Outcome.REFUSED if refused else Outcome.FAILED,
                        f"{where}: C-STORE of the {label} answered "
                        + (f"0x{code:04X}" if refused else "nothing"),
                        ", ".join(answers),
                    )
        except Exception as exc:  # the association failed under us
            assoc.abort()
            return Delivery(Outcome.FAILED, f"{where}: {type(exc).__name__}", ", ".join(answers))
        assoc.release()
        log.info("report objects %s, %s sent to %s", made.sr_uid, made.pdf_uid, called)
        return Delivery(Outcome.ACCEPTED, f"{where}: SR and PDF stored", ", ".join(answers))
