"""Performed procedure steps: kept as the modality reports them, the orders moving along.

A step names the orders it performs in its Scheduled Step Attributes Sequence
(Accession Number, else the requested Study Instance UID, else the Requested
Procedure ID) — orders of the calling facility only. Those orders start,
complete or are discontinued with it (:data:`~telerad.domain.mpps.ORDER_EVENT`);
which moves a step may make is the domain's table (:mod:`telerad.domain.mpps`).
A step naming no known order is kept all the same (IHE SWF "unscheduled") and
noted in the audit trail, so that reconciliation can match it to its study
later; an order that cannot follow its step (cancelled, say) is noted too.

Steps are kept as DICOM JSON, every update merged in, Performed Series Sequence
and its Referenced Image Sequences exactly as the modality sent them. A step kept
and the orders it moves, with their audit records, are one unit of work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from pydicom.dataset import Dataset

from telerad.domain.audit import Action, EventID, Outcome
from telerad.domain.mpps import (
    ORDER_EVENT,
    Refused,
    StepRefused,
    StepStatus,
    next_status,
    parse_status,
)
from telerad.domain.orders import Order, OrderError
from telerad.services.audit import AuditService
from telerad.services.orders import OrderService, Origin
from telerad.services.ports import Immediate, UnitOfWork

log = logging.getLogger(__name__)

MPPS_SOP_CLASS = "1.2.840.10008.3.1.2.3.3"


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


def _text(ds: Dataset, keyword: str) -> str:
    return str(ds.get(keyword, "") or "").strip()


def _scheduled(ds: Dataset) -> list[Dataset]:
    return list(ds.get("ScheduledStepAttributesSequence") or [])


def performed_study_uid(ds: Dataset) -> str:
    """The Study Instance UID the modality made its images under (first scheduled step)."""
    for item in _scheduled(ds):
        uid = _text(item, "StudyInstanceUID")
        if uid:
            return uid
    return ""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MppsService:
    def __init__(
        self,
        steps: StepStore,
        orders: OrderService,
        audit: AuditService,
        clock: Callable[[], datetime] = _utcnow,
        unit_of_work: UnitOfWork | None = None,
    ) -> None:
        self.steps = steps
        self.orders = orders
        self.audit = audit
        self.clock = clock
        #: A step kept and the orders it moves, with their audit records: all, or nothing.
        self.unit: UnitOfWork = unit_of_work or Immediate()
        # One step's read-merge-write must not interleave with another's update.
        self._lock = threading.Lock()

    def create(self, facility_id: int, uid: str, ds: Dataset, origin: Origin) -> StepStatus:
        """A modality started a step (N-CREATE): keep it, start its orders."""
        try:
            status = next_status(None, parse_status(_text(ds, "PerformedProcedureStepStatus")))
        except StepRefused as exc:
            if exc.reason is Refused.UNKNOWN_STATUS:
                raise StepRefused(Refused.NOT_STARTED) from None
            raise
        if "ScheduledStepAttributesSequence" not in ds:
            raise StepRefused(Refused.NO_SCHEDULED_STEP)
        ds.SOPClassUID = MPPS_SOP_CLASS
        ds.SOPInstanceUID = uid
        with self._lock, self.unit:
            if self.steps.mpps(uid) is not None:
                raise StepRefused(Refused.EXISTS)
            orders = self.referenced_orders(facility_id, ds)
            self._keep(uid, facility_id, orders, status, ds)
            self._apply(facility_id, uid, orders, status, ds, origin)
        return status

    def update(
        self, facility_id: int, uid: str, changes: Iterable[Any], origin: Origin
    ) -> StepStatus:
        """A modality updated a step (N-SET): merge the changes in; when it ends, the
        orders end with it. ``changes`` are the Modification List's elements."""
        with self._lock, self.unit:
            row = self.steps.mpps(uid) if uid else None
            if row is None or row["facility_id"] != facility_id:
                raise StepRefused(Refused.NO_SUCH_STEP)
            current = StepStatus(row["status"])
            ds = Dataset.from_json(row["json"])
            for elem in changes:
                if elem.tag.group != 0:
                    ds[elem.tag] = elem
            status = next_status(current, parse_status(_text(ds, "PerformedProcedureStepStatus")))
            orders = self.referenced_orders(facility_id, ds)
            self._keep(uid, facility_id, orders, status, ds, row["order_id"])
            if status is not current:
                self._apply(facility_id, uid, orders, status, ds, origin)
        return status

    def referenced_orders(self, facility_id: int, ds: Dataset) -> list[Order]:
        """The facility's orders the step performs, each once, in the order named."""
        found: dict[int, Order] = {}
        for item in _scheduled(ds):
            accession = _text(item, "AccessionNumber")
            study = _text(item, "StudyInstanceUID")
            procedure = _text(item, "RequestedProcedureID")
            order = self.orders.by_accession(facility_id, accession) if accession else None
            if order is None and study:
                order = self.orders.by_requested(facility_id, requested_study_uid=study)
            if order is None and procedure:
                order = self.orders.by_requested(facility_id, requested_procedure_id=procedure)
            if order is not None and order.id is not None:
                found.setdefault(order.id, order)
        return list(found.values())

    def _keep(
        self,
        uid: str,
        facility_id: int,
        orders: list[Order],
        status: StepStatus,
        ds: Dataset,
        known_order: int | None = None,
    ) -> None:
        order_id = orders[0].id if orders else known_order
        self.steps.put_mpps(
            uid,
            facility_id,
            order_id,
            status.value,
            performed_study_uid(ds),
            ds.to_json(),
            self.clock(),
        )

    def _apply(
        self,
        facility_id: int,
        uid: str,
        orders: Iterable[Order],
        status: StepStatus,
        ds: Dataset,
        origin: Origin,
    ) -> None:
        """Move the orders the step performs; a step without one is noted as unscheduled."""
        event = ORDER_EVENT[status]
        stepped = 0
        orders = list(orders)
        for order in orders:
            try:
                self.orders.step(order, event, origin, mpps_status=status.value)
                stepped += 1
            except OrderError as exc:
                # The modality did the work all the same: keep the step, say why the
                # order could not follow.
                self._note(origin, facility_id, order, ds, str(exc))
        if not orders and status is StepStatus.IN_PROGRESS:
            self._note(origin, facility_id, None, ds, "")
        log.info("performed procedure step %s: %s, %d order(s) moved", uid[-12:], status, stepped)

    def _note(
        self, origin: Origin, facility_id: int, order: Order | None, ds: Dataset, reason: str
    ) -> None:
        if order is None:
            detail = "unscheduled performed procedure step: no order of the facility matches"
        else:
            detail = f"order {order.accession_number} did not follow its performed step: {reason}"
        self.audit.record(
            EventID.PROCEDURE_RECORD,
            origin.actor,
            action=Action.CREATE if order is None else Action.UPDATE,
            outcome=Outcome.SUCCESS if order is None else Outcome.MINOR_FAILURE,
            source_address=origin.address,
            patient_id=_text(ds, "PatientID") if order is None else order.patient.patient_id,
            study_uid=performed_study_uid(ds),
            facility=self.orders.facility_name(facility_id),
            detail=detail,
        )
