"""The audit trail: records, their canonical form, the hash chain and its verification.

Pure: no I/O. Event identifiers are the DICOM audit event IDs (PS3.16 CID 400),
outcomes the DICOM / RFC 3881 EventOutcomeIndicator values. Each record's hash is
SHA-256 over the previous record's hash and the record's canonical JSON, so a
changed field, a missing record or two swapped records break the chain at the
first record concerned.

Patient IDs and Study Instance UIDs are PHI: they belong in the audit store and
its exports, never in logs; ``AuditRecord.__repr__`` leaves them out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum, IntEnum

GENESIS = "0" * 64  # the "previous hash" of record 1
DCM = "DCM"  # coding scheme designator of the DICOM Controlled Terminology


class EventID(Enum):
    """DICOM audit event IDs (PS3.16 CID 400): (code value, code meaning)."""

    APPLICATION_ACTIVITY = ("110100", "Application Activity")
    AUDIT_LOG_USED = ("110101", "Audit Log Used")
    BEGIN_TRANSFERRING = ("110102", "Begin Transferring DICOM Instances")
    INSTANCES_ACCESSED = ("110103", "DICOM Instances Accessed")
    INSTANCES_TRANSFERRED = ("110104", "DICOM Instances Transferred")
    STUDY_DELETED = ("110105", "DICOM Study Deleted")
    EXPORT = ("110106", "Export")
    IMPORT = ("110107", "Import")
    NETWORK_ENTRY = ("110108", "Network Entry")
    ORDER_RECORD = ("110109", "Order Record")
    PATIENT_RECORD = ("110110", "Patient Record")
    PROCEDURE_RECORD = ("110111", "Procedure Record")
    QUERY = ("110112", "Query")
    SECURITY_ALERT = ("110113", "Security Alert")
    USER_AUTHENTICATION = ("110114", "User Authentication")

    @property
    def code(self) -> str:
        return self.value[0]

    @property
    def meaning(self) -> str:
        return self.value[1]

    @classmethod
    def from_code(cls, code: str) -> EventID:
        for member in cls:
            if member.code == code:
                return member
        raise ValueError(f"not a DICOM audit event ID: {code!r}")


class Action(Enum):
    """EventActionCode: create, read, update, delete, execute."""

    CREATE = "C"
    READ = "R"
    UPDATE = "U"
    DELETE = "D"
    EXECUTE = "E"


class Outcome(IntEnum):
    """EventOutcomeIndicator."""

    SUCCESS = 0
    MINOR_FAILURE = 4
    SERIOUS_FAILURE = 8
    MAJOR_FAILURE = 12


# The action each event implies when the caller does not say (PS3.15 A.5.3).
DEFAULT_ACTION: dict[EventID, Action] = {
    EventID.APPLICATION_ACTIVITY: Action.EXECUTE,
    EventID.AUDIT_LOG_USED: Action.READ,
    EventID.BEGIN_TRANSFERRING: Action.EXECUTE,
    EventID.INSTANCES_ACCESSED: Action.READ,
    EventID.INSTANCES_TRANSFERRED: Action.READ,
    EventID.STUDY_DELETED: Action.DELETE,
    EventID.EXPORT: Action.READ,
    EventID.IMPORT: Action.CREATE,
    EventID.NETWORK_ENTRY: Action.EXECUTE,
    EventID.ORDER_RECORD: Action.READ,
    EventID.PATIENT_RECORD: Action.READ,
    EventID.PROCEDURE_RECORD: Action.READ,
    EventID.QUERY: Action.EXECUTE,
    EventID.SECURITY_ALERT: Action.EXECUTE,
    EventID.USER_AUTHENTICATION: Action.EXECUTE,
}

# Active participant roles with a DICOM role ID code (PS3.16 CID 402).
ROLE_CODES: dict[str, tuple[str, str]] = {
    "application": ("110150", "Application"),
    "application-launcher": ("110151", "Application Launcher"),
    "destination": ("110152", "Destination Role ID"),
    "source": ("110153", "Source Role ID"),
    "destination-media": ("110154", "Destination Media"),
    "source-media": ("110155", "Source Media"),
}


def network_access_point_type(address: str) -> str:
    """NetworkAccessPointTypeCode: "2" for an IP address, "1" for a machine name."""
    stripped = address.replace(".", "").replace(":", "")
    return "2" if stripped and all(c in "0123456789abcdefABCDEF" for c in stripped) else "1"


def format_time(moment: datetime) -> str:
    """UTC, microseconds, 'Z': one spelling, so the hash and ordering by text agree."""
    if moment.tzinfo is None:
        raise ValueError("audit times carry a time zone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class AuditEvent:
    """What happened, before it has a place in the chain."""

    event: EventID
    actor_id: str  # user name or AE title
    actor_role: str = ""  # a ROLE_CODES key, or a user role such as "radiologist"
    outcome: Outcome = Outcome.SUCCESS
    action: Action | None = None  # None: DEFAULT_ACTION[event]
    time: datetime | None = None  # None: now, taken by the service's clock
    source_address: str = ""
    patient_id: str = field(default="", repr=False)
    study_uid: str = field(default="", repr=False)
    facility: str = ""
    detail: str = field(default="", repr=False)
    actor_is_user: bool = False  # a person (True) or an application / AE (False)


@dataclass(frozen=True)
class AuditRecord:
    """A sealed entry of the trail. ``time`` is the canonical UTC text."""

    sequence: int
    time: str
    event_id: str
    action: str
    outcome: int
    actor_id: str
    actor_role: str
    actor_is_user: bool
    source_address: str
    patient_id: str = field(repr=False)
    study_uid: str = field(repr=False)
    facility: str
    detail: str = field(repr=False)
    hash: str = ""

    @property
    def event(self) -> EventID:
        return EventID.from_code(self.event_id)

    def canonical(self) -> bytes:
        """Sorted keys, no spaces, UTF-8: every field but the hash."""
        body = {
            "sequence": self.sequence,
            "time": self.time,
            "event_id": self.event_id,
            "action": self.action,
            "outcome": self.outcome,
            "actor_id": self.actor_id,
            "actor_role": self.actor_role,
            "actor_is_user": self.actor_is_user,
            "source_address": self.source_address,
            "patient_id": self.patient_id,
            "study_uid": self.study_uid,
            "facility": self.facility,
            "detail": self.detail,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(previous: str, canonical: bytes) -> str:
    return hashlib.sha256(previous.encode("ascii") + canonical).hexdigest()


def seal(event: AuditEvent, sequence: int, previous: str, now: datetime) -> AuditRecord:
    """The record that follows ``previous`` (a hash, or GENESIS) as number ``sequence``."""
    if sequence < 1:
        raise ValueError("sequence numbers start at 1")
    record = AuditRecord(
        sequence=sequence,
        time=format_time(event.time or now),
        event_id=event.event.code,
        action=(event.action or DEFAULT_ACTION[event.event]).value,
        outcome=int(Outcome(event.outcome)),
        actor_id=event.actor_id,
        actor_role=event.actor_role,
        actor_is_user=event.actor_is_user,
        source_address=event.source_address,
        patient_id=event.patient_id,
        study_uid=event.study_uid,
        facility=event.facility,
        detail=event.detail,
    )
    return replace(record, hash=chain_hash(previous, record.canonical()))


@dataclass(frozen=True)
class Verdict:
    """The outcome of a verification: intact, or the first bad record and why."""

    checked: int
    bad_sequence: int | None = None
    reason: str = ""
    last_hash: str = GENESIS

    @property
    def ok(self) -> bool:
        return self.bad_sequence is None


def verify(records: Iterable[AuditRecord], start: int = 1, previous: str = GENESIS) -> Verdict:
    """Walk records in storage order; name the first one that breaks the chain.

    ``start``/``previous`` let a caller verify from a trusted checkpoint.
    """
    expected = start
    checked = 0
    for record in records:
        if record.sequence != expected:
            if record.sequence > expected:
                missing = (
                    f"record {expected} is missing"
                    if record.sequence == expected + 1
                    else f"records {expected}..{record.sequence - 1} are missing"
                )
                why = f"sequence gap: {missing}"
            else:
                why = f"out of order: expected record {expected} here"
            return Verdict(checked, record.sequence, why, previous)
        digest = chain_hash(previous, record.canonical())
        if digest != record.hash:
            why = "hash does not match: the record was changed, or records were reordered"
            return Verdict(checked, record.sequence, why, previous)
        previous = digest
        expected += 1
        checked += 1
    return Verdict(checked, None, "", previous)
