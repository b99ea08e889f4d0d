"""When readers are on duty, and what that means for when a study is really due.

Shifts are weekly rules in the reader's zone or fixed intervals; this module turns
them into UTC spans and answers the two questions the engine asks of them:

* when does this reader's current shift end (:meth:`Coverage.on_duty_until`): a
  reader who would not open a study before then is not the one to give it to;
* when is a study due (:meth:`Coverage.due`): its deadline, unless everyone
  qualified for it goes off duty before the deadline and nobody qualified comes
  back in time (earlier than :data:`LATE` before it). A routine MR that two
  neuroradiologists may read, both leaving at 22:00 with nobody qualified on shift
  again until after its deadline, is due at 22:00: after that it can only breach.

Spans come from the shifts alone (whether a reader is signed in is the engine's
question at the moment of a decision) and are cached per reader and per group of
readers qualified for the same studies, over a window of a few days that moves on
when a question falls outside it.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Hashable, Iterable
from datetime import UTC, datetime, timedelta

from telerad.workflow.model import Reader, ReadingStudy, Shift, WeeklyShift

Span = tuple[datetime, datetime]
#: How far ahead spans are computed at once (longer than a day's turnaround targets).
WINDOW = timedelta(days=4)
#: How far back from a question: a span that started before it is seen whole.
BACK = timedelta(days=1)
#: A shift that starts this close to a study's deadline (at most a quarter of its
#: turnaround) does not count as cover: whoever comes on then has a queue to read first.
LATE = timedelta(minutes=60)


def shift_intervals(shift: Shift | WeeklyShift, since: datetime, until: datetime) -> list[Span]:
    """The UTC intervals ``shift`` covers between ``since`` and ``until``."""
    if isinstance(shift, Shift):
        spans = [(shift.start, shift.end)]
    else:
        zone = shift.zone
        first = (since - timedelta(days=2)).astimezone(zone).date()
        last = (until + timedelta(days=1)).astimezone(zone).date()
        spans = []
        day = first
        while day <= last:
            if day.weekday() in shift.days:
                begin = datetime.combine(day, shift.start, tzinfo=zone)
                end_day = day + timedelta(days=1) if shift.overnight else day
                spans.append((begin, datetime.combine(end_day, shift.end, tzinfo=zone)))
            day += timedelta(days=1)
    out = []
    for begin, end in spans:
        begin, end = max(begin.astimezone(UTC), since), min(end.astimezone(UTC), until)
        if begin < end:
            out.append((begin, end))
    return out


def merge(spans: Iterable[Span]) -> list[Span]:
    """Overlapping or touching spans as one, in time order."""
    merged: list[Span] = []
    for begin, end in sorted(spans):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return merged


def duty(reader: Reader, since: datetime, until: datetime) -> list[Span]:
    """When ``reader`` is on shift between ``since`` and ``until``: merged UTC intervals."""
    return merge(span for shift in reader.shifts for span in shift_intervals(shift, since, until))


class _Window:
    """Spans known between ``since`` and ``until`` (clipped there)."""

    __slots__ = ("since", "spans", "until")

    def __init__(self, since: datetime, until: datetime, spans: list[Span]) -> None:
        self.since, self.until, self.spans = since, until, spans

    def holds(self, since: datetime, until: datetime) -> bool:
        return self.since <= since and until <= self.until


def _window(since: datetime, until: datetime) -> tuple[datetime, datetime]:
    """Whole UTC days around the question, so that nearby questions share a window."""
    start = (since - BACK).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, max(until, start + WINDOW)


class Coverage:
    """Duty spans per reader and per group of readers; :meth:`forget` when shifts change."""

    def __init__(self, reader: Callable[[int], Reader]) -> None:
        self._reader = reader
        self._readers: dict[int, _Window] = {}
        self._groups: dict[Hashable, _Window] = {}

    def forget(self) -> None:
        self._readers.clear()
        self._groups.clear()

    def spans(self, user_id: int, since: datetime, until: datetime) -> list[Span]:
        """``user_id``'s duty spans, at least those between ``since`` and ``until``."""
        window = self._readers.get(user_id)
        if window is None or not window.holds(since, until):
            start, end = _window(since, until)
            window = _Window(start, end, duty(self._reader(user_id), start, end))
            self._readers[user_id] = window
        return window.spans

    def on_duty_until(self, user_id: int, now: datetime) -> datetime | None:
        """When the shift ``user_id`` is on at ``now`` ends (None when off shift)."""
        spans = self.spans(user_id, now, now)
        i = bisect.bisect_right(spans, (now, _LAST)) - 1
        if i >= 0 and now < spans[i][1]:
            return spans[i][1]
        return None

    def due(self, study: ReadingStudy, group: Hashable, readers: Iterable[int]) -> datetime:
        """When ``study`` is due: its deadline, or the end of the last span in which
        someone of ``readers`` (those qualified for it; ``group`` names them) is on duty,
        among those starting in time (:data:`LATE`), when that span ends after the study
        is ready and before the deadline."""
        since, until = study.ready_at, study.deadline
        window = self._groups.get(group)
        if window is None or not window.holds(since, until):
            start, end = _window(since, until)
            merged = merge(span for uid in readers for span in self.spans(uid, start, end))
            window = self._groups[group] = _Window(start, end, merged)
        spans = window.spans
        late = until - min(LATE, (until - since) / 4)
        i = bisect.bisect_left(spans, (late, _FIRST)) - 1  # the last span starting in time
        if i < 0:
            return until
        end = spans[i][1]
        return end if since < end < until else until


_FIRST = datetime.min.replace(tzinfo=UTC)
_LAST = datetime.max.replace(tzinfo=UTC)
