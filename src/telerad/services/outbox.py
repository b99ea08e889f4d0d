"""The outbox: results queued by signatures, delivered by a worker, in order, until accepted.

A signature writes its messages into the ``outbox`` table in the transaction that
changes the report's status (``ReportStore.write``), so a result is queued if and
only if the signature happened. :class:`OutboxWorker` then delivers them:

* per facility and channel, only the oldest pending message may be sent, so a
  facility receives its results in the order they were queued (for one report:
  the order of its signatures). The next goes once that one is accepted or dead;
* a message being sent is claimed until a lease expires (``claimed_until``), and
  the claim's token must match when the attempt is recorded, so several workers
  (threads, ``telerad serve`` processes, ``telerad worker`` processes on one
  PostgreSQL, where the claim takes rows ``FOR UPDATE SKIP LOCKED``) never send one
  message at the same time and never a facility's second before its first;
* every attempt is kept (when, where, what came back); refusals and failures are
  retried with backoff (:class:`~telerad.domain.outbox.RetryPolicy`) and a message
  that cannot be delivered becomes a dead letter, listed for administrators, who
  may send it again.

Exactly once per message control ID, not exactly once on the wire: a worker that
dies after the peer accepted a message but before recording it (or whose lease
ran out while it waited for the answer) leaves the message pending, and it is sent
again with the same control ID (HL7 MSH-10), by which the receiver knows it for a
duplicate. Nothing is lost and no message ever goes out under two IDs.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from telerad.domain.audit import EventID
from telerad.domain.audit import Outcome as AuditOutcome
from telerad.domain.outbox import (
    Channel,
    Delivery,
    Endpoint,
    MessageState,
    Outcome,
    RetryPolicy,
)
from telerad.domain.reports import Difference, Report
from telerad.services.audit import AuditService
from telerad.services.reports import (
    Deliveries,
    Outgoing,
    ReportFacts,
    ReportFilter,
    ReportStore,
    ReportSummary,
)

log = logging.getLogger(__name__)

#: Who the audit trail names for deliveries: the platform itself.
WORKER_ACTOR = "telerad-outbox"


@dataclass(frozen=True)
class OutboxMessage:
    """One queued message and where its delivery stands."""

    id: int
    facility_id: int
    report_id: int
    report_version: int
    channel: Channel
    message_id: str  # the control ID on the wire (HL7 MSH-10)
    payload: str
    state: MessageState
    attempts: int
    refusals: int  # attempts the peer answered with a refusal
    next_at: datetime
    created_at: datetime  # when the signature queued it
    queued_at: datetime  # when it was queued, or retried by an administrator
    sent_at: datetime | None = None
    last_error: str = ""
    answer: str = ""  # the peer's last answer (the ACK), as received
    destination: str = ""  # where the last attempt went
    study_instance_uid: str = ""


@dataclass(frozen=True)
class Claim:
    """A message taken for one attempt, by one worker, until ``until``."""

    message: OutboxMessage
    token: str
    until: datetime


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt, kept for ever (the per-report trace)."""

    at: datetime
    destination: str
    outcome: Outcome
    detail: str = ""
    answer: str = ""


@dataclass(frozen=True)
class OutboxFilter:
    states: frozenset[MessageState] = frozenset()
    facility_ids: frozenset[int] | None = None  # None: every facility
    report_id: int | None = None
    channel: Channel | None = None
    limit: int = 100
    offset: int = 0


class OutboxStore(Protocol):
    def claim(self, now: datetime, lease: timedelta, limit: int) -> list[Claim]:
        """Up to ``limit`` messages due now, each the oldest pending one of its facility
        and channel and claimed by nobody (an expired claim is nobody's), oldest first,
        each claimed until ``now + lease`` under a new token."""
        ...

    def record(self, claim: Claim, attempt: Attempt, next_at: datetime | None) -> bool:
        """Keep ``attempt`` and move the message: accepted → sent; otherwise attempts+1
        (refusals+1 when refused), due again at ``next_at``, or dead when None. The
        claim ends. False (nothing written) when the claim is no longer held."""
        ...

    def get(self, outbox_id: int) -> OutboxMessage | None: ...

    def find(self, f: OutboxFilter) -> list[OutboxMessage]:
        """Messages matching ``f``, newest first."""
        ...

    def attempts(self, outbox_id: int) -> list[Attempt]:
        """The message's attempts, oldest first."""
        ...

    def retry(self, outbox_id: int, now: datetime) -> OutboxMessage | None:
        """A dead letter pending again (counts reset, queued now); None when it is not dead."""
        ...

    def counts(self, facility_ids: frozenset[int] | None = None) -> dict[MessageState, int]: ...


class EndpointStore(Protocol):
    def endpoint(self, facility_id: int, kind: Channel) -> Endpoint | None: ...

    def endpoints(self, facility_id: int | None = None) -> list[Endpoint]: ...

    def put(self, endpoint: Endpoint) -> Endpoint:
        """Set the facility's endpoint for its kind (replacing the one it had)."""
        ...

    def remove(self, facility_id: int, kind: Channel) -> bool: ...


class Sender(Protocol):
    """Delivers one message to an endpoint and says what came of it (never raises)."""

    def send(self, endpoint: Endpoint, message_id: str, payload: str) -> Delivery: ...


