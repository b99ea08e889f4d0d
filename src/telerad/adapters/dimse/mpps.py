"""Modality Performed Procedure Step SCP (PS3.4 Annex F; IHE SWF RAD-6 and RAD-7).

N-CREATE starts a step (its status must be IN PROGRESS); N-SET updates it and
ends it as COMPLETED or DISCONTINUED, after which it may no longer be updated.
The step names the orders it performs in its Scheduled Step Attributes
Sequence (Accession Number, else the requested Study Instance UID, else the
Requested Procedure ID) — orders of the calling facility only. Those orders
start, complete or are discontinued with it. A step naming no known order is
kept all the same (IHE SWF "unscheduled" case) and noted in the audit trail,
so that reconciliation can match it to its study later.

The step's attributes are kept as DICOM JSON (the repository's ``mpps`` table),
every N-SET merged in, Performed Series Sequence and its Referenced Image
Sequences exactly as the modality sent them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from telerad.adapters.dimse.contexts import MODALITY_PERFORMED_PROCEDURE_STEP
from telerad.adapters.dimse.gate import actor_of, peer_of
from telerad.adapters.dimse.status import (
    DUPLICATE_SOP_INSTANCE,
    INVALID_ATTRIBUTE_VALUE,
    MISSING_ATTRIBUTE,
    NO_SUCH_OBJECT_INSTANCE,
    PROCESSING_FAILURE,
    SUCCESS,
    failure,
)
from telerad.bootstrap import Platform
from telerad.domain.audit import Action, EventID, Outcome
from telerad.domain.orders import Order, OrderError, OrderEvent
from telerad.domain.uids import is_valid_uid
from telerad.services.orders import Origin

log = logging.getLogger(__name__)

IN_PROGRESS = "IN PROGRESS"
COMPLETED = "COMPLETED"
DISCONTINUED = "DISCONTINUED"
FINAL = frozenset({COMPLETED, DISCONTINUED})
#: N-SET may move a step to these (PS3.3 C.4.14, Performed Procedure Step Status).
STATUSES = frozenset({IN_PROGRESS, COMPLETED, DISCONTINUED})
#: The order event each status brings.
EVENTS = {
    IN_PROGRESS: OrderEvent.START,
    COMPLETED: OrderEvent.COMPLETE,
    DISCONTINUED: OrderEvent.DISCONTINUE,
}

INVALID_OBJECT_INSTANCE = 0x0117
NO_SUCH_SOP_CLASS = 0x0118
NOT_AUTHORISED = 0x0124
#: Error ID (0000,0903) of "Performed Procedure Step Object may no longer be updated"
#: (PS3.4 F.7.2.2.2), sent with Processing Failure 0x0110.
MAY_NO_LONGER_BE_UPDATED = 0xA710


class StepStore(Protocol):
    """Where steps are kept: the orders repository (storage.db.order_repository.SqlOrders)."""

    def put_mpps(
        self,
        sop_instance_uid: str,
        facility_id: int,
        order_id: int | None,
        status: str,
        study_instance_uid: str,
        json: str,
        now: datetime,
    ) -> None: ...

    def mpps(self, sop_instance_uid: str) -> dict[str, Any] | None: ...


class Refusal(Exception):
    def __init__(self, status: int, comment: str, error_id: int | None = None) -> None:
        super().__init__(comment)
        self.status = status
        self.error_id = error_id

    def dataset(self) -> Dataset:
        ds = failure(self.status, str(self))
        if self.error_id is not None:
            ds.ErrorID = self.error_id
        return ds


def _text(ds: Dataset, keyword: str) -> str:
    return str(ds.get(keyword, "") or "").strip()


def step_status(ds: Dataset) -> str:
    if "PerformedProcedureStepStatus" not in ds or not _text(ds, "PerformedProcedureStepStatus"):
        raise Refusal(MISSING_ATTRIBUTE, "Performed Procedure Step Status is missing")
    return _text(ds, "PerformedProcedureStepStatus").upper()


def scheduled_steps(ds: Dataset) -> list[Dataset]:
    return list(ds.get("ScheduledStepAttributesSequence") or [])


def performed_study_uid(ds: Dataset) -> str:
    """The Study Instance UID the modality made its images under (first scheduled step)."""
    for item in scheduled_steps(ds):
        uid = _text(item, "StudyInstanceUID")
        if uid:
            return uid
    return ""


def referenced_orders(platform: Platform, facility_id: int, ds: Dataset) -> list[Order]:
    """The facility's orders the step performs, each once, in the order named."""
    orders = platform.orders
    found: dict[int, Order] = {}
    for item in scheduled_steps(ds):
        accession = _text(item, "AccessionNumber")
        study = _text(item, "StudyInstanceUID")
        procedure = _text(item, "RequestedProcedureID")
        order = orders.by_accession(facility_id, accession) if accession else None
        if order is None and study:
            order = orders.by_requested(facility_id, requested_study_uid=study)
        if order is None and procedure:
            order = orders.by_requested(facility_id, requested_procedure_id=procedure)
        if order is not None and order.id is not None:
            found.setdefault(order.id, order)
    return list(found.values())


