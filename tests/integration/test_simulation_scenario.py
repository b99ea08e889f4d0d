"""The generated reading day: one seed, one day; its shape (counts, mixes, shifts); and
the roster staffed for it (every kind of study readable, stroke and trauma around the
clock)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from telerad.simulation.scenario import (
    AROUND_THE_CLOCK,
    DAY,
    DEFAULT_READERS,
    DEFAULT_STUDIES,
    MODALITY_SHARE,
    REGIONS,
    SUBSPECIALTY_SHARE,
    Scenario,
    generate,
    licensable,
    make_arrivals,
    make_facilities,
    make_readers,
)
from telerad.workflow.eligibility import qualified
from telerad.workflow.model import Priority, ReadingStudy, WeeklyShift
from telerad.workflow.rules import Rules


@pytest.fixture(scope="module")
def default_day() -> Scenario:
    return generate()


@pytest.fixture(scope="module", params=[1, 2, 3])
def day(request: pytest.FixtureRequest, default_day: Scenario) -> Scenario:
    """The default-sized days of issue 9's targets (seed 1 is the default day)."""
    return default_day if request.param == 1 else generate(request.param)


def _kinds(scenario: Scenario, tiers: tuple[Priority, ...] = tuple(Priority)) -> list[ReadingStudy]:
    """One study of each kind (who is qualified for it) of ``tiers`` in the day."""
    rules = scenario.rules(Rules())
    kinds = {a.need: a.study(rules) for a in scenario.arrivals if a.priority in tiers}
    return list(kinds.values())


def test_the_same_seed_gives_the_same_day_and_another_seed_another() -> None:
    first, again, other = generate(5, 400, 15), generate(5, 400, 15), generate(6, 400, 15)
    assert first == again
    assert first.arrivals != other.arrivals
    assert first.readers != other.readers
    assert first.seed == 5 and first.start == DAY


def test_sizes_are_as_asked(default_day: Scenario) -> None:
    assert len(default_day.arrivals) == DEFAULT_STUDIES == 20_000
    assert len(default_day.readers) == DEFAULT_READERS == 120
    assert len({a.uid for a in default_day.arrivals}) == 20_000
    assert len({r.user_id for r in default_day.readers}) == 120
    small = generate(2, 37, 3)
    assert (len(small.arrivals), len(small.readers)) == (37, 3)


def test_arrivals_fill_one_day_in_order(default_day: Scenario) -> None:
    times = [a.ready_at for a in default_day.arrivals]
    assert times == sorted(times)
    assert times[0] >= DAY and times[-1] < DAY + timedelta(days=1, minutes=5)


def test_the_priority_mix_has_a_few_per_cent_stroke_and_trauma(default_day: Scenario) -> None:
    share = {p: n / 20_000 for p, n in Counter(a.priority for a in default_day.arrivals).items()}
    assert 0.015 < share[Priority.STROKE] < 0.04
    assert 0.03 < share[Priority.TRAUMA] < 0.09  # trauma visits bring companion studies
    assert 0.15 < share[Priority.STAT] < 0.3
    assert 0.15 < share[Priority.URGENT] < 0.3
    assert 0.4 < share[Priority.ROUTINE] < 0.6


def test_modalities_rvu_subspecialties_and_patients(default_day: Scenario) -> None:
    arrivals = default_day.arrivals
    assert {a.modality for a in arrivals} == set(MODALITY_SHARE)
    mean_rvu = {
        m: sum(a.rvu for a in arrivals if a.modality == m) / sum(a.modality == m for a in arrivals)
        for m in ("CR", "CT", "MR")
    }
    assert mean_rvu["CR"] < 0.3 < 1.0 < mean_rvu["CT"] < mean_rvu["MR"]
    needing = Counter(a.subspecialty for a in arrivals if a.subspecialty)
    assert set(needing) == set(SUBSPECIALTY_SHARE)
    assert 0.15 < sum(needing.values()) / len(arrivals) < 0.45
    stroke_mr = [a for a in arrivals if a.priority is Priority.STROKE and a.modality == "MR"]
    assert sum(a.subspecialty == "neuro" for a in stroke_mr) > 0.6 * len(stroke_mr)
    visits = Counter(a.patient_id for a in arrivals)
    assert 300 < sum(n > 1 for n in visits.values()) < 3_000  # same-patient groups
    assert 0.05 < sum(bool(a.prior_readers) for a in arrivals) / len(arrivals) < 0.25
    effort = [a.effort for a in arrivals]
    assert abs(sum(effort) / len(effort) - 1.0) < 0.02 and min(effort) > 0


def test_arrivals_follow_the_facilities_local_day(default_day: Scenario) -> None:
    zones = {f.id: ZoneInfo(f.tz) for f in default_day.facilities}
    hours = Counter(a.ready_at.astimezone(zones[a.facility_id]).hour for a in default_day.arrivals)
    office = sum(hours[h] for h in range(10, 16)) / 6
    night = sum(hours[h] for h in range(1, 6)) / 5
    assert office > 2.5 * night


