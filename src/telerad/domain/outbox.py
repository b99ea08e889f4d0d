"""Results delivery as values: where a facility takes its results, what a delivery
attempt came to, and when to try again or give up (pure: no I/O).

A signature queues one message per channel the facility has an endpoint for (the
outbox); a worker sends each, in order per facility and channel, until the peer
accepts it. An attempt ends one of three ways (:class:`Outcome`): the peer
accepted it (HL7 ``AA``/``CA``), refused it (``AE``/``AR``/``CE``/``CR``), or it
failed on the way (no connection, no answer in time, an answer that is not one,
the connection closed mid-message). :class:`RetryPolicy` says when the next try
is and when the message becomes a dead letter for an administrator to look at.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime, timedelta


class OutboxError(ValueError):
    """An endpoint or a request about the outbox that cannot be taken; the text says why."""


class Channel(enum.StrEnum):
    """How results reach a facility (``results_endpoint.kind``, ``outbox.channel``)."""

    HL7 = "hl7"  # HL7 v2 ORU^R01 over MLLP
    FHIR = "fhir"  # FHIR DiagnosticReport over REST
    DICOM = "dicom"  # DICOM SR / encapsulated PDF by C-STORE
    #: The report's SR and PDF stored into the study in the platform's own archive (a
    #: local step every signature queues; its one endpoint is :data:`ARCHIVE_ADDRESS`).
    ARCHIVE = "archive"


class MessageState(enum.StrEnum):
    PENDING = "pending"  # to be sent (or being sent, under a claim)
    SENT = "sent"  # the peer accepted it
    DEAD = "dead"  # given up: an administrator retries it or leaves it


class Outcome(enum.StrEnum):
    """What one delivery attempt came to."""

    ACCEPTED = "accepted"  # the peer took it (HL7 AA, CA)
    REFUSED = "refused"  # the peer answered that it will not take it (AE, AR, CE, CR)
    FAILED = "failed"  # no connection, no answer, garbage, closed mid-message


@dataclass(frozen=True)
class Delivery:
    """The result of one attempt: the outcome, why (an ACK's text or the error), and
    the peer's answer as received (the ACK), when there was one."""

    outcome: Outcome
    detail: str = ""
    answer: str = ""

    @property
    def accepted(self) -> bool:
        return self.outcome is Outcome.ACCEPTED


#: The address of the local archive step (Channel.ARCHIVE): this platform's own archive.
ARCHIVE_ADDRESS = "archive"
_HOST_PORT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(?P<port>\d{1,5})")
_AE_TITLE = re.compile(r"[ -~]{1,16}")


def host_port(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for an IPv6 address) → (host, port)."""
    m = _HOST_PORT.fullmatch(address.strip())
    if m is None or not 0 < int(m["port"]) < 65536:
        raise OutboxError(f"{address!r} is not HOST:PORT")
    return m["host"].strip("[]"), int(m["port"])


@dataclass(frozen=True)
class Endpoint:
    """Where a facility takes one channel's results.

    ``address`` is ``HOST:PORT`` for HL7 (MLLP), a base URL for FHIR, and
    ``AE@HOST:PORT`` for DICOM; ``tls`` asks for TLS where the address does not say
    (MLLP, DICOM)."""

    facility_id: int
    kind: Channel
    address: str
    tls: bool = False

    def __post_init__(self) -> None:
        check_address(self.kind, self.address)

    def __str__(self) -> str:
        return f"{self.kind.value} {self.address}" + (" (TLS)" if self.tls else "")


def check_address(kind: Channel, address: str) -> str:
    """``address`` when it is one of ``kind``'s, else an OutboxError saying what is wanted."""
    if kind is Channel.HL7:
        host_port(address)
    elif kind is Channel.FHIR:
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", address):
            raise OutboxError(f"{address!r} is not an http(s):// base URL")
    elif kind is Channel.ARCHIVE:
        if address != ARCHIVE_ADDRESS:
            raise OutboxError(f"the archive channel has one address: {ARCHIVE_ADDRESS!r}")
    else:
        ae, at, rest = address.rpartition("@")
        if not at or not _AE_TITLE.fullmatch(ae) or ae != ae.strip() or "\\" in ae:
            raise OutboxError(f"{address!r} is not AE@HOST:PORT (an AE title of 1-16 characters)")
        host_port(rest)
    return address


@dataclass(frozen=True)
class RetryPolicy:
    """When to try a message again, and when to give up on it.

    The wait doubles from ``first`` up to ``longest``. A message becomes a dead
    letter when the peer has refused it ``refusals`` times (it answered: trying for
    ever will not change its mind), or when it is still not delivered ``give_up``
    after it was queued (or retried), whatever went wrong. An endpoint that is down
    does not spend a message's refusals: the message waits, in order, until the
    endpoint is back or ``give_up`` passes."""

    first: timedelta = timedelta(seconds=2)
    longest: timedelta = timedelta(minutes=5)
    refusals: int = 5
    give_up: timedelta = timedelta(hours=24)

    def wait(self, attempts: int) -> timedelta:
        """How long to wait after the ``attempts``-th failed attempt (1, 2, …)."""
        doublings = min(max(attempts - 1, 0), 30)
        wait: timedelta = self.first * (2**doublings)
        return min(wait, self.longest)

    def next_try(
        self, attempts: int, refused: int, queued_at: datetime, now: datetime
    ) -> datetime | None:
        """When to try again after ``attempts`` failed attempts, ``refused`` of which the
        peer refused; None when the message is a dead letter now."""
        if refused >= self.refusals or now - queued_at >= self.give_up:
            return None
        return now + self.wait(attempts)
