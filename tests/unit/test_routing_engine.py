"""The engine's choice and its explanation."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from tests.unit.test_routing_support import NOW, RULES, make_reader, make_study, minutes

from telerad.workflow.model import Priority, ReadKind, Shift, patient_key
from telerad.workflow.routing import Roster, Workload, assign, reading_order, start_in
from telerad.workflow.rules import Rules, Weights


def _load(
    workload: Workload,
    reader_id: int,
    rvu: float,
    patient: str = "",
    priority: Priority = Priority.ROUTINE,
) -> None:
    """Reader ``reader_id`` holds ``rvu`` of ``priority`` work, ready 5 minutes ago (so it
    comes before a new study of its tier in their queue)."""
    held = make_study(
        f"held-{reader_id}-{rvu}-{priority}",
        priority,
        ready_at=NOW - minutes(5),
        rvu=rvu,
        patient_key=patient,
    )
    workload.add(reader_id, held)


def test_the_least_loaded_eligible_reader_gets_the_study() -> None:
    roster = Roster([make_reader(1), make_reader(2), make_reader(3, licences=frozenset())])
    workload = Workload()
    _load(workload, 1, 6.0)
    _load(workload, 2, 2.0)
    decision = assign(make_study(), roster, workload, RULES, NOW)
    assert decision.reader is not None and decision.reader.user_id == 2
    assert decision.considered == 2
    assert decision.runner_up is not None and decision.runner_up.user_id == 1


def test_ties_go_to_the_lowest_user_id() -> None:
    roster = Roster([make_reader(9), make_reader(4), make_reader(6)])
    decision = assign(make_study(), roster, Workload(), RULES, NOW)
    assert decision.reader is not None and decision.reader.user_id == 4


def test_a_slow_reader_loses_to_a_fast_one_with_the_same_queue() -> None:
    roster = Roster([make_reader(1, rvu_per_hour=4.0), make_reader(2, rvu_per_hour=16.0)])
    workload = Workload()
    _load(workload, 1, 5.0, priority=Priority.STAT)
    _load(workload, 2, 5.0, priority=Priority.STAT)
    decision = assign(make_study(priority=Priority.STAT), roster, workload, RULES, NOW)
    assert decision.reader is not None and decision.reader.user_id == 2


def test_same_patient_and_priors_pull_the_study_to_their_reader() -> None:
    roster = Roster([make_reader(1), make_reader(2), make_reader(3)])
    workload = Workload()
    patient = patient_key(7, "PAT-1")
    _load(workload, 2, 3.0, patient)  # reader 2 holds another study of this patient
    decision = assign(make_study(patient_key=patient), roster, workload, RULES, NOW)
    assert decision.reader is not None and decision.reader.user_id == 2
    assert decision.score is not None and decision.score.terms["same_patient"] == 2.0

    with_priors = make_study(patient_key=patient_key(7, "PAT-2"), prior_readers=frozenset({3}))
    decision = assign(with_priors, roster, workload, RULES, NOW)
    assert decision.reader is not None and decision.reader.user_id == 3
    # The same patient at another facility is another patient.
    other = make_study(patient_key=patient_key(8, "PAT-1"), facility_id=7)
    decision = assign(other, roster, workload, RULES, NOW)
    assert decision.reader is not None and decision.reader.user_id == 1


def test_the_cap_holds_for_routine_and_critical_tiers_bypass_it() -> None:
    roster = Roster([make_reader(1, queue_cap_rvu=5.0)])
    workload = Workload()
    _load(workload, 1, 4.5)
    routine = assign(make_study(rvu=1.0), roster, workload, RULES, NOW)
    assert routine.reader is None
    assert routine.left_out == {"queue over the cap": 1}
    assert assign(make_study(rvu=0.5), roster, workload, RULES, NOW).reader is not None
    stroke = assign(make_study(priority=Priority.STROKE, rvu=1.0), roster, workload, RULES, NOW)
    assert stroke.reader is not None and stroke.bypassed_cap


def test_escalation_widens_the_pool_to_readers_over_their_cap() -> None:
    roster = Roster([make_reader(1, queue_cap_rvu=2.0)])
    workload = Workload()
    _load(workload, 1, 2.0)
    study = make_study(priority=Priority.URGENT, ready_at=NOW - minutes(100))  # 240 min target
    assert assign(study, roster, workload, RULES, NOW).reader is None
    late = assign(study, roster, workload, RULES, NOW + minutes(20))  # 120 of 240 min gone
    assert late.reader is not None and late.widened
    never = Rules(escalation=())
    assert assign(study, roster, workload, never, NOW + minutes(200)).reader is None


def test_excluded_and_ineligible_readers_are_counted() -> None:
    off = Shift(datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC))
    roster = Roster(
        [
            make_reader(1, signed_in=False),
            make_reader(2, shifts=(off,)),
            make_reader(3),
            make_reader(4, facility_ids=frozenset({8})),
        ]
    )
    decision = assign(make_study(), roster, Workload(), RULES, NOW, exclude=frozenset({3}))
    assert decision.reader is None
    assert decision.left_out == {
        "signed out": 1,
        "not on shift": 1,
        "gave it back or sat on it": 1,
    }
    assert "No reader now: the qualified readers are 1 gave it back" in decision.explain()


def test_explanation_says_why_me_and_why_now() -> None:
    roster = Roster([make_reader(12, name="Dr Ana Ruiz"), make_reader(31)])
    workload = Workload()
    patient = patient_key(7, "PAT-1")
    _load(workload, 12, 1.0, patient)
    workload.open(12, make_study("held-12-1.0-routine"))  # reading it: 6 minutes to go
    study = make_study(
        "1.2.840.1",
        Priority.STROKE,
        ready_at=NOW - minutes(3),
        subspecialty="neuro",
        body_part="HEAD",
        patient_key=patient,
        prior_readers=frozenset({12}),
    )
    text = assign(study, roster, workload, RULES, NOW).explain()
    lines = text.splitlines()
    assert lines[0] == (
        "Study 1.2.840.1 (stroke final read, CT HEAD, facility 7, US-CA) → Dr Ana Ruiz (reader 12)."
    )
    assert lines[1].startswith(
        "Why Dr Ana Ruiz (reader 12): licensed in US-CA, privileged at facility 7, reads CT, "
        "neuro subspecialist, does final reads, on shift and signed in; "
        "holds another open study of this patient (+2.00); read this patient's priors (+1.00); "
        "queue 1 of 20 RVU (-0.05); would start it in about 6 min, 35% of the time left (-1.41)."
    )
    assert "next best reader 31 scored" in lines[1]
    assert "2 eligible reader(s) scored." in lines[1]
    assert lines[2] == (
        "Why now: pushed on arrival; 17 min left of its 20 min target "
        "(deadline 2025-03-04 15:17 UTC); stroke bypasses the queue cap."
    )


def test_explanation_when_nobody_is_qualified() -> None:
    roster = Roster([make_reader(1)])
    study = make_study(jurisdiction="US-TX", subspecialty="msk", read_kind=ReadKind.PRELIMINARY)
    text = assign(study, roster, Workload(), RULES, NOW).explain()
    assert (
        "No reader: nobody on the roster is licensed in US-TX, privileged at facility 7, " in text
    )
    assert "reading CT, in msk, doing preliminary reads." in text


def test_roster_indexes_follow_changes() -> None:
    roster = Roster([make_reader(1), make_reader(2, facility_ids=frozenset({8}))])
    study = make_study()
    assert roster.qualified_for(study) == (1,)
    roster.put(replace(roster.get(2), facility_ids=frozenset({7, 8})))
    assert roster.qualified_for(study) == (1, 2)
    roster.set_signed_in(1, False)
    decision = assign(study, roster, Workload(), RULES, NOW)
    assert decision.reader is not None and decision.reader.user_id == 2


def test_on_shift_cache_changes_with_the_minute() -> None:
    shift = Shift(NOW, NOW + minutes(1))
    roster = Roster([make_reader(1, shifts=(shift,))])
    study = make_study(ready_at=NOW - minutes(1))
    assert assign(study, roster, Workload(), RULES, NOW + minutes(0.99)).reader is not None
    assert assign(study, roster, Workload(), RULES, NOW + minutes(1)).reader is None


def test_weights_change_the_choice() -> None:
    roster = Roster([make_reader(1), make_reader(2)])
    workload = Workload()
    _load(workload, 1, 5.0)
    study = make_study(prior_readers=frozenset({1}))
    ignore_priors = Rules(weights=Weights(priors=0.0))
    plain = assign(study, roster, workload, ignore_priors, NOW).reader
    assert plain is not None and plain.user_id == 2
    chosen = assign(study, roster, workload, RULES, NOW).reader
    assert chosen is not None and chosen.user_id == 1


def test_a_stroke_is_not_held_back_by_a_readers_routine_backlog() -> None:
    # Reader 1 holds an hour of routine work, unopened; reader 2 is reading a 1 RVU study.
    roster = Roster([make_reader(1), make_reader(2)])
    workload = Workload()
    _load(workload, 1, 10.0)
    _load(workload, 2, 1.0, priority=Priority.STAT)
    workload.open(2, make_study("held-2-1.0-stat"))
    stroke = make_study("stroke", Priority.STROKE)
    decision = assign(stroke, roster, workload, RULES, NOW)
    # The stroke jumps reader 1's routine queue: they open it at once; reader 2 finishes
    # their read first (6 minutes at 10 RVU/h).
    assert decision.reader is not None and decision.reader.user_id == 1
    assert decision.score is not None and decision.score.wait_minutes == 0
    assert decision.runner_up is not None and decision.runner_up.wait_minutes == 6
    # A routine study waits behind the whole of reader 1's queue, so it goes to reader 2.
    routine = assign(make_study("routine"), roster, workload, RULES, NOW)
    assert routine.reader is not None and routine.reader.user_id == 2


def test_the_wait_counts_what_is_ahead_in_the_reading_order() -> None:
    reader = make_reader(1, rvu_per_hour=6.0)  # 10 minutes per RVU
    workload = Workload()
    _load(workload, 1, 1.0, priority=Priority.TRAUMA)
    _load(workload, 1, 2.0, priority=Priority.STAT)
    _load(workload, 1, 3.0, priority=Priority.ROUTINE)
    assert start_in(reader, make_study("s", Priority.STROKE), workload) == 0
    assert start_in(reader, make_study("t", Priority.TRAUMA), workload) == 10
    assert start_in(reader, make_study("u", Priority.URGENT), workload) == 30
    assert start_in(reader, make_study("r", Priority.ROUTINE), workload) == 60
    # What they have opened is ahead of everything, a stroke too.
    workload.open(1, make_study("held-1-3.0-routine"))
    assert start_in(reader, make_study("s", Priority.STROKE), workload) == 30


def test_queues_read_critical_tiers_first_then_by_when_studies_are_due() -> None:
    roster = Roster([make_reader(1)])
    stroke = make_study("stroke", Priority.STROKE)
    trauma = make_study("trauma", Priority.TRAUMA, ready_at=NOW - minutes(20))
    # An urgent study 20 minutes from its deadline goes before a STAT with an hour left.
    urgent = make_study("urgent", Priority.URGENT, ready_at=NOW - minutes(220))
    stat = make_study("stat", Priority.STAT)
    routine = make_study("routine", ready_at=NOW - minutes(1000))
    order = sorted(
        [routine, stat, urgent, trauma, stroke], key=lambda s: reading_order(s, roster, RULES)
    )
    assert [s.uid for s in order] == ["stroke", "trauma", "urgent", "stat", "routine"]


def test_a_routine_study_nobody_may_read_after_tonight_is_due_at_the_shift_end() -> None:
    # The only neuroradiologist leaves in 40 minutes and is back in 25 hours: the routine
    # neuro study (24 hours to its deadline) is due when they leave, and goes before a
    # STAT an hour from its deadline that reader 2 (no neuro) may read after them.
    shifts = (
        Shift(NOW - minutes(60), NOW + minutes(40)),
        Shift(NOW + minutes(1500), NOW + minutes(2100)),
    )
    roster = Roster([make_reader(1, shifts=shifts), make_reader(2, subspecialties=frozenset())])
    routine = make_study("routine", subspecialty="neuro")
    stat = make_study("stat", Priority.STAT)
    assert roster.due(routine) == NOW + minutes(40)
    assert roster.due(stat) == stat.deadline
    assert reading_order(routine, roster, RULES) < reading_order(stat, roster, RULES)
    text = assign(routine, roster, Workload(), RULES, NOW).explain()
    assert "due by 15:40 UTC: nobody qualified is on shift from then until the deadline" in text


def test_a_reader_who_would_leave_before_opening_it_is_not_the_one() -> None:
    # Reader 1 leaves in 10 minutes with 12 minutes of STAT work ahead (10 RVU/h); reader 2
    # stays, with 18 minutes ahead.
    leaving = (Shift(NOW - minutes(60), NOW + minutes(10)),)
    roster = Roster([make_reader(1, shifts=leaving), make_reader(2)])
    workload = Workload()
    _load(workload, 1, 2.0, priority=Priority.STAT)
    _load(workload, 2, 3.0, priority=Priority.STAT)
    study = make_study("stat", Priority.STAT)
    decision = assign(study, roster, workload, RULES, NOW)
    assert decision.reader is not None and decision.reader.user_id == 2
    runner_up = decision.runner_up
    assert runner_up is not None and runner_up.user_id == 1 and runner_up.leaves_first
    assert runner_up.terms["wait"] == -RULES.weights.wait  # as if it waited all its time
    decision = assign(study, Roster([make_reader(1, shifts=leaving)]), workload, RULES, NOW)
    assert "would start it in about 12 min, after their shift ends (-4.80)" in decision.explain()
