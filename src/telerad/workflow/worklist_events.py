"""What the reading worklist records: one event per thing that happened to a study.

The aggregate (:mod:`telerad.workflow.worklist`) appends them to
:attr:`Worklist.events`; the service stores them as the study's history and
turns some into alerts for the supervisor (no reader, reader away, breach risk,
breached).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from telerad.workflow.rules import EscalationAction


@dataclass(frozen=True)
class Assigned:
    uid: str
    reader_id: int
    at: datetime
    why: str  # the decision's explanation
    summary: str = ""  # the same in one short line


@dataclass(frozen=True)
class Claimed:
    uid: str
    reader_id: int
    at: datetime
    pulled: bool = False  # taken from the pull pool rather than pushed


@dataclass(frozen=True)
class Reassigned:
    uid: str
    from_reader: int
    to_reader: int | None  # None: back on the worklist, nobody eligible yet
    reason: str
    at: datetime


@dataclass(frozen=True)
class Completed:
    uid: str
    reader_id: int
    at: datetime


@dataclass(frozen=True)
class Escalated:
    uid: str
    action: EscalationAction
    at: datetime
    reader_id: int | None


@dataclass(frozen=True)
class Breached:
    uid: str
    at: datetime
    reader_id: int | None


@dataclass(frozen=True)
class NoReader:
    """Nobody may read the study: nobody on the roster is qualified for it at all
    (``anyone_qualified`` False), or — for a critical tier — nobody qualified is
    signed in and on shift now."""

    uid: str
    at: datetime
    reason: str
    anyone_qualified: bool


@dataclass(frozen=True)
class Unattended:
    """The reader who holds the study is away (their session lapsed) and nobody else
    may read it now: it stays with them."""

    uid: str
    reader_id: int
    at: datetime
    reason: str


Event = Assigned | Claimed | Reassigned | Completed | Escalated | Breached | NoReader | Unattended
