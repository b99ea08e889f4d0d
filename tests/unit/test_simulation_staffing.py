"""Staffing a roster for the day it reads (workflow/staffing.py): cheapest grants first,
licences only where the reader's region works, cover around the clock, moves to a
night shift, and what cannot be covered reported as such."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from telerad.simulation.staffing import DAY_MINUTES, Need, overlap, staff, subtract
from telerad.workflow.eligibility import qualified
from telerad.workflow.model import Priority, Reader, ReadingStudy, ReadKind, WeeklyShift

DAY = datetime(2025, 3, 4, tzinfo=UTC)
CT_NEURO = Need(7, "US-CA", "CT", "neuro", ReadKind.FINAL)
MR_NEURO = Need(7, "US-CA", "MR", "neuro", ReadKind.FINAL)


def daily(begin: int, hours: int, tz: str = "UTC") -> WeeklyShift:
    return WeeklyShift(frozenset(range(7)), time(begin), time((begin + hours) % 24), tz)


def reader(user_id: int, **changes: Any) -> Reader:
    values: dict[str, Any] = {
        "licences": frozenset({"US-CA"}),
        "facility_ids": frozenset({7}),
        "modalities": frozenset({"CT"}),
        "subspecialties": frozenset({"neuro"}),
        "shifts": (daily(0, 24),),
    }
    values.update(changes)
    return Reader(user_id, **values)


def us(_: Reader) -> frozenset[str]:
    return frozenset({"US-CA", "US-NY"})


def on_shift_at(readers: list[Reader], need: Need, minute: int) -> bool:
    now = DAY + timedelta(minutes=minute)
    return any(need.met_by(r) and r.on_shift(now) for r in readers)


def test_a_privilege_is_given_before_a_modality_and_a_modality_before_a_subspecialty() -> None:
    no_privilege = reader(3, facility_ids=frozenset())
    no_ct = reader(1, modalities=frozenset({"MR"}))
    no_neuro = reader(2, subspecialties=frozenset())
    readers, done = staff([no_ct, no_neuro, no_privilege], [CT_NEURO], [], start=DAY, licensable=us)
    assert readers == [no_ct, no_neuro, reader(3)]
    assert done.granted == Counter(facility_ids=1)
    readers, done = staff([no_ct, no_neuro], [CT_NEURO], [], start=DAY, licensable=us)
    assert readers == [reader(1, modalities=frozenset({"CT", "MR"})), no_neuro]
    readers, _ = staff([no_neuro], [CT_NEURO], [], start=DAY, licensable=us)
    assert readers == [reader(2)]  # training, when nobody else may read it


def test_a_need_someone_meets_changes_nothing() -> None:
    readers = [reader(1), reader(2, facility_ids=frozenset())]
    staffed, done = staff(readers, [CT_NEURO], [CT_NEURO], start=DAY, licensable=us)
    assert staffed == readers and not done.granted and not done.moved


def test_licences_only_where_the_readers_region_works() -> None:
    abroad = reader(1, licences=frozenset({"GB"}), facility_ids=frozenset())
    home = reader(
        2, licences=frozenset({"US-NY"}), facility_ids=frozenset(), modalities=frozenset()
    )
    staffed, done = staff(
        [abroad, home],
        [CT_NEURO],
        [],
        start=DAY,
        licensable=lambda r: frozenset({"GB"}) if r.user_id == 1 else us(r),
    )
    assert staffed[0] == abroad
    assert staffed[1].licences == {"US-NY", "US-CA"} and staffed[1].facility_ids == {7}
    assert done.granted == Counter(licences=1, facility_ids=1, modalities=1)
    staffed, done = staff([abroad], [CT_NEURO], [], start=DAY, licensable=lambda r: frozenset())
    assert staffed == [abroad] and done.unstaffed == [CT_NEURO]


def test_around_the_clock_cover_goes_to_the_readers_on_shift_for_most_of_the_gap() -> None:
    night = reader(1, facility_ids=frozenset(), shifts=(daily(0, 12),))
    day = reader(2, facility_ids=frozenset(), shifts=(daily(12, 12),))
    middle = reader(3, facility_ids=frozenset(), shifts=(daily(6, 12),))
    staffed, done = staff([night, day, middle], [], [CT_NEURO], start=DAY, licensable=us)
    assert [7 in r.facility_ids for r in staffed] == [True, True, False]
    assert done.gaps == {} and done.granted == Counter(facility_ids=2)
    assert all(on_shift_at(staffed, CT_NEURO, m) for m in range(0, DAY_MINUTES, 15))


def test_a_cheaper_grant_goes_first_even_for_fewer_minutes() -> None:
    short = reader(1, facility_ids=frozenset(), shifts=(daily(2, 2),))
    long = reader(2, modalities=frozenset())
    staffed, done = staff([long, short], [], [CT_NEURO], start=DAY, licensable=us)
    assert 7 in staffed[1].facility_ids and "CT" in staffed[0].modalities
    assert done.gaps == {}


def test_nobody_of_a_region_that_may_hold_the_licence_on_shift_moves_one_to_nights() -> None:
    india = Need(40, "IN-MH", "CT", "", ReadKind.FINAL)
    kolkata = {"Asia/Kolkata": [(8, 10), (13, 10), (22, 10)]}

    def indian(user_id: int, begin: int) -> Reader:
        return reader(
            user_id,
            licences=frozenset({"IN-MH"}),
            facility_ids=frozenset({40}),
            shifts=(daily(begin, 10, "Asia/Kolkata"),),
        )

    readers = [indian(1, 8), indian(2, 8), indian(3, 13)]
    staffed, done = staff(
        readers, [], [india], start=DAY, licensable=lambda r: frozenset(), shifts=kolkata
    )
    assert done.moved == [1] and done.gaps == {}
    assert staffed[0].shifts == (daily(22, 10, "Asia/Kolkata"),)
    assert staffed[1:] == readers[1:]
    # Without shifts to move to, the gap is reported: 23:00-08:00 in Kolkata (UTC+5:30).
    _, done = staff(readers, [], [india], start=DAY, licensable=lambda r: frozenset())
    assert done.gaps == {india: [(0, 150), (1050, DAY_MINUTES)]}


def test_a_move_never_opens_a_gap_in_a_need_covered_already() -> None:
    general = Need(40, "IN-MH", "CT", "", ReadKind.FINAL)  # sorted before "peds"
    peds = Need(40, "IN-MH", "CT", "peds", ReadKind.FINAL)
    kolkata = {"Asia/Kolkata": [(8, 10), (13, 10), (22, 10)]}
    only = reader(
        1,
        licences=frozenset({"IN-MH"}),
        facility_ids=frozenset({40}),
        subspecialties=frozenset({"peds"}),
        shifts=(daily(8, 10, "Asia/Kolkata"),),
    )
    staffed, done = staff(
        [only], [], [general, peds], start=DAY, licensable=lambda r: frozenset(), shifts=kolkata
    )
    assert staffed == [only] and done.moved == []
    assert set(done.gaps) == {general, peds}


def test_minutes_of_the_day() -> None:
    assert subtract([(0, 100)], [(10, 20), (50, 200)]) == [(0, 10), (20, 50)]
    assert subtract([(0, 10)], []) == [(0, 10)]
    assert overlap([(0, 30), (60, 90)], [(20, 70)]) == 20


readers_strategy = st.lists(
    st.builds(
        lambda uid, lic, fac, mod, sub, kinds, begin, hours: reader(
            uid,
            licences=lic,
            facility_ids=fac,
            modalities=mod,
            subspecialties=sub,
            read_kinds=kinds,
            shifts=(daily(begin, hours),),
        ),
        st.integers(1, 1000),
        st.frozensets(st.sampled_from(["US-CA", "US-NY", "GB"])),
        st.frozensets(st.sampled_from([7, 8, 9])),
        st.frozensets(st.sampled_from(["CT", "MR"])),
        st.frozensets(st.sampled_from(["neuro", "peds"])),
        st.frozensets(st.sampled_from(list(ReadKind)), min_size=1),
        st.integers(0, 23),
        st.integers(1, 12),
    ),
    max_size=6,
    unique_by=lambda r: r.user_id,
)
needs_strategy = st.lists(
    st.builds(
        Need,
        st.sampled_from([7, 8, 9]),
        st.sampled_from(["US-CA", "US-NY", "GB"]),
        st.sampled_from(["CT", "MR"]),
        st.sampled_from(["", "neuro", "peds"]),
        st.sampled_from(list(ReadKind)),
    ),
    max_size=4,
)


@settings(max_examples=60, deadline=None)
@given(readers_strategy, needs_strategy, needs_strategy)
def test_staffing_only_adds_and_reports_what_it_could_not_cover(
    readers: list[Reader], needs: list[Need], critical: list[Need]
) -> None:
    staffed, done = staff(readers, needs, critical, start=DAY, licensable=us)
    assert [r.user_id for r in staffed] == [r.user_id for r in readers]
    for before, after in zip(readers, staffed, strict=True):
        assert before.licences <= after.licences <= before.licences | us(before)
        assert before.facility_ids <= after.facility_ids and before.modalities <= after.modalities
        assert before.subspecialties <= after.subspecialties
        assert before.read_kinds <= after.read_kinds and before.shifts == after.shifts
    for need in set(needs) | set(critical):
        met = any(need.met_by(r) for r in staffed)
        assert met != (need in done.unstaffed), need
    for need in set(critical):
        gaps = done.gaps.get(need, [])
        for minute in range(0, DAY_MINUTES, 15):
            inside = any(a <= minute < b for a, b in gaps)
            assert on_shift_at(staffed, need, minute) != inside, (need, minute)


@settings(max_examples=100, deadline=None)
@given(readers_strategy, needs_strategy)
def test_a_need_is_met_by_exactly_the_readers_eligibility_calls_qualified(
    readers: list[Reader], needs: list[Need]
) -> None:
    for need in needs:
        study = ReadingStudy(
            "s",
            facility_id=need.facility_id,
            jurisdiction=need.jurisdiction,
            modality=need.modality,
            priority=Priority.STROKE,
            ready_at=DAY,
            deadline=DAY + timedelta(minutes=20),
            subspecialty=need.subspecialty,
            read_kind=need.read_kind,
        )
        for r in readers:
            assert need.met_by(r) == (not qualified(r, study))
            assert len(need.lacking(r)) == len(qualified(r, study))
