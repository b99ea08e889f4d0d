"""Reader profiles: the routing facts about a radiologist that accounts do not hold.

An account says who a radiologist is; licences and privileges say where they may
read. A profile adds what the router needs besides: subspecialties, modalities,
kinds of read, reading speed, queue cap, their time zone, and their shifts
(weekly rules in that zone, or one-off UTC intervals). Pure values and parsing,
no I/O; :func:`reader_of` puts the pieces together as the router's
:class:`~telerad.workflow.model.Reader`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from telerad.workflow.model import Reader, ReadKind, Shift, WeeklyShift

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


class ProfileError(ValueError):
    """A profile or shift that cannot be used; the message is meant for people."""


@dataclass(frozen=True)
class ShiftRule:
    """One shift of a reader: weekly (``days``, ``start``-``end`` local) or once (UTC).

    ``id`` is the stored row's (0 before it is stored).
    """

    days: frozenset[int] = frozenset()
    start: time | None = None
    end: time | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    id: int = 0

    @property
    def weekly(self) -> bool:
        return self.starts_at is None

    def to_shift(self, tz: str) -> Shift | WeeklyShift:
        if self.starts_at is not None and self.ends_at is not None:
            return Shift(self.starts_at, self.ends_at)
        assert self.start is not None and self.end is not None
        return WeeklyShift(self.days, self.start, self.end, tz)

    def describe(self, tz: str) -> str:
        if self.starts_at is not None and self.ends_at is not None:
            fmt = "%Y-%m-%d %H:%M"
            return f"once {self.starts_at:{fmt}} to {self.ends_at:{fmt}} UTC"
        assert self.start is not None and self.end is not None
        overnight = " (overnight)" if self.end <= self.start else ""
        return f"{format_days(self.days)} {self.start:%H:%M}-{self.end:%H:%M} {tz}{overnight}"


@dataclass(frozen=True)
class ReaderProfile:
    user_id: int
    subspecialties: frozenset[str] = frozenset()
    modalities: frozenset[str] = frozenset()
    read_kinds: frozenset[ReadKind] = frozenset(ReadKind)
    rvu_per_hour: float = 10.0
    queue_cap_rvu: float | None = None  # None: the rules' default
    tz: str = "UTC"
    shifts: tuple[ShiftRule, ...] = field(default=())

    def __post_init__(self) -> None:
        check_zone(self.tz)
        if self.rvu_per_hour <= 0:
            raise ProfileError("the reading speed (RVU per hour) must be positive")
        if self.queue_cap_rvu is not None and self.queue_cap_rvu <= 0:
            raise ProfileError("the queue cap (RVU) must be positive")
        if not self.read_kinds:
            raise ProfileError("a reader does at least one kind of read (preliminary, final)")


def check_zone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ProfileError(
            f"'{tz}' is not an IANA time zone (e.g. Europe/London, America/New_York)"
        ) from None
    return tz


def modality(text: str) -> str:
    value = text.strip().upper()
    if not re.fullmatch(r"[A-Z0-9]{1,16}", value):
        raise ProfileError(f"'{text}' is not a DICOM modality (CT, MR, CR, US...)")
    return value


def subspecialty(text: str) -> str:
    value = text.strip().lower()
    if not _WORD.match(value):
        raise ProfileError(f"'{text}' is not a subspecialty name (neuro, msk, body...)")
    return value


def read_kind(text: str) -> ReadKind:
    value = text.strip().lower()
    aliases = {"prelim": ReadKind.PRELIMINARY}
    try:
        return aliases.get(value) or ReadKind(value)
    except ValueError:
        raise ProfileError(f"'{text}' is not a kind of read (preliminary, final)") from None


def parse_days(text: str) -> frozenset[int]:
    """``mon-fri``, ``sat,sun``, ``mon,wed-fri``, ``daily`` → weekday numbers (0 = Monday)."""
    value = text.strip().lower()
    if value in ("daily", "all", "every"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in value.replace(" ", "").split(","):
        first, dash, last = part.partition("-")
        if first not in DAY_NAMES or (dash and last not in DAY_NAMES):
            raise ProfileError(f"'{text}' is not a list of days (mon-fri, sat,sun, daily)")
        a = DAY_NAMES.index(first)
        b = DAY_NAMES.index(last) if dash else a
        span = (b - a) % 7  # fri-mon wraps over the weekend
        days.update((a + i) % 7 for i in range(span + 1))
    return frozenset(days)


def format_days(days: frozenset[int]) -> str:
    if days == frozenset(range(7)):
        return "daily"
    ordered = sorted(days)
    runs: list[tuple[int, int]] = []
    for day in ordered:
        if runs and day == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return ",".join(DAY_NAMES[a] if a == b else f"{DAY_NAMES[a]}-{DAY_NAMES[b]}" for a, b in runs)


def parse_clock(text: str) -> time:
    """``08:00`` → 08:00; ``24:00`` means midnight at the end of the day."""
    value = text.strip()
    if value == "24:00":
        return time(0, 0)
    found = _TIME.match(value)
    if not found:
        raise ProfileError(f"'{text}' is not a time of day (HH:MM, e.g. 08:00)")
    return time(int(found.group(1)), int(found.group(2)))


def weekly_rule(days: str, start: str, end: str) -> ShiftRule:
    begin, finish = parse_clock(start), parse_clock(end)
    return ShiftRule(days=parse_days(days), start=begin, end=finish)


def parse_instant(text: str) -> datetime:
    """An ISO 8601 time; without an offset it is UTC. Whole minutes only."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ProfileError(f"'{text}' is not a date and time (YYYY-MM-DDTHH:MM)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if value.second or value.microsecond:
        raise ProfileError(f"'{text}': shifts start and end on whole minutes")
    return value.astimezone(UTC)


def once_rule(starts: str, ends: str) -> ShiftRule:
    begin, finish = parse_instant(starts), parse_instant(ends)
    if finish <= begin:
        raise ProfileError("a one-off shift must end after it starts")
    return ShiftRule(starts_at=begin, ends_at=finish)


def reader_of(
    user_id: int,
    name: str,
    licences: frozenset[str],
    facility_ids: frozenset[int],
    profile: ReaderProfile | None,
    signed_in: bool,
) -> Reader:
    """The router's view of a radiologist; without a profile they read nothing."""
    if profile is None:
        return Reader(user_id, name, licences, facility_ids, signed_in=signed_in)
    return Reader(
        user_id,
        name,
        licences=licences,
        facility_ids=facility_ids,
        subspecialties=profile.subspecialties,
        modalities=profile.modalities,
        shifts=tuple(rule.to_shift(profile.tz) for rule in profile.shifts),
        signed_in=signed_in,
        rvu_per_hour=profile.rvu_per_hour,
        queue_cap_rvu=profile.queue_cap_rvu,
        read_kinds=profile.read_kinds,
    )
