"""What the reading worklist routes: studies waiting for a read, the readers, their shifts.

Pure values, no I/O. Times are aware datetimes; shifts are either fixed UTC
intervals (a locum's Tuesday night) or weekly rules in the reader's own time zone
(follow-the-sun rosters). Shift boundaries fall on whole minutes, so whether a
reader is on shift never changes inside a minute: the engine caches it per minute.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo


class Priority(enum.StrEnum):
    """Turnaround tiers, most urgent first (the order of :attr:`rank`)."""

    STROKE = "stroke"
    TRAUMA = "trauma"
    STAT = "stat"
    URGENT = "urgent"
    ROUTINE = "routine"

    @property
    def rank(self) -> int:
        """0 for the most urgent tier."""
        return _RANK[self]


_RANK = {p: i for i, p in enumerate(Priority)}


class ReadKind(enum.StrEnum):
    PRELIMINARY = "preliminary"  # an overnight read, finalised later
    FINAL = "final"


def _check_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got {value!r}")


def _check_whole_minute(name: str, value: datetime | time) -> None:
    if value.second or value.microsecond:
        raise ValueError(f"{name} must fall on a whole minute, got {value.isoformat()}")


def minute_of(now: datetime) -> datetime:
    """``now`` truncated to its minute: the key of everything cached per minute."""
    return now.replace(second=0, microsecond=0)


@dataclass(frozen=True)
class Shift:
    """On duty from ``start`` (included) to ``end`` (excluded), aware datetimes."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        _check_aware("shift start", self.start)
        _check_aware("shift end", self.end)
        _check_whole_minute("shift start", self.start)
        _check_whole_minute("shift end", self.end)
        if self.end <= self.start:
            raise ValueError(f"shift ends ({self.end}) before it starts ({self.start})")

    def covers(self, now: datetime) -> bool:
        return self.start <= now < self.end


@dataclass(frozen=True)
class WeeklyShift:
    """On duty every ``days`` (0 = Monday) from ``start`` to ``end`` local time in ``tz``.

    A shift that ends at or before its start crosses midnight and belongs to the day
    it starts on (Friday 22:00-07:00 covers Saturday 03:00). DST is the zone's: a
    shift of 22:00-07:00 lasts nine wall-clock hours whatever the offset does.
    """

    days: frozenset[int]
    start: time
    end: time
    tz: str = "UTC"

    def __post_init__(self) -> None:
        if not self.days or not self.days <= set(range(7)):
            raise ValueError(f"shift days must be 0 (Monday) to 6, got {sorted(self.days)}")
        _check_whole_minute("shift start", self.start)
        _check_whole_minute("shift end", self.end)
        ZoneInfo(self.tz)  # an unknown zone fails here, not at the first routing decision

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def overnight(self) -> bool:
        return self.end <= self.start

    def covers(self, now: datetime) -> bool:
        local = now.astimezone(self.zone)
        clock = local.time().replace(tzinfo=None)
        day = local.weekday()
        if not self.overnight:
            return day in self.days and self.start <= clock < self.end
        if clock >= self.start:
            return day in self.days
        return clock < self.end and (day - 1) % 7 in self.days


@dataclass(frozen=True)
class Reader:
    """A radiologist as the router sees them."""

    user_id: int
    name: str = ""
    #: Jurisdictions of their licences, as :attr:`Facility.jurisdiction` ("US-CA", "GB").
    licences: frozenset[str] = frozenset()
    #: Facilities where they hold privileges (credentialing).
    facility_ids: frozenset[int] = frozenset()
    #: Subspecialties ("neuro", "msk", "body", "breast", "peds"...); general studies need none.
    subspecialties: frozenset[str] = frozenset()
    #: Modalities they read, as DICOM Modality values ("CT", "MR", "CR"...).
    modalities: frozenset[str] = frozenset()
    shifts: tuple[Shift | WeeklyShift, ...] = ()
    signed_in: bool = False
    #: Reading speed, for how long their queue takes.
    rvu_per_hour: float = 10.0
    #: Queue-depth cap in RVU; ``None``: the rules' default.
    queue_cap_rvu: float | None = None
    read_kinds: frozenset[ReadKind] = frozenset(ReadKind)

    def __post_init__(self) -> None:
        if self.rvu_per_hour <= 0:
            raise ValueError(f"reader {self.user_id}: rvu_per_hour must be positive")

    def on_shift(self, now: datetime) -> bool:
        return any(shift.covers(now) for shift in self.shifts)

    @property
    def label(self) -> str:
        return f"{self.name} (reader {self.user_id})" if self.name else f"reader {self.user_id}"


@dataclass(frozen=True)
class ReadingStudy:
    """A study that is ready to read, as the worklist holds it.

    ``patient_key`` is facility-scoped (build it with :func:`patient_key`): the same
    Patient ID at two facilities is two patients. ``assigned_to`` is the reader who
    holds it now; ``prior_readers`` read this patient's earlier studies.
    """

    uid: str
    facility_id: int
    jurisdiction: str
    modality: str
    priority: Priority
    ready_at: datetime
    deadline: datetime
    rvu: float = 1.0
    body_part: str = ""
    subspecialty: str = ""  # "" = general radiology, any reader of the modality
    patient_key: str = ""
    read_kind: ReadKind = ReadKind.FINAL
    assigned_to: int | None = None
    prior_readers: frozenset[int] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        _check_aware("ready_at", self.ready_at)
        _check_aware("deadline", self.deadline)
        if self.deadline <= self.ready_at:
            raise ValueError(f"study {self.uid}: deadline before it is ready")
        if self.rvu < 0:
            raise ValueError(f"study {self.uid}: negative RVU")

    @property
    def turnaround(self) -> timedelta:
        return self.deadline - self.ready_at

    def elapsed_fraction(self, now: datetime) -> float:
        """How much of its turnaround has gone: 0 when ready, 1 at the deadline."""
        return (now - self.ready_at) / self.turnaround

    @property
    def describe(self) -> str:
        what = " ".join(p for p in (self.modality, self.body_part) if p)
        return (
            f"{self.uid} ({self.priority} {self.read_kind} read, {what}, "
            f"facility {self.facility_id}, {self.jurisdiction})"
        )


def patient_key(facility_id: int, patient_id: str) -> str:
    """The facility-scoped key of a patient."""
    return f"{facility_id}/{patient_id}"


@dataclass(frozen=True)
class Contract:
    """A facility's turnaround targets in minutes per tier; tiers it leaves out take defaults."""

    facility_id: int
    minutes: dict[Priority, int]

    def target(self, priority: Priority, defaults: dict[Priority, int]) -> int:
        return self.minutes.get(priority, defaults[priority])
