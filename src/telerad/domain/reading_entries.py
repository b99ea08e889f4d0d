"""What the reading worklist keeps of each read: entries, their history, finished reads.

One entry per read of a study: a study withdrawn because more images came keeps
its entry (its deadline and history) when it is enqueued again; one enqueued again
after it was read gets a new one. Its events are the assignment history with the
explanations; its alerts are what the supervisor must see (:class:`AlertKind`).
These are the values the reading services and their stores exchange
(``services.reading.ReadingStore``; the SQL store is ``storage.db.reading_repository``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from telerad.domain.readers import ReaderProfile
from telerad.workflow.model import Priority, ReadingStudy

__all__ = [
    "AlertChange",
    "AlertKind",
    "AlertRow",
    "EntryChange",
    "EntryState",
    "EntryEvent",
    "FinishedRead",
    "History",
    "ItemState",
    "OpenEntry",
    "Reopened",
    "RosterRow",
    "SlaStatus",
]


@dataclass(frozen=True)
class RosterRow:
    """A radiologist account with what routing needs to know of it."""

    user_id: int
    username: str
    display_name: str
    licences: frozenset[str]
    facility_ids: frozenset[int]
    profile: ReaderProfile | None


@dataclass(frozen=True)
class OpenEntry:
    id: int
    study: ReadingStudy
    assigned_to: int | None
    claimed_at: datetime | None
    #: Escalation steps already recorded (kind:detail), so a restart does not repeat them.
    recorded: frozenset[str] = frozenset()
    assigned_at: datetime | None = None
    #: The last assignment's explanation.
    why: str = ""


@dataclass(frozen=True)
class EntryEvent:
    kind: str
    at: datetime
    reader_id: int | None
    to_reader: int | None
    detail: str


@dataclass(frozen=True)
class History:
    entry_id: int
    facility_id: int
    state: EntryState
    events: list[EntryEvent]


@dataclass(frozen=True)
class FinishedRead:
    """A completed read, for turnaround and SLA statistics."""

    facility_id: int
    priority: Priority
    ready_at: datetime
    deadline: datetime
    completed_at: datetime
    first_assigned_at: datetime | None


class EntryState(enum.StrEnum):
    """Where a read stands in the store."""

    OPEN = "open"  # on the worklist
    COMPLETED = "completed"  # read
    WITHDRAWN = "withdrawn"  # more images came: off the worklist until ready again


class ItemState(enum.StrEnum):
    """Where an open study stands on the worklist, as people see it."""

    ASSIGNED = "assigned"  # pushed to a reader, not opened yet
    OPENED = "opened"  # its reader opened (claimed) it
    POOL = "pool"  # in the pull pool: an eligible reader may claim it
    WAITING = "waiting"  # nobody may take it now


class SlaStatus(enum.StrEnum):
    """How an open study stands against its deadline."""

    OK = "ok"
    AT_RISK = "at-risk"  # past the share of its turnaround where the supervisor is alerted
    BREACHED = "breached"  # past its deadline


class AlertKind(enum.StrEnum):
    """What the supervisor is alerted to, most serious first."""

    BREACHED = "breached"  # past its deadline, unread
    NO_READER = "no-reader"  # nobody on the roster may read it (or, critical, nobody now)
    READER_AWAY = "reader-away"  # its reader's session lapsed and nobody else may take it
    BREACH_RISK = "breach-risk"  # the ladder's alert-supervisor step: the deadline is near
    ESCALATED = "escalated"  # the ladder widened the pool: still nobody holds it

    @property
    def rank(self) -> int:
        return _ALERT_RANK[self]


_ALERT_RANK = {kind: i for i, kind in enumerate(AlertKind)}
#: Alerts whose cause goes once someone holds the study.
CLEARED_BY_ASSIGNMENT = frozenset({AlertKind.NO_READER, AlertKind.READER_AWAY, AlertKind.ESCALATED})


@dataclass(frozen=True)
class AlertChange:
    """Raise an alert of ``kind`` (one live alert per kind and entry), or clear the live
    alerts of ``kinds`` (None: all) because their cause went."""

    at: datetime
    raise_kind: AlertKind | None = None
    detail: str = ""
    clear: frozenset[AlertKind] | None = frozenset()


@dataclass(frozen=True)
class AlertRow:
    """A live alert as the board shows it."""

    id: int
    entry_id: int
    study_uid: str
    facility_id: int
    priority: Priority
    kind: AlertKind
    raised_at: datetime
    detail: str
    acknowledged_at: datetime | None = None
    acknowledged_by: int | None = None


@dataclass(frozen=True)
class Reopened:
    """A withdrawn entry taken up again: the clock runs on from its first readiness."""

    id: int
    ready_at: datetime
    deadline: datetime
    priority: Priority
    #: Who held it when it was withdrawn (they get continuity on the way back).
    last_holder: int | None
    #: Escalation steps already recorded (kind:detail).
    recorded: frozenset[str] = frozenset()


@dataclass
class EntryChange:
    """What one command changed of an entry: column values, history rows and alerts."""

    entry_id: int
    values: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[AlertChange] = field(default_factory=list)
