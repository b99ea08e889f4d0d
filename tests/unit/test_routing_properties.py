"""Properties over random rosters, studies and clocks (hypothesis).

* every assignment goes to a reader who is eligible at that moment;
* no study has two readers, and the running workload equals the held studies' RVU;
* a critical study never waits while a reader who may read it exists;
* without a widening step, nobody holds more non-critical RVU than their cap;
* the indexed engine chooses exactly what a brute-force scan of the roster chooses.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.test_routing_support import NOW

from telerad.workflow.eligibility import eligible
from telerad.workflow.model import (
    Priority,
    Reader,
    ReadingStudy,
    ReadKind,
    Shift,
    WeeklyShift,
    patient_key,
)
from telerad.workflow.routing import EPSILON, Roster, Workload, assign, score_reader
from telerad.workflow.rules import EscalationAction, EscalationStep, Rules
from telerad.workflow.worklist import Assigned, Worklist, WorklistError

FACILITIES = {1: "US-CA", 2: "US-NY", 3: "US-TX", 4: "US-CA"}
MODALITIES = ("CT", "MR", "CR")
SUBSPECIALTIES = ("neuro", "msk")
ZONES = ("UTC", "America/New_York", "America/Los_Angeles", "Australia/Sydney")

utc_shifts = st.builds(
    lambda start, length: Shift(
        NOW + timedelta(minutes=start), NOW + timedelta(minutes=start + length)
    ),
    st.integers(-600, 900),
    st.integers(1, 720),
)
weekly_shifts = st.builds(
    WeeklyShift,
    st.frozensets(st.integers(0, 6), min_size=1),
    st.builds(time, st.integers(0, 23), st.sampled_from((0, 30))),
    st.builds(time, st.integers(0, 23), st.sampled_from((0, 30))),
    st.sampled_from(ZONES),
)


def _mostly(everything: frozenset[Any]) -> st.SearchStrategy[frozenset[Any]]:
    """All of them most of the time, so that several readers often compete for a study."""
    some = st.frozensets(st.sampled_from(sorted(everything)))
    return st.one_of(st.just(everything), st.just(everything), some)


# The strategies are built once: a strategy built inside a draw is validated again on
# every draw, which cost most of these tests' time (the examples are the same).
LONG_SHIFT = Shift(NOW - timedelta(days=1), NOW + timedelta(days=3))
reader_shifts = st.one_of(
    st.just([LONG_SHIFT]), st.lists(st.one_of(utc_shifts, weekly_shifts), max_size=3)
)
licence_sets = _mostly(frozenset(FACILITIES.values()))
facility_sets = _mostly(frozenset(FACILITIES))
modality_sets = _mostly(frozenset(MODALITIES))
subspecialty_sets = _mostly(frozenset(SUBSPECIALTIES))
signed_in_flags = st.sampled_from((True, True, False))
rvu_rates = st.sampled_from((4.0, 8.0, 12.0))
queue_caps = st.one_of(st.none(), st.sampled_from((1.0, 2.5, 6.0)))
read_kind_sets = st.sampled_from([frozenset(ReadKind), frozenset({ReadKind.FINAL})])


@st.composite
def readers(draw: st.DrawFn, user_id: int) -> Reader:
    return Reader(
        user_id,
        licences=draw(licence_sets),
        facility_ids=draw(facility_sets),
        modalities=draw(modality_sets),
        subspecialties=draw(subspecialty_sets),
        shifts=tuple(draw(reader_shifts)),
        signed_in=draw(signed_in_flags),
        rvu_per_hour=draw(rvu_rates),
        queue_cap_rvu=draw(queue_caps),
        read_kinds=draw(read_kind_sets),
    )


@st.composite
def rosters(draw: st.DrawFn) -> list[Reader]:
    count = draw(st.integers(1, 8))
    return [draw(readers(uid)) for uid in range(1, count + 1)]


rules_strategy = st.builds(
    Rules,
    queue_cap_rvu=st.sampled_from((2.0, 5.0, 10.0)),
    escalation=st.sampled_from(
        [
            Rules().escalation,
            (
                EscalationStep(0.8, EscalationAction.ALERT_SUPERVISOR),
                EscalationStep(1.0, EscalationAction.BREACH),
            ),
        ]
    ),
    pull_pool=st.booleans(),
)


study_facilities = st.sampled_from(sorted(FACILITIES))
priorities = st.sampled_from(list(Priority))
waits = st.integers(0, 120)
study_modalities = st.sampled_from(MODALITIES)
study_rvus = st.sampled_from((0.5, 1.0, 2.0, 3.5))
study_subspecialties = st.sampled_from(("", *SUBSPECIALTIES))
patients = st.sampled_from(("A", "B", "C"))
read_kinds = st.sampled_from(list(ReadKind))
prior_reader_sets = st.frozensets(st.integers(1, 8), max_size=2)


@st.composite
def studies(draw: st.DrawFn, uid: str, now: datetime, rules: Rules) -> ReadingStudy:
    facility = draw(study_facilities)
    priority = draw(priorities)
    ready_at = now - timedelta(minutes=draw(waits))
    return ReadingStudy(
        uid,
        facility_id=facility,
        jurisdiction=FACILITIES[facility],
        modality=draw(study_modalities),
        priority=priority,
        ready_at=ready_at,
        deadline=rules.deadline(facility, priority, ready_at),
        rvu=draw(study_rvus),
        subspecialty=draw(study_subspecialties),
        patient_key=patient_key(facility, draw(patients)),
        read_kind=draw(read_kinds),
        prior_readers=draw(prior_reader_sets),
    )


OPS = ("add", "add", "add", "tick", "sign_in", "sign_out", "claim", "release", "complete")


def _check(worklist: Worklist, rules: Rules, now: datetime, new_events: list[Any]) -> None:
    roster = worklist.roster
    # every assignment made by this command went to a reader eligible now
    for event in new_events:
        if isinstance(event, Assigned) and worklist.holder(event.uid) == event.reader_id:
            ok, reasons = eligible(roster.get(event.reader_id), worklist.studies[event.uid], now)
            assert ok, f"{event.uid} assigned to ineligible reader {event.reader_id}: {reasons}"
    # one reader per study, and the indexes agree with each other
    seen: set[str] = set()
    for reader_id, uids in worklist.held_by.items():
        assert not (uids & seen), "a study is held by two readers"
        seen |= uids
        for uid in uids:
            assert worklist.holds[uid].reader_id == reader_id
    assert seen == set(worklist.holds)
    for uid, study in worklist.studies.items():
        assert study.assigned_to == worklist.holder(uid)
        assert (uid in worklist.pending) == (uid not in worklist.holds)
    # the running sums are the held studies' RVU
    for reader in roster:
        held = [worklist.studies[u] for u in worklist.held_by.get(reader.user_id, ())]
        assert abs(worklist.workload.load(reader.user_id) - sum(s.rvu for s in held)) < 1e-6
        # what is ahead of a held study is the opened ones and those before it in the order
        opened = [s for s in held if worklist.holds[s.uid].claimed_at is not None]
        for study in held:
            before = [o for o in held if o.uid != study.uid and o not in opened]
            before = [o for o in before if worklist.order(o.uid) < worklist.order(study.uid)]
            expected = sum(o.rvu for o in opened if o.uid != study.uid) + sum(o.rvu for o in before)
            ahead = worklist.workload.ahead(reader.user_id, study)
            if worklist.holds[study.uid].claimed_at is None:
                assert abs(ahead - expected) < 1e-6, (study.uid, ahead, expected)
        if not any(step.action is EscalationAction.WIDEN_POOL for step in rules.escalation):
            non_critical = sum(s.rvu for s in held if s.priority not in rules.bypass_cap)
            assert non_critical <= rules.cap_of(reader.queue_cap_rvu) + EPSILON
    # no critical study waits while someone may read it
    for uid in worklist.pending:
        study = worklist.studies[uid]
        if study.priority in rules.bypass_cap:
            able = [r.user_id for r in roster if eligible(r, study, now)[0]]
            assert not able, f"critical {uid} waits while {able} may read it"


@settings(max_examples=150, deadline=None)
@given(st.data(), rosters(), rules_strategy)
def test_worklist_invariants_hold_under_any_sequence(
    data: st.DataObject, roster: list[Reader], rules: Rules
) -> None:
    worklist = Worklist(rules, Roster(roster))
    now = NOW
    ids = [r.user_id for r in roster]
    for step in range(data.draw(st.integers(1, 25))):
        now += timedelta(seconds=data.draw(st.integers(0, 4 * 3600)))
        op = data.draw(st.sampled_from(OPS))
        before = len(worklist.events)
        held = sorted(worklist.holds)
        if op == "add":
            worklist.add(data.draw(studies(f"s{step}", now, rules)), now)
        elif op == "tick":
            worklist.tick(now)
        elif op == "sign_in":
            worklist.sign_in(data.draw(st.sampled_from(ids)), now)
        elif op == "sign_out":
            worklist.reassign_on_sign_out(data.draw(st.sampled_from(ids)), now)
        elif held:
            uid = data.draw(st.sampled_from(held))
            holder = worklist.holds[uid].reader_id
            if op == "claim":
                worklist.claim(uid, holder, now)
            elif op == "release":
                worklist.release(uid, holder, now)
            else:
                worklist.complete(uid, holder, now)
        elif op == "claim" and worklist.pending:
            uid = data.draw(st.sampled_from(sorted(worklist.pending)))
            try:
                worklist.claim(uid, data.draw(st.sampled_from(ids)), now)
            except WorklistError:
                continue  # pushed only, ineligible or full: refused, nothing changed
        else:
            continue  # nothing held: no command ran (the clock alone changes nothing)
        _check(worklist, rules, now, worklist.events[before:])
        if op == "tick":
            for uid, hold in worklist.holds.items():
                if hold.claimed_at is None:
                    reader = worklist.roster.get(hold.reader_id)
                    assert eligible(reader, worklist.studies[uid], now)[0]


def _brute_force(
    study: ReadingStudy, roster: list[Reader], workload: Workload, rules: Rules, now: datetime
) -> int | None:
    """The engine's rule, read straight from its docstring, over the whole roster."""
    fraction = study.elapsed_fraction(now)
    open_cap = study.priority in rules.bypass_cap or rules.widened(fraction)
    shifts = Roster(roster)  # when the study is due, when each reader's shift ends
    best: tuple[float, int] | None = None
    for reader in roster:
        if not eligible(reader, study, now)[0]:
            continue
        if (
            not open_cap
            and workload.load(reader.user_id) + study.rvu
            > rules.cap_of(reader.queue_cap_rvu) + EPSILON
        ):
            continue
        key = (score_reader(reader, study, workload, rules, now, shifts).total, -reader.user_id)
        if best is None or key > best:
            best = key
    return None if best is None else -best[1]


