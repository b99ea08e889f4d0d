"""What the reading worklist keeps of each read: entries, their history, finished reads.

One entry per read of a study (a study enqueued again after it was withdrawn or
completed gets a new one); its events are the assignment history with the
explanations. These are the values the reading services and their stores exchange
(``services.reading.ReadingStore``; the SQL store is ``storage.db.reading_repository``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from telerad.domain.readers import ReaderProfile
from telerad.workflow.model import Priority, ReadingStudy

__all__ = ["EntryChange", "EntryEvent", "FinishedRead", "History", "OpenEntry", "RosterRow"]


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
    state: str  # open, completed, withdrawn
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


@dataclass
class EntryChange:
    """What one command changed of an entry: column values and history rows."""

    entry_id: int
    values: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
