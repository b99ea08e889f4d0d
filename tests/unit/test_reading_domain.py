"""Reader profiles and shifts as data, turnaround arithmetic, and the worklist's withdraw."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from tests.unit.test_routing_support import NOW, RULES, make_reader, make_study, minutes

from telerad.domain.readers import (
    ProfileError,
    ReaderProfile,
    format_days,
    once_rule,
    parse_clock,
    parse_days,
    reader_of,
    weekly_rule,
)
from telerad.domain.turnaround import Read, per_facility, per_tier, percentile
from telerad.workflow.model import Priority, ReadKind, WeeklyShift
from telerad.workflow.routing import Roster
from telerad.workflow.worklist import Assigned, Worklist, WorklistError


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("sat,sun", {5, 6}),
        ("mon,wed-fri", {0, 2, 3, 4}),
        ("fri-mon", {4, 5, 6, 0}),
        ("daily", set(range(7))),
        ("Tue", {1}),
    ],
)
def test_days(text: str, days: set[int]) -> None:
    assert parse_days(text) == frozenset(days)
    assert parse_days(format_days(frozenset(days))) == frozenset(days)


@pytest.mark.parametrize("bad", ["monday", "mon-", "", "1-5", "mon..fri"])
def test_bad_days_are_refused_with_the_format(bad: str) -> None:
    with pytest.raises(ProfileError, match="mon-fri"):
        parse_days(bad)


def test_clock_and_shift_rules() -> None:
    assert parse_clock("8:05") == time(8, 5)
    assert parse_clock("24:00") == time(0, 0)
    for bad in ("25:00", "8h", "08:60"):
        with pytest.raises(ProfileError, match="HH:MM"):
            parse_clock(bad)
    rule = weekly_rule("mon-fri", "22:00", "07:00")
    assert rule.describe("Europe/London") == "mon-fri 22:00-07:00 Europe/London (overnight)"
    shift = rule.to_shift("Europe/London")
    assert isinstance(shift, WeeklyShift)
    # Friday 22:00 London runs into Saturday morning.
    assert shift.covers(datetime(2025, 1, 11, 6, 59, tzinfo=UTC))
    assert not shift.covers(datetime(2025, 1, 11, 7, 0, tzinfo=UTC))
    whole = weekly_rule("daily", "00:00", "24:00").to_shift("UTC")
    assert all(whole.covers(NOW + timedelta(hours=h)) for h in range(0, 24 * 7, 5))
    once = once_rule("2025-03-04T20:00", "2025-03-05T02:00+01:00")
    assert once.describe("UTC") == "once 2025-03-04 20:00 to 2025-03-05 01:00 UTC"
    with pytest.raises(ProfileError, match="end after"):
        once_rule("2025-03-04T20:00", "2025-03-04T19:00")


def test_profile_checks_and_the_reader_it_makes() -> None:
    with pytest.raises(ProfileError, match="IANA"):
        ReaderProfile(1, tz="Mars/Olympus")
    with pytest.raises(ProfileError, match="positive"):
        ReaderProfile(1, rvu_per_hour=0)
    profile = ReaderProfile(
        5,
        subspecialties=frozenset({"neuro"}),
        modalities=frozenset({"CT"}),
        read_kinds=frozenset({ReadKind.PRELIMINARY}),
        rvu_per_hour=12,
        queue_cap_rvu=8,
        tz="America/New_York",
        shifts=(weekly_rule("mon-fri", "08:00", "16:00"),),
    )
    reader = reader_of(5, "Dr Five", frozenset({"US-NY"}), frozenset({7}), profile, True)
    assert (reader.rvu_per_hour, reader.queue_cap_rvu, reader.signed_in) == (12, 8, True)
    assert reader.shifts == (
        WeeklyShift(parse_days("mon-fri"), time(8), time(16), "America/New_York"),
    )
    bare = reader_of(6, "", frozenset(), frozenset({7}), None, True)
    assert bare.modalities == frozenset() and bare.shifts == ()  # reads nothing until profiled


def test_percentiles_and_compliance() -> None:
    assert percentile([10.0], 90) == 10.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([0.0, 10.0], 90) == pytest.approx(9.0)
    t0 = datetime(2025, 3, 4, 12, tzinfo=UTC)

    def read(fid: int, tier: Priority, taken: int, target: int) -> Read:
        return Read(fid, tier, t0, t0 + timedelta(minutes=target), t0 + timedelta(minutes=taken))

    reads = [
        read(1, Priority.STAT, 30, 60),
        read(1, Priority.STAT, 90, 60),
        read(2, Priority.ROUTINE, 600, 1440),
        read(1, Priority.STROKE, 20, 20),  # exactly at the deadline: met
    ]
    tiers = per_tier(reads)
    assert [t.priority for t in tiers] == [Priority.STROKE, Priority.STAT, Priority.ROUTINE]
    stat = tiers[1]
    assert (stat.count, stat.met, stat.minutes[50]) == (2, 1, 60.0)
    facilities = per_facility(reads)
    assert [(f.facility_id, f.met, f.count) for f in facilities] == [(1, 2, 3), (2, 1, 1)]
    assert facilities[0].by_tier[Priority.STAT] == (1, 2)


def test_withdraw_leaves_the_worklist_and_frees_the_reader() -> None:
    worklist = Worklist(RULES, Roster([make_reader(1, queue_cap_rvu=1.0)]))
    worklist.add(make_study("s1"), NOW)
    worklist.add(make_study("s2"), NOW)  # over the cap: waits
    assert worklist.holder("s1") == 1 and worklist.holder("s2") is None
    worklist.events.clear()
    assert worklist.withdraw("s1", NOW + minutes(1)) == 1
    assert "s1" not in worklist.studies and worklist.holder("s1") is None
    # The room it left goes to what waited.
    assert worklist.holder("s2") == 1
    assert [type(e) for e in worklist.events] == [Assigned]
    assert worklist.withdraw("s2", NOW + minutes(2)) == 1
    assert worklist.workload.load(1) == 0.0
    worklist.add(make_study("s3", rvu=5.0), NOW)  # over the cap, and nobody else: waits
    assert worklist.withdraw("s3", NOW) is None
    with pytest.raises(WorklistError):
        worklist.withdraw("s3", NOW)
    worklist.add(make_study("s1"), NOW + minutes(5))  # ready again: a new read
    assert worklist.holder("s1") == 1