@dataclass
class OutboxWorker:
    """Claims due messages, sends each to its facility's endpoint, records the attempt.

    ``run`` is the loop's pass: it keeps claiming while there is something to send
    (a burst of signatures goes out at once), messages of different facilities in
    parallel on up to ``threads`` threads."""

    store: OutboxStore
    endpoints: EndpointStore
    senders: Mapping[Channel, Sender]
    audit: AuditService | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    #: How long a claim holds: longer than a send can take (connect + answer timeouts).
    lease: timedelta = timedelta(seconds=60)
    batch: int = 16
    threads: int = 4
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    #: Set to run the next pass at once (a signature queued something).
    wake: threading.Event = field(default_factory=threading.Event)
    _pool: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)

    def run(self, passes: int = 100) -> int:
        """Send what is due, pass after pass, until nothing is (at most ``passes``);
        how many attempts were made."""
        total = 0
        for _ in range(passes):
            done = self.run_once()
            total += done
            if done == 0:
                break
        return total

    def run_once(self) -> int:
        claims = self.store.claim(self.clock(), self.lease, self.batch)
        if len(claims) <= 1 or self.threads <= 1:
            for claim in claims:
                self._deliver(claim)
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="outbox-send")
            list(self._pool.map(self._deliver, claims))
        return len(claims)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _deliver(self, claim: Claim) -> None:
        message = claim.message
        endpoint = self.endpoints.endpoint(message.facility_id, message.channel)
        sender = self.senders.get(message.channel)
        if endpoint is None:
            delivery = Delivery(Outcome.FAILED, f"the facility has no {message.channel} endpoint")
        elif sender is None:
            delivery = Delivery(Outcome.FAILED, f"this platform does not send {message.channel}")
        else:
            try:
                delivery = sender.send(endpoint, message.message_id, message.payload)
            except Exception as exc:  # a sender must not raise; if it does, it failed
                delivery = Delivery(Outcome.FAILED, f"sender error: {type(exc).__name__}")
        now = self.clock()
        where = endpoint.address if endpoint is not None else ""
        attempt = Attempt(now, where, delivery.outcome, delivery.detail, delivery.answer)
        next_at = None
        if not delivery.accepted:
            refused = message.refusals + (delivery.outcome is Outcome.REFUSED)
            next_at = self.policy.next_try(message.attempts + 1, refused, message.queued_at, now)
        if not self.store.record(claim, attempt, next_at):
            log.warning("outbox: message %s was claimed again meanwhile", message.message_id)
            return
        self._log(message, attempt, next_at)

    def _log(self, message: OutboxMessage, attempt: Attempt, next_at: datetime | None) -> None:
        # Ids only: the payload and the answer may quote the patient.
        what = f"outbox {message.id} ({message.channel} {message.message_id})"
        if attempt.outcome is Outcome.ACCEPTED:
            log.info("%s accepted by facility %d", what, message.facility_id)
        elif next_at is not None:
            log.info(
                "%s %s by facility %d (attempt %d); next at %s",
                what,
                attempt.outcome.value,
                message.facility_id,
                message.attempts + 1,
                next_at.isoformat(timespec="seconds"),
            )
        else:
            log.warning("%s is a dead letter (facility %d)", what, message.facility_id)
        if self.audit is None or (attempt.outcome is not Outcome.ACCEPTED and next_at is not None):
            return
        outcome = (
            AuditOutcome.SUCCESS
            if attempt.outcome is Outcome.ACCEPTED
            else AuditOutcome.SERIOUS_FAILURE
        )
        verdict = "accepted" if outcome is AuditOutcome.SUCCESS else "not delivered (dead letter)"
        self.audit.record(
            EventID.EXPORT,
            WORKER_ACTOR,
            outcome=outcome,
            study_uid=message.study_instance_uid,
            detail=(
                f"report {message.report_id} version {message.report_version}: "
                f"{message.channel} message {message.message_id} to facility "
                f"{message.facility_id} at {attempt.destination or '-'}: {verdict}"
            ),
        )


def combined(*each: Deliveries) -> Deliveries:
    """One ``Deliveries`` for several channels: every channel's messages, in turn."""

    def deliveries(report: Report, facts: ReportFacts, now: datetime) -> Sequence[Outgoing]:
        return [o for d in each for o in d(report, facts, now)]

    return deliveries


def new_message_id(report_id: int, version: int) -> str:
    """A control ID no other message has: the report, its version, and a random part."""
    return f"{report_id}.{version}.{uuid.uuid4().hex[:16]}"


class Announcing:
    """A report store that wakes the outbox worker once a write queued messages, so
    they go out at once instead of at the worker's next pass."""

    def __init__(self, inner: ReportStore, wake: threading.Event) -> None:
        self.inner = inner
        self.wake = wake

    def write(self, report: Report, seen: int, outgoing: Sequence[Outgoing] = ()) -> Report:
        written = self.inner.write(report, seen, outgoing)
        if outgoing:
            self.wake.set()  # after the commit: the worker finds them
        return written

    def add(self, report: Report, patient_id: str) -> Report:
        return self.inner.add(report, patient_id)

    def get(self, report_id: int) -> Report | None:
        return self.inner.get(report_id)

    def for_study(self, study_uid: str, accession_number: str | None = None) -> list[Report]:
        return self.inner.for_study(study_uid, accession_number)

    def find(self, f: ReportFilter) -> list[ReportSummary]:
        return self.inner.find(f)

    def differences(self, since: datetime) -> dict[tuple[int, Difference], int]:
        return self.inner.differences(since)
