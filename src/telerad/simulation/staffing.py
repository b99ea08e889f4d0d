"""How the generated network staffs what it sells (docs/routing.md, "Simulation").

A reading network does not take on work from a facility it cannot read, nor sell
stroke reads in minutes without someone to read them at 3 a.m. After a day's readers
are drawn, :func:`staff` makes the roster one a network would run:

* every kind of study the day brings (a :class:`Need`: facility, jurisdiction,
  modality, subspecialty, read kind) has at least one qualified reader on the roster;
* every kind of study of the tiers promised in minutes has, at the facility that
  sends it, a qualified reader on shift at every minute of the day.

It gives what costs a network least first (:class:`Grant`): credentials (a licence in a
jurisdiction the reader's region works for, privileges at a facility, preliminary
reads) before a modality, a modality before a subspecialty; and among readers needing
the same kind of grant, the one on shift for most of the time nobody qualified is.
Where nobody who may hold the licence is on shift at all, a reader of such a region
moves to the shift of their region that covers most of the gap, if that opens no gap
elsewhere. Pure and deterministic: no randomness, ties go to the lowest user id.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import NamedTuple

from telerad.workflow.coverage import duty
from telerad.workflow.model import Reader, ReadKind, WeeklyShift

#: Minutes from the start of the day: [begin, end).
Minutes = tuple[int, int]
#: A region's shift: (local start hour, hours).
ShiftOption = tuple[int, int]
DAY_MINUTES = 24 * 60


class Need(NamedTuple):
    """What reading a kind of study takes (the engine's qualification key)."""

    facility_id: int
    jurisdiction: str
    modality: str
    subspecialty: str
    read_kind: ReadKind

    def lacking(self, reader: Reader) -> list[tuple[str, str | int]]:
        """What ``reader`` would have to be given: (attribute of :class:`Reader`, value)."""
        missing: list[tuple[str, str | int]] = []
        if self.jurisdiction not in reader.licences:
            missing.append(("licences", self.jurisdiction))
        if self.facility_id not in reader.facility_ids:
            missing.append(("facility_ids", self.facility_id))
        if self.modality not in reader.modalities:
            missing.append(("modalities", self.modality))
        if self.subspecialty and self.subspecialty not in reader.subspecialties:
            missing.append(("subspecialties", self.subspecialty))
        if self.read_kind not in reader.read_kinds:
            missing.append(("read_kinds", self.read_kind))
        return missing

    def met_by(self, reader: Reader) -> bool:
        return not self.lacking(reader)


class Grant(enum.IntEnum):
    """What a reader is given, cheapest first: the order candidates are tried in."""

    CREDENTIALS = 0  # licences, privileges, read kinds: paperwork
    MODALITY = 1  # a competence: reading MR, NM...
    SUBSPECIALTY = 2  # training


def grant_kind(missing: Sequence[tuple[str, str | int]]) -> Grant:
    attributes = {attribute for attribute, _ in missing}
    if "subspecialties" in attributes:
        return Grant.SUBSPECIALTY
    return Grant.MODALITY if "modalities" in attributes else Grant.CREDENTIALS


@dataclass
class Staffing:
    """What :func:`staff` changed, and what it could not cover."""

    #: Values given, by attribute of :class:`Reader` (``licences``, ``facility_ids``...).
    granted: Counter[str] = field(default_factory=Counter)
    #: Readers moved to another shift of their region.
    moved: list[int] = field(default_factory=list)
    #: Needs nobody who may hold the licence can read (no reader of such a region).
    unstaffed: list[Need] = field(default_factory=list)
    #: Around-the-clock needs still without a qualified reader on shift, and when.
    gaps: dict[Need, list[Minutes]] = field(default_factory=dict)


class _Roster:
    """The readers being staffed and their duty in minutes of the day."""

    def __init__(
        self,
        readers: Sequence[Reader],
        start: datetime,
        licensable: Callable[[Reader], frozenset[str]],
        staffing: Staffing,
    ) -> None:
        self.start, self.licensable, self.staffing = start, licensable, staffing
        self.readers = {r.user_id: r for r in readers}
        self.order = [r.user_id for r in readers]
        self.duty = {r.user_id: self.duty_of(r) for r in readers}

    def duty_of(self, reader: Reader) -> list[Minutes]:
        end = self.start + timedelta(minutes=DAY_MINUTES)
        return [(self._minute(a), self._minute(b)) for a, b in duty(reader, self.start, end)]

    def _minute(self, at: datetime) -> int:
        return int((at - self.start) / timedelta(minutes=1))

    def may_hold(self, reader: Reader, need: Need) -> bool:
        return need.jurisdiction in reader.licences or need.jurisdiction in self.licensable(reader)

    def gaps(
        self, need: Need, duty: Mapping[int, list[Minutes]] | None = None, also: int = 0
    ) -> list[Minutes]:
        """When nobody qualified for ``need`` is on shift: with ``duty``, had they those
        shifts; with ``also``, had that reader been given the need."""
        duty = self.duty if duty is None else duty
        on = [uid for uid in self.order if uid == also or need.met_by(self.readers[uid])]
        return subtract([(0, DAY_MINUTES)], [s for uid in on for s in duty[uid]])

    def give(self, uid: int, need: Need) -> None:
        reader = self.readers[uid]
        changes: dict[str, frozenset[object]] = {}
        for attribute, value in need.lacking(reader):
            changes[attribute] = changes.get(attribute, getattr(reader, attribute)) | {value}
            self.staffing.granted[attribute] += 1
        self.readers[uid] = replace(reader, **changes)  # type: ignore[arg-type]

    def best_on_shift(self, need: Need, gaps: list[Minutes]) -> int | None:
        """The reader to give ``need`` to for ``gaps``: cheapest grant, most gap minutes."""
        best: tuple[Grant, int, int, int] | None = None
        for uid in self.order:
            reader = self.readers[uid]
            minutes = overlap(self.duty[uid], gaps) if self.may_hold(reader, need) else 0
            if minutes:
                missing = need.lacking(reader)
                key = (grant_kind(missing), -minutes, len(missing), uid)
                best = key if best is None or key < best else best
        return None if best is None else best[3]

    def best_anywhere(self, need: Need) -> int | None:
        """The reader to give ``need`` to when any hour will do: the cheapest grant."""
        keys = [
            (grant_kind(missing), len(missing), uid)
            for uid in self.order
            if self.may_hold(self.readers[uid], need)
            for missing in (need.lacking(self.readers[uid]),)
        ]
        return min(keys)[2] if keys else None

    def move(
        self,
        need: Need,
        shifts: Mapping[str, Sequence[ShiftOption]],
        kept: Sequence[Need],
    ) -> int | None:
        """Move a reader who may hold ``need``'s licence to the shift of their region
        that closes most of its gaps (were they given the need), preferring the region's
        most staffed shift, never opening a gap in ``kept`` (the needs covered already).
        Each reader moves at most once. The reader moved, or None."""
        before = total(self.gaps(need))
        best: tuple[int, int, int, WeeklyShift] | None = None
        for uid in self.order:
            reader = self.readers[uid]
            home = _home(reader)
            if home is None or uid in self.staffing.moved or not self.may_hold(reader, need):
                continue
            peers = sum(r.shifts == reader.shifts for r in self.readers.values())
            for begin, hours in shifts.get(home.tz, ()):
                option = replace(home, start=time(begin), end=time((begin + hours) % 24))
                trial = {**self.duty, uid: self.duty_of(replace(reader, shifts=(option,)))}
                closed = before - total(self.gaps(need, trial, also=uid))
                key = (-closed, -peers, uid, option)
                if closed > 0 and (best is None or key[:3] < best[:3]):
                    opened = any(n.met_by(reader) and self.gaps(n, trial) for n in kept)
                    best = best if opened else key
        if best is None:
            return None
        uid, option = best[2], best[3]
        self.readers[uid] = replace(self.readers[uid], shifts=(option,))
        self.duty[uid] = self.duty_of(self.readers[uid])
        self.staffing.moved.append(uid)
        return uid


def staff(
    readers: Sequence[Reader],
    needs: Iterable[Need],
    around_the_clock: Iterable[Need],
    *,
    start: datetime,
    licensable: Callable[[Reader], frozenset[str]],
    shifts: Mapping[str, Sequence[ShiftOption]] | None = None,
) -> tuple[list[Reader], Staffing]:
    """``readers`` staffed for ``needs`` (someone qualified on the roster) and for
    ``around_the_clock`` (someone qualified on shift at every minute of the day from
    ``start``; shifts are daily). ``licensable(reader)``: the jurisdictions the reader
    may be licensed in (their region's); ``shifts``: each home zone's shifts, to move a
    reader to when nobody who may hold a need's licence is on shift (None: never)."""
    staffing = Staffing()
    roster = _Roster(readers, start, licensable, staffing)
    critical = sorted(set(around_the_clock))
    for n, need in enumerate(critical):
        gaps = roster.gaps(need)
        while gaps:
            uid = roster.best_on_shift(need, gaps)
            if uid is None and shifts is not None:
                uid = roster.move(need, shifts, critical[:n])
            if uid is None:
                break
            roster.give(uid, need)
            gaps = roster.gaps(need)
    for need in sorted(set(needs) | set(critical)):
        if not any(need.met_by(roster.readers[uid]) for uid in roster.order):
            uid = roster.best_anywhere(need)
            if uid is None:
                staffing.unstaffed.append(need)
            else:
                roster.give(uid, need)
    for need in critical:  # the account after every grant and move
        if gaps := roster.gaps(need):
            staffing.gaps[need] = gaps
    return [roster.readers[uid] for uid in roster.order], staffing


def _home(reader: Reader) -> WeeklyShift | None:
    """The reader's weekly shift, which names their home zone (a generated reader has one)."""
    first = reader.shifts[0] if len(reader.shifts) == 1 else None
    return first if isinstance(first, WeeklyShift) else None


# -- minutes of the day ---------------------------------------------------------------


def subtract(spans: Iterable[Minutes], cut: Iterable[Minutes]) -> list[Minutes]:
    """``spans`` less every span of ``cut``."""
    out = sorted(spans)
    for a, b in sorted(cut):
        kept: list[Minutes] = []
        for x, y in out:
            if b <= x or y <= a:
                kept.append((x, y))
                continue
            if x < a:
                kept.append((x, a))
            if b < y:
                kept.append((b, y))
        out = kept
    return out


def total(spans: Iterable[Minutes]) -> int:
    return sum(b - a for a, b in spans)


def overlap(spans: Iterable[Minutes], other: Sequence[Minutes]) -> int:
    """Minutes ``spans`` and ``other`` share."""
    return sum(max(0, min(b, y) - max(a, x)) for a, b in spans for x, y in other)
