"""Traces as CSV: a generated day written and read back is the same day; bad rows are named."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from telerad.simulation.replay import Policy, simulate
from telerad.simulation.scenario import generate
from telerad.simulation.trace import (
    TraceError,
    arrivals_csv,
    load_scenario,
    parse_arrivals,
    parse_roster,
    roster_csv,
)
from telerad.workflow.model import Priority, ReadKind, Shift, WeeklyShift
from telerad.workflow.rules import Rules

RULES = Rules()
ARRIVALS = """uid,facility_id,jurisdiction,ready_at,priority,modality,rvu
a1,7,US-CA,2025-03-04T08:00:00+00:00,stroke,CT,0.85
a2,7,US-CA,2025-03-04T08:01:00Z,routine,cr,0.22
"""
ROSTER = """user_id,licences,facility_ids,modalities,shifts
1,US-CA US-NY,7 8,CT CR,mon-fri 08:00-17:00 America/Los_Angeles
2,US-CA,7,CT,daily 22:00-07:00 Australia/Sydney; 2025-03-04T08:00Z/2025-03-04T12:00Z
"""


def test_a_generated_day_round_trips_and_replays_the_same() -> None:
    day = generate(3, 300, 10)
    arrivals_text = arrivals_csv(day, RULES)
    roster_text = roster_csv(day.readers)
    loaded = load_scenario(arrivals_text, roster_text)
    rules = day.rules(RULES)
    assert [a.study(rules) for a in day.arrivals] == [a.study(RULES) for a in loaded.arrivals]
    assert [a.effort for a in day.arrivals] == [a.effort for a in loaded.arrivals]
    assert loaded.readers == day.readers
    assert loaded.start == day.start
    # Written again, the files are the same bytes.
    assert arrivals_csv(loaded, RULES) == arrivals_text
    assert roster_csv(loaded.readers) == roster_text
    for policy in Policy:
        original = simulate(day, RULES, policy, drain_hours=4).outcomes
        replayed = simulate(loaded, RULES, policy, drain_hours=4).outcomes
        assert original == replayed


def test_minimal_columns_take_defaults() -> None:
    first, second = parse_arrivals(ARRIVALS)
    assert first.priority is Priority.STROKE and first.deadline is None and first.effort == 1.0
    assert second.modality == "CR" and second.read_kind is ReadKind.FINAL
    assert second.ready_at == datetime(2025, 3, 4, 8, 1, tzinfo=UTC)
    one, two = parse_roster(ROSTER)
    assert one.licences == {"US-CA", "US-NY"} and one.facility_ids == {7, 8}
    assert one.shifts == (
        WeeklyShift(frozenset(range(5)), *_clock("08:00", "17:00"), "America/Los_Angeles"),
    )
    assert one.rvu_per_hour == 10.0 and one.read_kinds == frozenset(ReadKind)
    assert isinstance(two.shifts[1], Shift) and two.shifts[0].days == frozenset(range(7))


def _clock(*texts: str) -> tuple[object, ...]:
    return tuple(datetime.strptime(t, "%H:%M").time() for t in texts)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "arrivals.csv: empty file"),
        ("uid,facility_id\n", "line 1: missing column(s) jurisdiction, modality, priority"),
        (ARRIVALS.replace("rvu\n", "rvu,colour\n", 1), "line 1: unknown column(s) colour"),
        (ARRIVALS.replace("stroke", "asap"), "line 2: priority: unknown value 'asap'; known: str"),
        (ARRIVALS.replace(",7,", ",seven,", 1), "line 2: facility_id: not a whole number: 'seven'"),
        (ARRIVALS.replace("08:01:00Z", "08:01:00"), "line 3: ready_at: needs a UTC offset"),
        (ARRIVALS.replace("0.22", "-1"), "line 3: rvu: must be ≥ 0, got '-1'"),
        (ARRIVALS.replace("0.22", ""), "line 3: rvu: required, but blank"),
        (ARRIVALS.replace("a2,", "a1,"), "line 3: uid: a1 is already on line 2"),
        (ARRIVALS + "a3,7,US-CA\n", "line 4: ready_at: required, but blank"),
        (ARRIVALS + "a3,7,US-CA,2025-03-04T08:00Z,stat,CT,1,x\n", "line 4: more cells"),
        (
            "uid,facility_id,jurisdiction,ready_at,priority,modality,rvu,deadline\n"
            "a,7,US-CA,2025-03-04T08:00Z,stat,CT,1,2025-03-04T07:00Z\n",
            "line 2: deadline: 2025-03-04T07:00Z is not after ready_at",
        ),
    ],
)
def test_bad_arrivals_name_the_line_and_column(text: str, message: str) -> None:
    with pytest.raises(TraceError, match=_literal(message)):
        parse_arrivals(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (ROSTER.replace("mon-fri", "weekdays"), "line 2: shifts: unknown days 'weekdays'"),
        (ROSTER.replace("America/Los_Angeles", "Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
        (
            ROSTER.replace("08:00-17:00", "8am-5pm"),
            "line 2: shifts: not a time of day HH:MM: '8am'",
        ),
        (ROSTER.replace("2,US-CA,7", "1,US-CA,7"), "line 3: user_id: 1 is already on line 2"),
        (
            ROSTER.replace("12:00Z", "07:00Z"),
            "line 3: shifts: '2025-03-04T08:00Z/2025-03-04T07:00Z': shift ends",
        ),
        (
            ROSTER.replace(",shifts", ",shifts,rvu_per_hour")
            .replace("\n1,", "\n1,")
            .replace("Los_Angeles\n", "Los_Angeles,0\n"),
            "line 2: rvu_per_hour: must be > 0, got '0'",
        ),
    ],
)
def test_bad_roster_rows_name_the_line_and_column(text: str, message: str) -> None:
    with pytest.raises(TraceError, match=_literal(message)):
        parse_roster(text, "roster.csv")


def test_a_trace_without_arrivals_is_refused() -> None:
    header = ARRIVALS.splitlines()[0] + "\n"
    with pytest.raises(TraceError, match="my.csv: no arrivals"):
        load_scenario(header, ROSTER, "my.csv")


def _literal(text: str) -> str:
    import re

    return re.escape(text)
