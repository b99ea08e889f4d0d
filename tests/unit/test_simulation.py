"""The simulator on tiny days whose right answers are known by hand."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from telerad.simulation import replay
from telerad.simulation.figures import figures, percentile, report
from telerad.simulation.replay import (
    Cover,
    IneligibleAssignment,
    Policy,
    Run,
    duty,
    shift_intervals,
    simulate,
)
from telerad.simulation.scenario import Arrival, Scenario
from telerad.workflow.model import Priority, Reader, ReadKind, Shift, WeeklyShift
from telerad.workflow.rules import Rules

DAY = datetime(2025, 3, 4, tzinfo=UTC)
RULES = Rules()


def at(minutes: float) -> datetime:
    return DAY + timedelta(minutes=minutes)


def reader(user_id: int, start: float = 0, end: float = 600, **changes: Any) -> Reader:
    values: dict[str, Any] = {
        "licences": frozenset({"US-CA"}),
        "facility_ids": frozenset({7}),
        "modalities": frozenset({"CT"}),
        "subspecialties": frozenset({"neuro"}),
        "shifts": (Shift(at(start), at(end)),),
        "rvu_per_hour": 6.0,  # 10 minutes per RVU
    }
    values.update(changes)
    return Reader(user_id, **values)


def arrival(
    uid: str, minute: float, priority: Priority = Priority.ROUTINE, **changes: Any
) -> Arrival:
    values: dict[str, Any] = {
        "facility_id": 7,
        "jurisdiction": "US-CA",
        "modality": "CT",
        "rvu": 1.0,
    }
    values.update(changes)
    return Arrival(uid, ready_at=at(minute), priority=priority, **values)


def day(*arrivals: Arrival, readers: tuple[Reader, ...]) -> Scenario:
    return Scenario(arrivals=tuple(sorted(arrivals, key=lambda a: a.ready_at)), readers=readers)


def done_minutes(run: Run) -> dict[str, float | None]:
    return {o.uid: None if o.done is None else o.done / 60 for o in run.outcomes}


def both(scenario: Scenario, **options: Any) -> dict[Policy, Run]:
    return {p: simulate(scenario, RULES, p, **options) for p in Policy}


def test_the_engine_reads_the_stroke_first_and_fifo_the_oldest() -> None:
    # The routine study waits from 0:00 and the stroke from 0:05; the reader arrives at 0:10.
    scenario = day(
        arrival("routine", 0),
        arrival("stroke", 5, Priority.STROKE),
        readers=(reader(1, start=10),),
    )
    runs = both(scenario, drain_hours=1)
    assert done_minutes(runs[Policy.ENGINE]) == pytest.approx({"routine": 30, "stroke": 20})
    assert done_minutes(runs[Policy.FIFO]) == pytest.approx({"routine": 20, "stroke": 30})
    engine = {o.uid: o for o in runs[Policy.ENGINE].outcomes}
    assert engine["stroke"].tat_minutes == pytest.approx(15)
    assert not engine["stroke"].breached  # 15 of its 20 minutes
    fifo = {o.uid: o for o in runs[Policy.FIFO].outcomes}
    assert fifo["stroke"].breached  # 25 minutes
    assert engine["stroke"].reader == fifo["routine"].reader == 1


def test_a_study_nobody_may_read_is_a_breach_and_never_read() -> None:
    scenario = day(
        arrival("ok", 0),
        arrival("texas", 1, jurisdiction="US-TX"),
        readers=(reader(1),),
    )
    for policy, run in both(scenario, drain_hours=2).items():
        outcomes = {o.uid: o for o in run.outcomes}
        assert outcomes["ok"].done is not None and not outcomes["ok"].breached, policy
        assert outcomes["texas"].done is None and outcomes["texas"].breached, policy
        assert outcomes["texas"].tat_minutes is None
        assert run.ended == pytest.approx((24 + 2) * 3600)  # ran on to the cap
        f = figures(run)
        assert f.breach_rate == 0.5
        assert f.tiers[Priority.ROUTINE].read == 1


def test_reading_time_is_rvu_over_speed_times_the_studys_effort() -> None:
    scenario = day(arrival("a", 0, rvu=1.5, effort=1.2), readers=(reader(1, rvu_per_hour=9),))
    for run in both(scenario, drain_hours=1).values():
        # 1.5 RVU at 9 RVU/h is 10 minutes, and this case takes 20 % longer.
        assert done_minutes(run) == pytest.approx({"a": 12})


def test_a_shift_ends_the_read_in_progress_finishes_and_the_rest_moves_on() -> None:
    scenario = day(
        arrival("long", 0, rvu=4.0),  # 40 minutes
        arrival("short", 0),
        readers=(reader(1, start=0, end=30), reader(2, start=30, end=600)),
    )
    runs = both(scenario, drain_hours=1)
    for policy, run in runs.items():
        outcomes = {o.uid: o for o in run.outcomes}
        assert outcomes["long"].reader == 1 and outcomes["long"].done == 40 * 60, policy
        assert outcomes["short"].reader == 2 and outcomes["short"].done == 40 * 60, policy
        # Reader 1 was signed in until the read was done and read all the time.
        assert run.on_duty[1] == 40 * 60 and run.busy[1] == 40 * 60
        assert figures(run).utilisation[1] == 1.0
    assert runs[Policy.ENGINE].reassignments == 1  # "short" left reader 1's queue at 0:30


def test_the_engine_spreads_work_that_fifo_gives_to_whoever_is_free() -> None:
    # Two readers; the engine pushes each arrival to the one with the shorter queue.
    scenario = day(*(arrival(f"s{i}", 0) for i in range(4)), readers=(reader(1), reader(2)))
    for run in both(scenario, drain_hours=1).values():
        readers = sorted(o.reader for o in run.outcomes if o.reader is not None)
        assert readers == [1, 1, 2, 2]
        assert max(o.done or 0 for o in run.outcomes) == 20 * 60


def test_an_ineligible_assignment_stops_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replay, "eligible", lambda *_, **__: (False, ["not licensed"]))
    scenario = day(arrival("a", 0), readers=(reader(1),))
    for policy in Policy:
        with pytest.raises(IneligibleAssignment, match="study a went to reader 1: not licensed"):
            simulate(scenario, RULES, policy, drain_hours=1)


def test_queue_samples_count_what_waits_unopened() -> None:
    scenario = day(*(arrival(f"s{i}", 0) for i in range(3)), readers=(reader(1, start=12),))
    for run in both(scenario, drain_hours=1).values():
        samples = dict(run.queue)
        assert samples[0] == samples[5] == samples[10] == 3
        assert samples[15] == 2  # one is open from 0:12
        assert samples[25] == 1 and samples[40] == 0
        assert max(samples) == 40  # the run stops when the last read is done, at 0:42


def test_duty_matches_the_shifts_minute_by_minute() -> None:
    overnight = WeeklyShift(frozenset({0, 4, 6}), time(22), time(7), "America/New_York")
    day_shift = WeeklyShift(frozenset(range(7)), time(8), time(17), "Australia/Sydney")
    fixed = Shift(datetime(2025, 3, 8, 10, tzinfo=UTC), datetime(2025, 3, 8, 12, 30, tzinfo=UTC))
    person = Reader(1, shifts=(overnight, day_shift, fixed))
    since = datetime(2025, 3, 6, tzinfo=UTC)  # spans the US change to summer time (9 March)
    until = since + timedelta(days=5)
    spans = duty(person, since, until)
    assert all(a < b for (_, a), (b, _) in zip(spans, spans[1:], strict=False))  # merged
    minute = since
    while minute < until:
        inside = any(begin <= minute < end for begin, end in spans)
        assert inside == person.on_shift(minute), minute
        minute += timedelta(minutes=1)
    assert shift_intervals(fixed, since, until) == [(fixed.start, fixed.end)]


def test_percentiles_interpolate_between_order_statistics() -> None:
    assert percentile([], 50) is None
    assert percentile([4.0], 99) == 4.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([float(i) for i in range(101)], 90) == 90.0
    assert percentile([0.0, 10.0], 99) == pytest.approx(9.9)


def test_the_report_holds_both_policies_keyed_by_tier() -> None:
    scenario = day(
        arrival("routine", 0),
        arrival("stroke", 5, Priority.STROKE),
        readers=(reader(1, start=10),),
    )
    runs = both(scenario, drain_hours=1)
    out = report(figures(runs[Policy.ENGINE]), figures(runs[Policy.FIFO]))
    tiers = {p.value for p in Priority}
    for key in ("sla_breach_rate", "baseline_sla_breach_rate", "p90_tat_minutes"):
        assert set(out[key]) == tiers  # type: ignore[arg-type]
    assert out["sla_breach_rate"]["stroke"] == 0.0  # type: ignore[index]
    assert out["baseline_sla_breach_rate"]["stroke"] == 1.0  # type: ignore[index]
    assert out["p90_tat_minutes"]["trauma"] is None  # type: ignore[index]
    assert out["overall_sla_breach_rate"] == 0.0
    assert out["baseline_overall_sla_breach_rate"] == 0.5
    assert out["breach_rate_ratio"] == 0.0


def test_a_preliminary_read_goes_to_a_reader_who_does_them() -> None:
    prelim = arrival("p", 0, read_kind=ReadKind.PRELIMINARY, prior_readers=frozenset({2}))
    finals_only = reader(1, read_kinds=frozenset({ReadKind.FINAL}))
    for run in both(day(prelim, readers=(finals_only, reader(2))), drain_hours=1).values():
        assert [o.reader for o in run.outcomes] == [2]


def test_a_reader_still_reading_when_the_next_shift_starts_stays_signed_in() -> None:
    # Shifts 0:00-0:30 and 0:35-1:00; the first read lasts until 0:40.
    shifts = (Shift(at(0), at(30)), Shift(at(35), at(60)))
    scenario = day(
        arrival("long", 0, rvu=4.0), arrival("next", 50), readers=(reader(1, shifts=shifts),)
    )
    for policy, run in both(scenario, drain_hours=1).items():
        assert done_minutes(run) == pytest.approx({"long": 40, "next": 60}), policy
        assert run.on_duty[1] == 60 * 60  # signed in from 0:00 until the last read


def test_each_study_says_whether_anyone_qualified_was_on_shift_in_time() -> None:
    scenario = day(
        arrival("ok", 0),
        arrival("texas", 1, jurisdiction="US-TX"),  # nobody on the roster is licensed there
        arrival("stat", 2, Priority.STAT),  # 60 minutes; the reader comes at 2:00
        readers=(reader(1, start=120),),
    )
    for policy, run in both(scenario, drain_hours=1).items():
        cover = {o.uid: o.cover for o in run.outcomes}
        assert cover == {"ok": Cover.ON_DUTY, "texas": Cover.NOBODY, "stat": Cover.OFF_DUTY}
        assert run.unreadable == {"CT general, final read, facility 7 (US-TX)": 1}, policy
    engine, fifo = (figures(r) for r in both(scenario, drain_hours=1).values())
    out = report(engine, fifo)
    tiers = {p.value for p in Priority}
    for key in ("breaches", "baseline_breaches"):
        breaches = out[key]
        assert isinstance(breaches, dict) and set(breaches) == tiers
        assert breaches["stat"] == {"on_duty": 0, "off_duty": 1, "nobody_qualified": 0}
        assert breaches["routine"] == {"on_duty": 0, "off_duty": 0, "nobody_qualified": 1}
    assert out["unread_reasons"] == {"on_duty": 0, "off_duty": 0, "nobody_qualified": 1}
    assert out["unreadable"] == {"CT general, final read, facility 7 (US-TX)": 1}
    # Of the studies someone qualified was on shift for, none breached.
    assert out["on_duty_sla_breach_rate"]["routine"] == 0.0  # type: ignore[index]
    assert out["on_duty_sla_breach_rate"]["stat"] is None  # type: ignore[index]
    assert out["overall_on_duty_sla_breach_rate"] == 0.0


def test_the_report_says_which_tiers_do_worse_than_fifo() -> None:
    # Routine first under FIFO, the stroke first under the engine (the first test's day).
    scenario = day(
        arrival("routine", 0),
        arrival("stroke", 5, Priority.STROKE),
        readers=(reader(1, start=10),),
    )
    runs = both(scenario, drain_hours=1)
    out = report(figures(runs[Policy.ENGINE]), figures(runs[Policy.FIFO]))
    targets = out["targets"]
    assert isinstance(targets, dict)
    worse = targets["not_worse_than_fifo"]
    assert worse["stroke"] == {"breach": True, "p90": True}
    assert worse["routine"] == {"breach": True, "p90": False}  # 30 against 20 minutes
    assert worse["trauma"] == {"breach": True, "p90": True}  # no study: nothing worse
    assert targets["stroke_breach_rate_met"] is True
    assert targets["strict_breach_rate_ratio_met"] is True  # 0 breaches against 1


def test_the_engine_first_reads_what_nobody_may_read_after_the_reader_leaves() -> None:
    # Reader 1 (neuro) is on from 0:01 to 0:09; reader 2 (no neuro) comes at 0:20. Waiting
    # for reader 1: a STAT anyone may read and an urgent neuro study only reader 1 may read.
    # A tier-first queue would read the STAT and leave the urgent study to breach; the
    # engine reads the urgent one first (it is due at 0:09) and the STAT waits for reader 2.
    scenario = day(
        arrival("stat", 0, Priority.STAT),
        arrival("neuro", 0, Priority.URGENT, subspecialty="neuro", rvu=2.0),
        readers=(reader(1, start=1, end=9), reader(2, start=20, subspecialties=frozenset())),
    )
    run = simulate(scenario, RULES, Policy.ENGINE, drain_hours=1)
    outcomes = {o.uid: o for o in run.outcomes}
    assert outcomes["neuro"].reader == 1 and done_minutes(run)["neuro"] == pytest.approx(21)
    assert outcomes["stat"].reader == 2 and done_minutes(run)["stat"] == pytest.approx(30)
    assert not any(o.breached for o in run.outcomes)


def test_progress_reports_reads_and_the_simulated_clock() -> None:
    scenario = day(*(arrival(f"s{i}", 60 * i) for i in range(3)), readers=(reader(1),))
    calls: list[tuple[int, int, float]] = []
    simulate(scenario, RULES, Policy.ENGINE, drain_hours=1, progress=lambda *a: calls.append(a))
    assert calls[0] == (0, 3, 0.0)
    hours = [h for _, _, h in calls]
    assert hours == sorted(hours) and hours[-1] == pytest.approx(2 + 10 / 60)  # last read done
    assert calls[-1][:2] == (3, 3)
