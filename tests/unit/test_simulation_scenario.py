"""The generated reading day: one seed, one day; and its shape (counts, mixes, shifts)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from telerad.workflow.model import Priority, WeeklyShift
from telerad.workflow.rules import Rules
from telerad.workflow.scenario import (
    DAY,
    DEFAULT_READERS,
    DEFAULT_STUDIES,
    MODALITY_SHARE,
    REGIONS,
    SUBSPECIALTY_SHARE,
    Scenario,
    generate,
)


@pytest.fixture(scope="module")
def default_day() -> Scenario:
    return generate()


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
