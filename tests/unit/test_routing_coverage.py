"""Duty spans and when a study is due (workflow/coverage.py, through the Roster)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time

from tests.unit.test_routing_support import NOW, make_reader, make_study, minutes

from telerad.workflow.coverage import LATE
from telerad.workflow.model import Priority, Shift, WeeklyShift
from telerad.workflow.routing import Roster


def _roster(*shifts: Shift | WeeklyShift) -> Roster:
    return Roster([make_reader(1, shifts=shifts)])


def test_a_readers_shift_end_is_known_on_shift_and_none_off_it() -> None:
    night = WeeklyShift(frozenset(range(7)), time(22), time(6), "UTC")  # overnight
    roster = _roster(night)
    reader = roster.get(1)
    at_23 = datetime(2025, 3, 4, 23, 0, tzinfo=UTC)
    assert roster.on_duty_until(reader, at_23) == datetime(2025, 3, 5, 6, 0, tzinfo=UTC)
    assert roster.on_duty_until(reader, datetime(2025, 3, 5, 5, 59, tzinfo=UTC)) == datetime(
        2025, 3, 5, 6, 0, tzinfo=UTC
    )
    assert roster.on_duty_until(reader, datetime(2025, 3, 5, 6, 0, tzinfo=UTC)) is None
    assert roster.on_duty_until(reader, datetime(2025, 3, 5, 12, 0, tzinfo=UTC)) is None
    # Days later, beyond the first window of spans.
    assert roster.on_duty_until(reader, datetime(2025, 3, 20, 1, 0, tzinfo=UTC)) == datetime(
        2025, 3, 20, 6, 0, tzinfo=UTC
    )


def test_a_study_covered_until_its_deadline_is_due_at_its_deadline() -> None:
    roster = _roster(Shift(NOW - minutes(60), NOW + minutes(600)))
    study = make_study("s", Priority.URGENT)  # 240 minutes
    assert roster.due(study) == study.deadline


def test_when_cover_ends_before_the_deadline_the_study_is_due_then() -> None:
    roster = _roster(Shift(NOW - minutes(60), NOW + minutes(90)))
    study = make_study("s", Priority.URGENT)
    assert roster.due(study) == NOW + minutes(90)


def test_someone_qualified_back_in_time_keeps_the_deadline() -> None:
    # Cover ends at +90 and starts again at +120: the study can still be read then.
    roster = Roster(
        [
            make_reader(1, shifts=(Shift(NOW - minutes(60), NOW + minutes(90)),)),
            make_reader(2, shifts=(Shift(NOW + minutes(120), NOW + minutes(600)),)),
        ]
    )
    study = make_study("s", Priority.URGENT)
    assert roster.due(study) == study.deadline


def test_a_shift_starting_just_before_the_deadline_is_no_cover() -> None:
    # Back 30 minutes before an urgent deadline (less than LATE): whoever comes has a queue.
    assert minutes(30) < LATE
    late = Shift(NOW + minutes(210), NOW + minutes(600))
    roster = _roster(Shift(NOW - minutes(60), NOW + minutes(90)), late)
    study = make_study("s", Priority.URGENT)
    assert roster.due(study) == NOW + minutes(90)
    # A stroke's margin is a quarter of its 20 minutes.
    roster = _roster(
        Shift(NOW - minutes(60), NOW + minutes(5)), Shift(NOW + minutes(12), NOW + minutes(60))
    )
    assert roster.due(make_study("t", Priority.STROKE)) == NOW + minutes(20)


def test_nobody_on_duty_before_the_deadline_leaves_the_deadline() -> None:
    roster = _roster(Shift(NOW + minutes(600), NOW + minutes(900)))
    study = make_study("s", Priority.URGENT)
    assert roster.due(study) == study.deadline
    # Nor does cover that ended before the study was ready.
    roster = _roster(Shift(NOW - minutes(120), NOW - minutes(60)))
    assert roster.due(study) == study.deadline


def test_only_readers_qualified_for_the_study_cover_it() -> None:
    roster = Roster(
        [
            make_reader(1, shifts=(Shift(NOW - minutes(60), NOW + minutes(90)),)),
            make_reader(2, licences=frozenset({"US-TX"}), shifts=(Shift(NOW, NOW + minutes(600)),)),
        ]
    )
    assert roster.due(make_study("s", Priority.URGENT)) == NOW + minutes(90)


def test_new_shifts_change_when_studies_are_due() -> None:
    roster = _roster(Shift(NOW - minutes(60), NOW + minutes(90)))
    study = make_study("s", Priority.URGENT)
    assert roster.due(study) == NOW + minutes(90)
    longer = replace(roster.get(1), shifts=(Shift(NOW - minutes(60), NOW + minutes(600)),))
    roster.put(longer)
    assert roster.due(study) == study.deadline
    assert roster.on_duty_until(roster.get(1), NOW) == NOW + minutes(600)
