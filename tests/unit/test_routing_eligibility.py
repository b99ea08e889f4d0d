"""Eligibility, one reason at a time, and the shifts behind "on shift"."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
from tests.unit.test_routing_support import NOW, make_reader, make_study

from telerad.workflow.eligibility import eligible
from telerad.workflow.model import ReadKind, Shift, WeeklyShift


def test_a_qualified_signed_in_reader_on_shift_is_eligible() -> None:
    assert eligible(make_reader(1), make_study(subspecialty="neuro"), NOW) == (True, [])


@pytest.mark.parametrize(
    ("reader_changes", "study_changes", "reason"),
    [
        ({"licences": frozenset({"US-NY"})}, {}, "not licensed in US-CA"),
        ({"facility_ids": frozenset({3})}, {}, "no privileges at facility 7"),
        ({"signed_in": False}, {}, "signed out"),
        ({"shifts": ()}, {}, "not on shift"),
        ({"modalities": frozenset({"MR"})}, {}, "no CT competence"),
        (
            {"subspecialties": frozenset({"msk"})},
            {"subspecialty": "neuro"},
            "no neuro subspecialty",
        ),
        (
            {"read_kinds": frozenset({ReadKind.PRELIMINARY})},
            {"read_kind": ReadKind.FINAL},
            "does not do final reads",
        ),
    ],
)
def test_each_reason_alone(
    reader_changes: dict[str, object], study_changes: dict[str, object], reason: str
) -> None:
    ok, reasons = eligible(make_reader(1, **reader_changes), make_study(**study_changes), NOW)
    assert not ok
    assert reasons == [reason]


def test_every_reason_is_listed() -> None:
    reader = make_reader(
        1,
        licences=frozenset(),
        facility_ids=frozenset(),
        modalities=frozenset(),
        subspecialties=frozenset(),
        signed_in=False,
        shifts=(),
    )
    ok, reasons = eligible(reader, make_study(subspecialty="neuro"), NOW)
    assert not ok
    assert reasons == [
        "signed out",
        "not on shift",
        "not licensed in US-CA",
        "no privileges at facility 7",
        "no CT competence",
        "no neuro subspecialty",
    ]


def test_a_general_study_needs_no_subspecialty() -> None:
    assert eligible(make_reader(1, subspecialties=frozenset()), make_study(), NOW)[0]


def test_a_cached_shift_answer_is_used() -> None:
    assert eligible(make_reader(1), make_study(), NOW, on_shift=False)[1] == ["not on shift"]
    assert eligible(make_reader(1, shifts=()), make_study(), NOW, on_shift=True)[0]


def test_utc_shift_includes_its_start_and_excludes_its_end() -> None:
    shift = Shift(datetime(2025, 3, 4, 8, tzinfo=UTC), datetime(2025, 3, 4, 16, tzinfo=UTC))
    assert shift.covers(datetime(2025, 3, 4, 8, tzinfo=UTC))
    assert shift.covers(datetime(2025, 3, 4, 15, 59, 59, tzinfo=UTC))
    assert not shift.covers(datetime(2025, 3, 4, 16, tzinfo=UTC))
    assert not shift.covers(datetime(2025, 3, 4, 7, 59, 59, tzinfo=UTC))


def test_shifts_are_checked() -> None:
    with pytest.raises(ValueError, match="aware"):
        Shift(datetime(2025, 3, 4, 8), datetime(2025, 3, 4, 9, tzinfo=UTC))
    with pytest.raises(ValueError, match="whole minute"):
        Shift(datetime(2025, 3, 4, 8, 0, 30, tzinfo=UTC), datetime(2025, 3, 4, 9, tzinfo=UTC))
    with pytest.raises(ValueError, match="before it starts"):
        Shift(datetime(2025, 3, 4, 9, tzinfo=UTC), datetime(2025, 3, 4, 8, tzinfo=UTC))
    with pytest.raises(ValueError, match="0 \\(Monday\\) to 6"):
        WeeklyShift(frozenset({7}), time(8), time(16))
    with pytest.raises(Exception, match="Mars/Olympus"):
        WeeklyShift(frozenset({0}), time(8), time(16), "Mars/Olympus")


def test_weekly_shift_in_the_readers_time_zone() -> None:
    # Tuesday 08:00-16:00 in Los Angeles (UTC-8 in early March 2025, before DST).
    shift = WeeklyShift(frozenset({1}), time(8), time(16), "America/Los_Angeles")
    assert not shift.covers(datetime(2025, 3, 4, 15, 59, tzinfo=UTC))  # 07:59 local
    assert shift.covers(datetime(2025, 3, 4, 16, 0, tzinfo=UTC))  # 08:00 local
    assert shift.covers(datetime(2025, 3, 4, 23, 59, tzinfo=UTC))
    assert not shift.covers(datetime(2025, 3, 5, 0, 0, tzinfo=UTC))  # 16:00 local
    # After the DST change (9 March) the same wall-clock shift starts an hour earlier in UTC.
    assert shift.covers(datetime(2025, 3, 11, 15, 0, tzinfo=UTC))  # 08:00 PDT
    assert not shift.covers(datetime(2025, 3, 11, 14, 59, tzinfo=UTC))


def test_overnight_weekly_shift_belongs_to_the_day_it_starts() -> None:
    # Friday 22:00 to Saturday 07:00 in Sydney.
    shift = WeeklyShift(frozenset({4}), time(22), time(7), "Australia/Sydney")
    tz = ZoneInfo("Australia/Sydney")
    assert shift.covers(datetime(2025, 3, 7, 22, 0, tzinfo=tz))  # Friday 22:00
    assert shift.covers(datetime(2025, 3, 8, 6, 59, tzinfo=tz))  # Saturday 06:59
    assert not shift.covers(datetime(2025, 3, 8, 7, 0, tzinfo=tz))
    assert not shift.covers(datetime(2025, 3, 8, 22, 0, tzinfo=tz))  # Saturday night: off
    assert not shift.covers(datetime(2025, 3, 7, 6, 0, tzinfo=tz))  # Friday morning: Thursday's


def test_reader_on_shift_when_any_shift_covers() -> None:
    morning = Shift(datetime(2025, 3, 4, 8, tzinfo=UTC), datetime(2025, 3, 4, 12, tzinfo=UTC))
    evening = Shift(datetime(2025, 3, 4, 14, tzinfo=UTC), datetime(2025, 3, 4, 18, tzinfo=UTC))
    reader = make_reader(1, shifts=(morning, evening))
    assert reader.on_shift(NOW)
    assert not reader.on_shift(datetime(2025, 3, 4, 13, tzinfo=UTC))
