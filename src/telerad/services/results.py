"""Results delivery as administrators see it: where each facility takes its results,
what the outbox holds (dead letters first of all), sending a dead letter again, and
every delivery of a report (what was sent where, when, and the answer).

Scoped like everything else: a network administrator sees every facility, a
facility administrator their own; a message or facility outside the scope is
answered as one that does not exist. Every change and every listing is audited
(endpoints as configuration changes, DICOM "Security Alert"; listings as
"Query"; a retry as "Application Activity"); deliveries themselves are audited by
the outbox worker ("Export").
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from telerad.domain.audit import EventID
from telerad.domain.outbox import Channel, Endpoint, MessageState, OutboxError, check_address
from telerad.services.access_audit import Actor
from telerad.services.audit import AuditService
from telerad.services.outbox import (
    Attempt,
    EndpointStore,
    OutboxFilter,
    OutboxMessage,
    OutboxStore,
)

Scope = frozenset[int] | None  # the facilities an actor sees (None: all)


class NotFound(LookupError):
    """No such message, report or facility among those the caller may see."""


@dataclass(frozen=True)
class Trace:
    """One message and its attempts: the delivery history."""

    message: OutboxMessage
    attempts: list[Attempt]


@dataclass
class ResultsService:
    outbox: OutboxStore
    endpoints: EndpointStore
    audit: AuditService
    #: The facility's name by id (for the trail), None when there is no such facility.
    facility_name: Callable[[int], str | None]
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    #: Woken when a retry makes a message due (the worker sends it at once).
    wake: threading.Event | None = None

    # -- endpoints ----------------------------------------------------------------------
    def set_endpoint(
        self, actor: Actor, scope: Scope, facility_id: int, kind: Channel, address: str, tls: bool
    ) -> Endpoint:
        """Where the facility takes ``kind``'s results from now on (OutboxError for an
        address that is not one of ``kind``'s). Messages already queued go there too."""
        name = self._facility(scope, facility_id)
        endpoint = Endpoint(facility_id, kind, check_address(kind, address.strip()), tls)
        self.endpoints.put(endpoint)
        self._change(actor, name, f"results endpoint of {name}: {endpoint}")
        return endpoint

    def remove_endpoint(self, actor: Actor, scope: Scope, facility_id: int, kind: Channel) -> bool:
        name = self._facility(scope, facility_id)
        removed = self.endpoints.remove(facility_id, kind)
        if removed:
            self._change(actor, name, f"results endpoint of {name} removed: {kind.value}")
        return removed

    def endpoints_of(self, scope: Scope, facility_id: int | None = None) -> list[Endpoint]:
        if facility_id is not None:
            self._facility(scope, facility_id)
        return [e for e in self.endpoints.endpoints(facility_id) if _sees(scope, e.facility_id)]

    # -- the outbox ---------------------------------------------------------------------
    def messages(self, actor: Actor, scope: Scope, f: OutboxFilter) -> list[OutboxMessage]:
        """Messages (newest first) within the caller's scope; audited as a query."""
        if scope is not None:
            f = OutboxFilter(
                f.states,
                scope if f.facility_ids is None else scope & f.facility_ids,
                f.report_id,
                f.channel,
                f.limit,
                f.offset,
            )
        found = self.outbox.find(f)
        states = ",".join(sorted(s.value for s in f.states)) or "any"
        self.audit.record(
            EventID.QUERY,
            actor.id,
            actor_role=actor.role,
            actor_is_user=actor.is_user,
            source_address=actor.source,
            detail=f"outbox (state {states}"
            + (f", report {f.report_id}" if f.report_id is not None else "")
            + f"): {len(found)} listed",
        )
        return found

    def counts(self, scope: Scope) -> dict[MessageState, int]:
        return self.outbox.counts(scope)

    def trace(self, actor: Actor, scope: Scope, outbox_id: int) -> Trace:
        message = self._message(scope, outbox_id)
        self.audit.record(
            EventID.QUERY,
            actor.id,
            actor_role=actor.role,
            actor_is_user=actor.is_user,
            source_address=actor.source,
            study_uid=message.study_instance_uid,
            detail=f"outbox message {message.id} ({message.message_id}) and its attempts",
        )
        return Trace(message, self.outbox.attempts(message.id))

    def deliveries(self, actor: Actor, scope: Scope, report_id: int) -> list[Trace]:
        """Everything queued for a report, oldest first, with every attempt."""
        found = self.messages(actor, scope, OutboxFilter(report_id=report_id, limit=1000))
        return [Trace(m, self.outbox.attempts(m.id)) for m in reversed(found)]

    def retry(self, actor: Actor, scope: Scope, outbox_id: int) -> OutboxMessage:
        """Send a dead letter again (OutboxError when it is not one)."""
        message = self._message(scope, outbox_id)
        back = self.outbox.retry(message.id, self.clock())
        if back is None:
            raise OutboxError(f"message {outbox_id} is {message.state.value}, not a dead letter")
        self.audit.record(
            EventID.APPLICATION_ACTIVITY,
            actor.id,
            actor_role=actor.role,
            actor_is_user=actor.is_user,
            source_address=actor.source,
            study_uid=message.study_instance_uid,
            facility=self.facility_name(message.facility_id) or "",
            detail=f"outbox message {message.id} ({message.message_id}) sent again",
        )
        if self.wake is not None:
            self.wake.set()
        return back

    # -- the rules ----------------------------------------------------------------------
    def _facility(self, scope: Scope, facility_id: int) -> str:
        name = self.facility_name(facility_id)
        if name is None or not _sees(scope, facility_id):
            raise NotFound(f"no facility {facility_id}")
        return name

    def _message(self, scope: Scope, outbox_id: int) -> OutboxMessage:
        message = self.outbox.get(outbox_id)
        if message is None or not _sees(scope, message.facility_id):
            raise NotFound(f"no outbox message {outbox_id}")
        return message

    def _change(self, actor: Actor, facility: str, detail: str) -> None:
        self.audit.record(
            EventID.SECURITY_ALERT,
            actor.id,
            actor_role=actor.role,
            actor_is_user=actor.is_user,
            source_address=actor.source,
            facility=facility,
            detail=detail,
        )


def _sees(scope: Scope, facility_id: int) -> bool:
    return scope is None or facility_id in scope