@settings(max_examples=150, deadline=None)
@given(st.data(), rosters(), rules_strategy, st.integers(0, 36 * 60))
def test_engine_matches_a_brute_force_scan(
    data: st.DataObject, roster: list[Reader], rules: Rules, offset: int
) -> None:
    now = NOW + timedelta(minutes=offset, seconds=data.draw(st.integers(0, 59)))
    workload = Workload()
    for i in range(data.draw(st.integers(0, 12))):
        held = data.draw(studies(f"h{i}", now, rules))
        workload.add(data.draw(st.sampled_from([r.user_id for r in roster])), held)
    study = data.draw(studies("new", now, rules))
    decision = assign(study, Roster(roster), workload, rules, now)
    chosen = decision.reader.user_id if decision.reader else None
    assert chosen == _brute_force(study, roster, workload, rules, now)
    if decision.reader is not None:
        assert eligible(decision.reader, study, now)[0]
        assert decision.explain().startswith(f"Study {study.describe} → ")
    elif study.priority in rules.bypass_cap:
        assert not any(eligible(r, study, now)[0] for r in roster)


@settings(max_examples=50, deadline=None)
@given(rosters(), st.integers(0, 14 * 24 * 60), st.integers(0, 59))
def test_on_shift_inside_a_minute_is_the_minutes_answer(
    roster: list[Reader], offset: int, second: int
) -> None:
    minute = NOW + timedelta(minutes=offset)
    for reader in roster:
        assert reader.on_shift(minute + timedelta(seconds=second)) == reader.on_shift(minute)
        signed = replace(reader, signed_in=True)
        assert signed.on_shift(minute) == any(s.covers(minute) for s in signed.shifts)