def test_facilities_span_jurisdictions_with_contracts(default_day: Scenario) -> None:
    jurisdictions = {f.jurisdiction for f in default_day.facilities}
    assert {"GB", "AU-NSW", "IN-MH", "US-CA", "US-NY"} <= jurisdictions
    assert len({f.tz for f in default_day.facilities}) >= 7
    rules = default_day.rules(Rules())
    premium = [f for f in default_day.facilities if f.contract.minutes.get(Priority.STAT) == 45]
    assert premium, "some facilities buy a faster STAT turnaround"
    study = next(a for a in default_day.arrivals if a.facility_id == premium[0].id)
    target = rules.target(premium[0].id, study.priority)
    assert study.study(rules).deadline - study.ready_at == target
    assert rules.target(premium[0].id, Priority.STAT) == timedelta(minutes=45)


def test_the_roster_follows_the_sun(default_day: Scenario) -> None:
    readers = default_day.readers
    zones = Counter(s.tz for r in readers for s in r.shifts if isinstance(s, WeeklyShift))
    assert set(zones) == set(REGIONS)
    for hour in range(24):
        now = DAY + timedelta(hours=hour, minutes=30)
        on = [r for r in readers if r.on_shift(now)]
        assert len(on) >= 15, f"{len(on)} readers on shift at {now:%H:%M} UTC"
        assert any("US-NY" in r.licences for r in on)  # US work is read around the clock
    assert all(not r.signed_in for r in readers)  # they sign in when their shift starts
    speeds = [r.rvu_per_hour for r in readers]
    assert 8 < min(speeds) < max(speeds) < 25


def test_every_facility_can_be_served(default_day: Scenario) -> None:
    for facility in default_day.facilities:
        there = [r for r in default_day.readers if facility.id in r.facility_ids]
        assert all(facility.jurisdiction in r.licences for r in there)
        assert set(SUBSPECIALTY_SHARE) <= {s for r in there for s in r.subspecialties}
        assert set(MODALITY_SHARE) <= {m for r in there for m in r.modalities}


def test_every_kind_of_study_the_day_brings_has_a_qualified_reader(day: Scenario) -> None:
    kinds = _kinds(day)
    assert len(kinds) > 1_000  # (facility, modality, subspecialty, read kind) combinations
    unreadable = [s.describe for s in kinds if all(qualified(r, s) for r in day.readers)]
    assert unreadable == []
    assert day.staffing is not None
    assert day.staffing.unstaffed == [] and day.staffing.gaps == {}


def test_stroke_and_trauma_have_a_qualified_reader_on_shift_around_the_clock(
    day: Scenario,
) -> None:
    assert set(AROUND_THE_CLOCK) == {Priority.STROKE, Priority.TRAUMA}
    kinds = _kinds(day, AROUND_THE_CLOCK)
    facilities = {s.facility_id for s in kinds}
    assert len(facilities) == len(day.facilities)  # every facility sends some
    missing = []
    for quarter in range(24 * 4):
        now = DAY + timedelta(minutes=15 * quarter)
        on = [r for r in day.readers if r.on_shift(now)]
        missing += [f"{now:%H:%M} {s.describe}" for s in kinds if all(qualified(r, s) for r in on)]
    assert missing == []


def test_staffing_keeps_the_arrivals_and_the_readers_and_only_adds(default_day: Scenario) -> None:
    rng = random.Random(1)
    facilities = make_facilities(rng)
    drawn = make_readers(rng, facilities, DEFAULT_READERS)
    assert default_day.arrivals == tuple(make_arrivals(rng, facilities, drawn, DEFAULT_STUDIES))
    assert [r.user_id for r in default_day.readers] == [r.user_id for r in drawn]
    changed = 0
    for before, after in zip(drawn, default_day.readers, strict=True):
        assert before.licences <= after.licences <= before.licences | licensable(before)
        assert before.facility_ids <= after.facility_ids
        assert before.modalities <= after.modalities
        assert before.subspecialties <= after.subspecialties
        assert before.read_kinds <= after.read_kinds
        assert (before.rvu_per_hour, before.shifts) == (after.rvu_per_hour, after.shifts)
        assert after.facility_ids <= {
            f.id for f in facilities if f.jurisdiction in after.licences
        }  # privileges only where licensed
        changed += before != after
    assert 0 < changed < DEFAULT_READERS / 2  # a network's credentialing, not a new roster


def test_indian_readers_work_nights_too(default_day: Scenario) -> None:
    def indian(shift: object) -> bool:
        return isinstance(shift, WeeklyShift) and shift.tz == "Asia/Kolkata"

    india = [r for r in default_day.readers if any(indian(s) for s in r.shifts)]
    for hour in range(24):
        now = DAY + timedelta(hours=hour, minutes=30)
        assert any(r.on_shift(now) for r in india), f"no Indian reader at {now:%H:%M} UTC"
