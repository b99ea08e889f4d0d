"""Properties of the replay over random small rosters and arrivals (hypothesis).

* neither policy ever gives a study to a reader who may not read it (the replay
  checks every assignment as it happens and stops on the first bad one; the reader
  of every finished study is checked again here, from the outcome);
* a study is read at most once, and exactly once when the readers suffice (someone
  qualified for everything is on shift all the time);
* a study is never read before it is ready, and a read never ends after the run;
* after the worklist's tick, no study waits that the engine would give to someone.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from telerad.simulation.replay import Policy, Run, simulate
from telerad.simulation.scenario import Arrival, Scenario
from telerad.workflow.eligibility import qualified
from telerad.workflow.model import Priority, Reader, ReadKind, Shift, WeeklyShift
from telerad.workflow.routing import Roster, assign
from telerad.workflow.rules import Rules
from telerad.workflow.worklist import Worklist

DAY = datetime(2025, 3, 4, tzinfo=UTC)
FACILITIES = {1: "US-CA", 2: "US-NY", 3: "GB"}
MODALITIES = ("CT", "MR", "CR")
SUBSPECIALTIES = ("neuro", "msk")
ZONES = ("UTC", "America/New_York", "Australia/Sydney")
DRAIN_HOURS = 6
ALL_DAY = Shift(DAY - timedelta(hours=1), DAY + timedelta(hours=24 + DRAIN_HOURS + 1))


def _some(values: tuple[object, ...] | list[object]) -> st.SearchStrategy[frozenset[object]]:
    return st.one_of(st.just(frozenset(values)), st.frozensets(st.sampled_from(values)))


shifts = st.one_of(
    st.builds(
        lambda start, hours: Shift(
            DAY + timedelta(minutes=start), DAY + timedelta(minutes=start + hours * 60)
        ),
        st.integers(-120, 1200),
        st.integers(1, 12),
    ),
    st.builds(
        WeeklyShift,
        st.frozensets(st.integers(0, 6), min_size=1),
        st.builds(time, st.integers(0, 23), st.sampled_from((0, 30))),
        st.builds(time, st.integers(0, 23), st.sampled_from((0, 30))),
        st.sampled_from(ZONES),
    ),
)


# Built once: a strategy built inside a draw is validated again on every draw (the
# examples are the same).
facility_sets = _some(list(FACILITIES))
licence_sets = _some(sorted(set(FACILITIES.values())))
modality_sets = _some(MODALITIES)
subspecialty_sets = _some(SUBSPECIALTIES)
reader_shifts = st.lists(shifts, min_size=1, max_size=2)
rvu_rates = st.floats(4, 20)
queue_caps = st.one_of(st.none(), st.floats(1, 6))
read_kind_sets = _some(tuple(ReadKind))


@st.composite
def readers(draw: st.DrawFn, user_id: int) -> Reader:
    facilities = draw(facility_sets)
    return Reader(
        user_id,
        licences=draw(licence_sets),  # type: ignore[arg-type]
        facility_ids=facilities,  # type: ignore[arg-type]
        modalities=draw(modality_sets),  # type: ignore[arg-type]
        subspecialties=draw(subspecialty_sets),  # type: ignore[arg-type]
        shifts=tuple(draw(reader_shifts)),
        rvu_per_hour=draw(rvu_rates),
        queue_cap_rvu=draw(queue_caps),
        read_kinds=draw(read_kind_sets),  # type: ignore[arg-type]
    )


study_facilities = st.sampled_from(sorted(FACILITIES))
seconds_of_the_day = st.integers(0, 86_399)
study_modalities = st.sampled_from(MODALITIES)
priorities = st.sampled_from(tuple(Priority))
study_rvus = st.floats(0.1, 3)
study_subspecialties = st.sampled_from(("", "", *SUBSPECIALTIES))
patients = st.sampled_from(("p1", "p2", "p3", ""))
read_kinds = st.sampled_from(tuple(ReadKind))
efforts = st.floats(0.5, 2)


@st.composite
def arrivals(draw: st.DrawFn, uid: str) -> Arrival:
    facility = draw(study_facilities)
    return Arrival(
        uid,
        facility_id=facility,
        jurisdiction=FACILITIES[facility],
        ready_at=DAY + timedelta(seconds=draw(seconds_of_the_day)),
        modality=draw(study_modalities),
        priority=draw(priorities),
        rvu=draw(study_rvus),
        subspecialty=draw(study_subspecialties),
        patient_id=draw(patients),
        read_kind=draw(read_kinds),
        effort=draw(efforts),
    )


@st.composite
def days(draw: st.DrawFn, *, sufficient: bool = False) -> Scenario:
    count = draw(st.integers(1, 5))
    roster = [draw(readers(i + 1)) for i in range(count)]
    if sufficient:  # one reader who may read anything, on shift all the time
        roster.append(
            Reader(
                count + 1,
                licences=frozenset(FACILITIES.values()),
                facility_ids=frozenset(FACILITIES),
                modalities=frozenset(MODALITIES),
                subspecialties=frozenset(SUBSPECIALTIES),
                shifts=(ALL_DAY,),
                rvu_per_hour=30.0,
            )
        )
    studies = [draw(arrivals(f"s{i}")) for i in range(draw(st.integers(1, 20)))]
    return Scenario(
        arrivals=tuple(sorted(studies, key=lambda a: a.ready_at)), readers=tuple(roster)
    )


def _check(day: Scenario, run: Run) -> None:
    by_id = {r.user_id: r for r in day.readers}
    studies = {a.uid: a.study(Rules()) for a in day.arrivals}
    assert [o.uid for o in run.outcomes] == [a.uid for a in day.arrivals]  # each once
    for outcome in run.outcomes:
        if outcome.done is None:
            assert outcome.reader is None and outcome.breached
            continue
        assert outcome.reader is not None
        assert not qualified(by_id[outcome.reader], studies[outcome.uid]), outcome
        assert outcome.ready <= outcome.done <= run.ended


@settings(max_examples=15, deadline=None)
@given(days())
def test_no_policy_gives_a_study_to_an_ineligible_reader(day: Scenario) -> None:
    for policy in Policy:
        _check(day, simulate(day, Rules(), policy, drain_hours=DRAIN_HOURS))


@settings(max_examples=10, deadline=None)
@given(days(sufficient=True))
def test_every_study_is_read_exactly_once_when_readers_suffice(day: Scenario) -> None:
    for policy in Policy:
        run = simulate(day, Rules(), policy, drain_hours=DRAIN_HOURS)
        _check(day, run)
        assert all(o.done is not None for o in run.outcomes), policy


@settings(max_examples=30, deadline=None)
@given(days(sufficient=True), st.data())
def test_after_a_tick_nothing_waits_that_an_eligible_reader_has_room_for(
    day: Scenario, data: st.DataObject
) -> None:
    """The worklist skips waiting studies it judges nobody can take; never wrongly."""
    rules = Rules(queue_cap_rvu=data.draw(st.floats(0.5, 5)))
    roster = Roster(replace(r, signed_in=data.draw(st.booleans())) for r in day.readers)
    worklist = Worklist(rules, roster)
    now = DAY + timedelta(hours=data.draw(st.integers(0, 23)))
    for arrival in day.arrivals:
        # Mostly before the pool widens, so that the queue cap decides.
        ready = now - timedelta(minutes=data.draw(st.integers(0, 40)))
        worklist.add(replace(arrival, ready_at=ready).study(rules), now)
    for uid in sorted(worklist.holds):
        if uid in worklist.holds and data.draw(st.booleans()):  # read: room again
            worklist.complete(uid, worklist.holds[uid].reader_id, now)
    worklist.tick(now)
    for uid in worklist.pending:
        study = worklist.studies[uid]
        assert assign(study, roster, worklist.workload, rules, now).reader is None, uid
