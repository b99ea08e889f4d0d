"""Storage Commitment Push Model SCP (PS3.4 Annex J).

N-ACTION (Request Storage Commitment, action type 1) is answered with success
at once; the result follows as an N-EVENT-REPORT (event type 1: all committed,
2: some failed) once every referenced instance has been checked with
:meth:`Archive.is_committed <telerad.services.archive.Archive.is_committed>`
(indexed, and its stored bytes verify). The report goes over the requesting
association while it is still open, otherwise over a new association to the
requesting AE, which must then be a registered node.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import build_context, build_role

from telerad.adapters.dimse.contexts import (
    STORAGE_COMMITMENT_PUSH_MODEL,
    STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE,
)
from telerad.adapters.dimse.status import (
    INVALID_ATTRIBUTE_VALUE,
    MISSING_ATTRIBUTE,
    NO_SUCH_ACTION_TYPE,
    NO_SUCH_OBJECT_INSTANCE,
    SUCCESS,
    failure,
)
from telerad.domain.uids import is_valid_uid
from telerad.services.platform import Platform

log = logging.getLogger(__name__)

REQUEST_STORAGE_COMMITMENT = 1
ALL_COMMITTED = 1
SOME_FAILED = 2
#: Seconds to wait for the peer's N-EVENT-REPORT response.
REPORT_TIMEOUT = 10.0
#: Many SCUs release right after the N-ACTION response and expect the report on a
#: new association; a report sent into their release would collide with it. So
#: the requesting association is used only if it is still open this long after
#: the request (the result is being computed meanwhile anyway).
RELEASE_GRACE = 0.5


@dataclass(frozen=True)
class CommitmentRequest:
    transaction_uid: str
    references: tuple[tuple[str, str], ...]  # (SOP Class UID, SOP Instance UID)


class InvalidCommitmentRequest(ValueError):
    def __init__(self, status: int, comment: str) -> None:
        super().__init__(comment)
        self.status = status


def parse_request(info: Dataset | None) -> CommitmentRequest:
    if info is None:
        raise InvalidCommitmentRequest(MISSING_ATTRIBUTE, "Action Information is missing")
    transaction = str(info.get("TransactionUID", "") or "").strip()
    if not transaction:
        raise InvalidCommitmentRequest(MISSING_ATTRIBUTE, "Transaction UID is missing")
    if not is_valid_uid(transaction):
        raise InvalidCommitmentRequest(
            INVALID_ATTRIBUTE_VALUE, "Transaction UID is not a valid UID"
        )
    items = info.get("ReferencedSOPSequence")
    if not items:
        raise InvalidCommitmentRequest(MISSING_ATTRIBUTE, "Referenced SOP Sequence is empty")
    references = []
    for item in items:
        sop_class = str(item.get("ReferencedSOPClassUID", "") or "").strip()
        sop_instance = str(item.get("ReferencedSOPInstanceUID", "") or "").strip()
        if not sop_class or not sop_instance:
            raise InvalidCommitmentRequest(MISSING_ATTRIBUTE, "a Referenced SOP item lacks a UID")
        references.append((sop_class, sop_instance))
    return CommitmentRequest(transaction, tuple(references))


def _item(sop_class: str, sop_instance: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_instance
    return item


def commitment_result(
    platform: Platform, request: CommitmentRequest, retrieve_aet: str
) -> tuple[int, Dataset]:
    """(event type, Event Information) for a commitment request."""
    committed, failed = [], []
    for sop_class, sop_instance in request.references:
        if is_valid_uid(sop_instance) and platform.archive.is_committed(sop_instance, sop_class):
            committed.append(_item(sop_class, sop_instance))
        else:
            item = _item(sop_class, sop_instance)
            item.FailureReason = NO_SUCH_OBJECT_INSTANCE
            failed.append(item)
    info = Dataset()
    info.TransactionUID = request.transaction_uid
    if committed:
        info.RetrieveAETitle = retrieve_aet
        info.ReferencedSOPSequence = committed
    if failed:
        info.FailedSOPSequence = failed
    return (SOME_FAILED if failed else ALL_COMMITTED), info


def _released_within(assoc: Any, deadline: float) -> bool:
    """Wait until ``deadline`` for the peer to release (or abort) the association."""
    while True:
        if not assoc.is_established or assoc.peer_is_leaving():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)


class CommitmentSCP:
    """EVT_N_ACTION handler: accepts the request and reports the result from a thread."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def __call__(self, event: Any) -> tuple[Any, Dataset | None]:
        if str(event.request.RequestedSOPClassUID) != STORAGE_COMMITMENT_PUSH_MODEL:
            return failure(NO_SUCH_ACTION_TYPE, "only Storage Commitment Push Model actions"), None
        if event.action_type != REQUEST_STORAGE_COMMITMENT:
            return failure(NO_SUCH_ACTION_TYPE, "action type must be 1"), None
        try:
            request = parse_request(event.action_information)
        except InvalidCommitmentRequest as exc:
            return failure(exc.status, str(exc)), None
        except Exception:
            return failure(INVALID_ATTRIBUTE_VALUE, "Action Information cannot be decoded"), None
        worker = threading.Thread(
            target=self.report,
            args=(event.assoc, request),
            name="storage-commitment-report",
            daemon=True,
        )
        worker.start()
        return SUCCESS, None

    def report(self, assoc: Any, request: CommitmentRequest) -> None:
        try:
            started = time.monotonic()
            aet = assoc.acceptor.ae_title
            calling_ae = str(assoc.requestor.ae_title).strip()
            event_type, info = commitment_result(self.platform, request, aet)
            if not _released_within(assoc, started + RELEASE_GRACE) and self._over_same_association(
                assoc, event_type, info
            ):
                return
            self._over_new_association(assoc.ae, calling_ae, event_type, info)
        except Exception as exc:
            log.error("storage commitment report failed: %s", type(exc).__name__)

    def _over_same_association(self, assoc: Any, event_type: int, info: Dataset) -> bool:
        try:
            status = assoc.send_event_report(
                info,
                event_type,
                STORAGE_COMMITMENT_PUSH_MODEL,
                STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE,
                timeout=REPORT_TIMEOUT,
            )
        except Exception:  # released or aborted meanwhile: use a new association
            return False
        return bool(status == SUCCESS)

    def _over_new_association(
        self, ae: Any, calling_ae: str, event_type: int, info: Dataset
    ) -> None:
        node = self.platform.index.node_by_ae(calling_ae)
        if node is None:
            log.warning(
                "storage commitment result undeliverable: %s is not a registered node", calling_ae
            )
            return
        out = ae.associate(
            node.host,
            node.port,
            contexts=[build_context(STORAGE_COMMITMENT_PUSH_MODEL)],
            ae_title=node.ae_title,
            # The archive is the SCP of Storage Commitment but the requestor of this association.
            ext_neg=[build_role(STORAGE_COMMITMENT_PUSH_MODEL, scu_role=False, scp_role=True)],
        )
        if not out.is_established:
            log.warning("storage commitment result undeliverable: %s did not accept", calling_ae)
            return
        try:
            status = out.send_event_report(
                info,
                event_type,
                STORAGE_COMMITMENT_PUSH_MODEL,
                STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE,
                timeout=REPORT_TIMEOUT,
            )
            if status != SUCCESS:
                log.warning("storage commitment report to %s was not acknowledged", calling_ae)
        finally:
            if out.is_established:
                out.release()
