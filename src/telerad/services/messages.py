"""Orders and patient updates received as messages (HL7 v2): who may send them, and
each receipt in the audit trail.

A message is taken when it names a registered facility (MSH-4) that may send
from the sender's address and certificate (:meth:`Admission.sender`); one that
names another is refused as a security alert, with one answer whether the
facility does not exist or this sender may not use it. A taken message is
applied by the caller (the adapter reads it, the order service applies it) and
its receipt is audited with the answer it got: an Order Record for orders, a
Patient Record for patient updates, a failure when it was not accepted or
applying it failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from telerad.domain.audit import Action, EventID, Outcome
from telerad.domain.model import Facility
from telerad.services.admission import Admission
from telerad.services.audit import AuditService


@dataclass(frozen=True)
class Sent:
    """A message's facts as admission and the audit trail need them (no PHI)."""

    facility_name: str  # MSH-4
    sender: str  # the sending application (MSH-3), "HL7" when it names none
    address: str
    cert_sha256: str | None
    message_type: str  # MSH-9 as sent, e.g. ORM^O01
    control_id: str  # MSH-10
    patient_update: bool  # ADT, else an order message
    tls: bool = False

    @property
    def transport(self) -> str:
        return "MLLP over TLS" if self.tls else "MLLP"


class Answered(Protocol):
    """What a taken message was answered."""

    @property
    def accepted(self) -> bool: ...

    @property
    def code(self) -> str:
        """As acknowledged: AA, AE 207."""
        ...


@dataclass(frozen=True)
class _Failed:
    accepted: bool = False
    code: str = "failed"


A = TypeVar("A", bound=Answered)


class Messages:
    def __init__(self, admission: Admission, audit: AuditService) -> None:
        self.admission = admission
        self.audit = audit

    def receive(self, sent: Sent, apply: Callable[[Facility], A]) -> A | None:
        """Admit the message and, when taken, ``apply`` it to its facility; None when
        refused. The receipt is audited with the answer (``failed`` when ``apply``
        raised, which is raised again)."""
        facility = self.admission.sender(sent.facility_name, sent.address, sent.cert_sha256)
        if facility is None:
            self.audit.record(
                EventID.SECURITY_ALERT,
                sent.sender,
                outcome=Outcome.MINOR_FAILURE,
                source_address=sent.address,
                detail=(f"HL7 {sent.message_type} over {sent.transport} for an unknown facility"),
            )
            return None
        try:
            answer = apply(facility)
        except Exception:
            self._receipt(sent, facility, _Failed())
            raise
        self._receipt(sent, facility, answer)
        return answer

    def _receipt(self, sent: Sent, facility: Facility, answer: Answered) -> None:
        self.audit.record(
            EventID.PATIENT_RECORD if sent.patient_update else EventID.ORDER_RECORD,
            sent.sender,
            action=Action.UPDATE if sent.patient_update else Action.CREATE,
            outcome=Outcome.SUCCESS if answer.accepted else Outcome.MINOR_FAILURE,
            source_address=sent.address,
            facility=facility.name,
            detail=(
                f"HL7 {sent.message_type} {sent.control_id[:20]} received over "
                f"{sent.transport}: {answer.code}"
            ),
        )
