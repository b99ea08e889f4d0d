"""Audit use cases: record an event, verify the chain, export the trail.

Wire formats live in ``telerad.adapters.audit``; this module takes them as plain
callables (a formatter for export, a forwarder for each new record) so it depends
on no adapter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from telerad.domain.audit import (
    Action,
    AuditEvent,
    AuditRecord,
    EventID,
    Outcome,
    Verdict,
    verify,
)

if TYPE_CHECKING:  # these build on this module
    from telerad.services.access_audit import Actor
    from telerad.services.ports import UnitOfWork

log = logging.getLogger(__name__)


class AuditRepository(Protocol):
    def append(self, event: AuditEvent) -> AuditRecord: ...

    def records(
        self, since: datetime | None = None, batch: int = 1000
    ) -> Iterator[AuditRecord]: ...

    def count(self) -> int: ...


Forwarder = Callable[[AuditRecord], object]
Formatter = Callable[[AuditRecord], str]


class AuditService:
    def __init__(
        self,
        repository: AuditRepository,
        forwarders: list[Forwarder] | None = None,
        unit_of_work: UnitOfWork | None = None,
    ):
        self.repository = repository
        self.forwarders: list[Forwarder] = list(forwarders or [])
        #: A record written in a unit of work is forwarded once the unit commits.
        self.unit_of_work = unit_of_work

    def record(
        self,
        event: EventID,
        actor_id: str,
        *,
        actor_role: str = "",
        actor_is_user: bool = False,
        outcome: Outcome = Outcome.SUCCESS,
        action: Action | None = None,
        source_address: str = "",
        patient_id: str = "",
        study_uid: str = "",
        facility: str = "",
        detail: str = "",
        time: datetime | None = None,
    ) -> AuditRecord:
        """Append an event to the trail, then hand it to the forwarders (syslog…).

        The record is committed before forwarding (written in a unit of work, it is
        forwarded once the unit commits, and never when it rolls back); a forwarder that
        fails is logged (event and sequence only: no PHI) and never undoes or fails the
        record.
        """
        stored = self.repository.append(
            AuditEvent(
                event=event,
                actor_id=actor_id,
                actor_role=actor_role,
                actor_is_user=actor_is_user,
                outcome=outcome,
                action=action,
                time=time,
                source_address=source_address,
                patient_id=patient_id,
                study_uid=study_uid,
                facility=facility,
                detail=detail,
            )
        )
        if self.unit_of_work is None:
            self._forward(stored)
        elif self.forwarders:
            self.unit_of_work.after_commit(lambda: self._forward(stored))
        return stored

    def _forward(self, stored: AuditRecord) -> None:
        for forward in self.forwarders:
            try:
                forward(stored)
            except Exception:
                sequence, event = stored.sequence, stored.event_id
                log.exception("audit record %d (%s) not forwarded", sequence, event)

    def verify(self) -> Verdict:
        return verify(self.repository.records())

    def export(
        self,
        formatter: Formatter,
        since: datetime | None = None,
        *,
        by: Actor | None = None,
        format_name: str = "",
        since_asked: str = "",
    ) -> Iterator[str]:
        """The trail (from ``since`` on), one formatted record at a time, in sequence order.

        Reading the trail is itself audited (DICOM "Audit Log Used") once every record
        was handed over, when ``by`` says who reads it (``format_name`` and
        ``since_asked``, the time as they gave it, say how)."""
        count = 0
        for record in self.repository.records(since=since):
            yield formatter(record)
            count += 1
        if by is not None:
            self.record(
                EventID.AUDIT_LOG_USED,
                by.id,
                actor_role=by.role,
                actor_is_user=by.is_user,
                source_address=by.source,
                detail=f"export format={format_name} since={since_asked or '-'} records={count}",
            )
