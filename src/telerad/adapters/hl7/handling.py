"""Orders and patient updates read from HL7 applied through the order service.

A message is all or nothing: every group is checked against the stored orders
(the accession exists for a change or a cancel, the status allows it) before
any is applied, so a message whose second order is wrong changes nothing and
its AE names the field. Only a change made by someone else between the check
and the write (another message for the same order at the same moment) can stop
a message half-way; that order then answers AE 207 with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from telerad.adapters.hl7.ack import ErrorCode, ErrorLocation
from telerad.adapters.hl7.orders import (
    Hl7Error,
    OrderAction,
    OrderCommand,
    PatientCommand,
    PatientMerge,
    PatientUpdate,
)
from telerad.domain.orders import OrderError, OrderEvent, OrderStatus
from telerad.services.orders import OrderService, Origin


def _refused(where: ErrorLocation, accession: str, error: OrderError) -> Hl7Error:
    return Hl7Error(ErrorCode.INTERNAL_ERROR, f"order {accession}: {error}", where)


def apply_orders(service: OrderService, commands: Sequence[OrderCommand], origin: Origin) -> int:
    """Apply every command or none (Hl7Error); how many orders changed."""
    plan: list[tuple[OrderCommand, Callable[[], object]]] = []
    for command in commands:
        order, accession = command.order, command.order.accession_number
        known = service.by_accession(order.facility_id, accession)
        try:
            if command.action is OrderAction.PLACE:
                if known is not None:
                    known.revised(order)  # a resent NW revises: may it?
                plan.append((command, partial(service.place_or_revise, order, origin)))
                continue
            if known is None:
                reason = f"{command.key}: no order with accession number {accession!r} here"
                raise Hl7Error(ErrorCode.UNKNOWN_KEY, reason, command.key)
            if command.action is OrderAction.REVISE:
                known.revised(order)
                plan.append((command, partial(service.revise, known, order, origin)))
            elif known.status is not OrderStatus.CANCELLED:  # a resent cancel changes nothing
                known.moved(OrderEvent.CANCEL)
                cancel = partial(service.cancel, known, origin, command.cancel_reason)
                plan.append((command, cancel))
        except OrderError as exc:
            raise _refused(command.control_field, accession, exc) from None
    for command, step in plan:
        try:
            step()
        except OrderError as exc:  # changed by another message since the check
            raise _refused(command.control_field, command.order.accession_number, exc) from None
    return len(plan)


def apply_patients(
    service: OrderService, facility_id: int, commands: Sequence[PatientCommand], origin: Origin
) -> int:
    """ADT updates and merges for one facility, all checked first; how many orders changed."""
    for command in commands:
        if isinstance(command, PatientMerge) and command.patient.patient_id in command.prior_ids:
            reason = f"{command.where} names the surviving identifier (PID-3) as a prior one"
            raise Hl7Error(ErrorCode.INTERNAL_ERROR, reason, command.where)
    changed = 0
    for command in commands:
        if isinstance(command, PatientUpdate):
            changed += service.update_patient(facility_id, command.patient, origin)
        else:
            changed += service.merge_patient(
                facility_id, command.prior_ids, command.patient, origin
            )
    return changed