class MppsSCP:
    """EVT_N_CREATE and EVT_N_SET handlers of the MPPS SOP Class."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.steps = cast(StepStore, platform.orders.store)
        # One step's read-merge-write must not interleave with another's update.
        self._lock = threading.Lock()

    # -- N-CREATE ---------------------------------------------------------------------
    def create(self, event: Any) -> tuple[Any, Dataset | None]:
        try:
            return self._create(event)
        except Refusal as exc:
            return exc.dataset(), None
        except Exception as exc:
            log.error("MPPS N-CREATE failed: %s", type(exc).__name__)
            return failure(PROCESSING_FAILURE, "the step could not be kept"), None

    def _create(self, event: Any) -> tuple[Any, Dataset | None]:
        request = event.request
        self._check_sop_class(str(request.AffectedSOPClassUID))
        facility_id = self._facility(event.assoc)
        given = str(request.AffectedSOPInstanceUID or "").strip()
        uid = given or generate_uid("2.25.")  # UUID-derived (PS3.5 B.2)
        if not is_valid_uid(uid):
            raise Refusal(INVALID_OBJECT_INSTANCE, "Affected SOP Instance UID is not a valid UID")
        try:
            ds = event.attribute_list
            status = step_status(ds)
        except Refusal:
            raise
        except Exception:
            raise Refusal(INVALID_ATTRIBUTE_VALUE, "Attribute List cannot be decoded") from None
        if status != IN_PROGRESS:
            raise Refusal(INVALID_ATTRIBUTE_VALUE, "a new step's status must be IN PROGRESS")
        if "ScheduledStepAttributesSequence" not in ds:
            raise Refusal(MISSING_ATTRIBUTE, "Scheduled Step Attributes Sequence is missing")
        ds.SOPClassUID = MODALITY_PERFORMED_PROCEDURE_STEP
        ds.SOPInstanceUID = uid
        with self._lock:
            if self.steps.mpps(uid) is not None:
                raise Refusal(DUPLICATE_SOP_INSTANCE, "this step exists already")
            orders = referenced_orders(self.platform, facility_id, ds)
            self._keep(uid, facility_id, orders, status, ds)
        self._apply(event.assoc, facility_id, uid, orders, status, ds)
        if given:
            return SUCCESS, None
        reply = Dataset()
        reply.AffectedSOPInstanceUID = uid  # pynetdicom moves it into the response
        return SUCCESS, reply

    # -- N-SET ------------------------------------------------------------------------
    def set(self, event: Any) -> tuple[Any, Dataset | None]:
        try:
            return self._set(event)
        except Refusal as exc:
            return exc.dataset(), None
        except Exception as exc:
            log.error("MPPS N-SET failed: %s", type(exc).__name__)
            return failure(PROCESSING_FAILURE, "the step could not be updated"), None

    def _set(self, event: Any) -> tuple[Any, Dataset | None]:
        request = event.request
        self._check_sop_class(str(request.RequestedSOPClassUID))
        facility_id = self._facility(event.assoc)
        uid = str(request.RequestedSOPInstanceUID or "").strip()
        try:
            changes = event.modification_list
            list(changes)  # decode now, not half-way through the merge
        except Exception:
            raise Refusal(INVALID_ATTRIBUTE_VALUE, "Modification List cannot be decoded") from None
        with self._lock:
            row = self.steps.mpps(uid) if uid else None
            if row is None or row["facility_id"] != facility_id:
                raise Refusal(NO_SUCH_OBJECT_INSTANCE, "no such Performed Procedure Step")
            if row["status"] in FINAL:
                raise Refusal(
                    PROCESSING_FAILURE,
                    "Performed Procedure Step object may no longer be updated",
                    MAY_NO_LONGER_BE_UPDATED,
                )
            ds = Dataset.from_json(row["json"])
            for elem in changes:
                if elem.tag.group != 0:
                    ds[elem.tag] = elem
            status = step_status(ds)
            if status not in STATUSES:
                raise Refusal(
                    INVALID_ATTRIBUTE_VALUE, "status must be IN PROGRESS, COMPLETED or DISCONTINUED"
                )
            orders = referenced_orders(self.platform, facility_id, ds)
            self._keep(uid, facility_id, orders, status, ds, row["order_id"])
        if status != row["status"]:
            self._apply(event.assoc, facility_id, uid, orders, status, ds)
        return SUCCESS, None

    # -- shared -----------------------------------------------------------------------
    @staticmethod
    def _check_sop_class(uid: str) -> None:
        if uid != MODALITY_PERFORMED_PROCEDURE_STEP:
            raise Refusal(NO_SUCH_SOP_CLASS, "only Modality Performed Procedure Step")

    def _facility(self, assoc: Any) -> int:
        peer = peer_of(self.platform, assoc)
        if peer.scope is None:  # a reading hub performs no procedures
            raise Refusal(NOT_AUTHORISED, "this AE is registered for no facility")
        return peer.store_facility_id

    def _keep(
        self,
        uid: str,
        facility_id: int,
        orders: list[Order],
        status: str,
        ds: Dataset,
        known_order: int | None = None,
    ) -> None:
        order_id = orders[0].id if orders else known_order
        self.steps.put_mpps(
            uid,
            facility_id,
            order_id,
            status,
            performed_study_uid(ds),
            ds.to_json(),
            datetime.now(UTC),
        )

    def _apply(
        self,
        assoc: Any,
        facility_id: int,
        uid: str,
        orders: Iterable[Order],
        status: str,
        ds: Dataset,
    ) -> None:
        """Move the orders the step performs; a step without one is noted as unscheduled."""
        actor = actor_of(assoc)
        origin = Origin("MPPS", actor.id, actor.source)
        event = EVENTS[status]
        stepped = 0
        for order in orders:
            try:
                self.platform.orders.step(order, event, origin, mpps_status=status)
                stepped += 1
            except OrderError as exc:
                # The modality did the work all the same: keep the step, say why the
                # order could not follow.
                self._note(actor.id, actor.source, facility_id, order, ds, str(exc))
        if not orders and status == IN_PROGRESS:
            self._note(actor.id, actor.source, facility_id, None, ds, "")
        log.info("performed procedure step %s: %s, %d order(s) moved", uid[-12:], status, stepped)

    def _note(
        self,
        actor_id: str,
        address: str,
        facility_id: int,
        order: Order | None,
        ds: Dataset,
        reason: str,
    ) -> None:
        if order is None:
            detail = "unscheduled performed procedure step: no order of the facility matches"
        else:
            detail = f"order {order.accession_number} did not follow its performed step: {reason}"
        self.platform.audit.record(
            EventID.PROCEDURE_RECORD,
            actor_id,
            action=Action.CREATE if order is None else Action.UPDATE,
            outcome=Outcome.SUCCESS if order is None else Outcome.MINOR_FAILURE,
            source_address=address,
            patient_id=_text(ds, "PatientID") if order is None else order.patient.patient_id,
            study_uid=performed_study_uid(ds),
            facility=self.platform.orders.facility_name(facility_id),
            detail=detail,
        )
