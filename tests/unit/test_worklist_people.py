"""The worklist and the people around it: readers who go idle, supervisors who assign,
studies nobody may read (issue 9, faults 2-4)."""

from __future__ import annotations

import pytest
from tests.unit.test_routing_support import NOW, RULES, make_reader, make_study, minutes

from telerad.workflow.model import Priority
from telerad.workflow.routing import Roster
from telerad.workflow.worklist import (
    Assigned,
    NoReader,
    Reassigned,
    Unattended,
    Worklist,
    WorklistError,
)


def _worklist(*readers: int) -> Worklist:
    return Worklist(RULES, Roster([make_reader(r) for r in readers]))


def test_an_idle_reader_keeps_a_study_nobody_else_may_read() -> None:
    """A stroke MR was reassigned to nobody when the session expired and came back
    only when its reader signed in again, 103 minutes overdue."""
    worklist = _worklist(1)
    worklist.add(make_study("s1", Priority.STROKE, modality="MR"), NOW)
    worklist.claim("s1", 1, NOW + minutes(1))
    worklist.events.clear()
    worklist.reader_away(1, NOW + minutes(31))
    assert worklist.holder("s1") == 1  # stays with them
    assert worklist.holds["s1"].claimed_at == NOW + minutes(1)
    [event] = worklist.events
    assert isinstance(event, Unattended) and event.reader_id == 1
    assert "away" in event.reason and "nobody else" in event.reason
    # Away readers get nothing new.
    worklist.add(make_study("s2", Priority.ROUTINE), NOW + minutes(32))
    assert worklist.holder("s2") is None
    # Back: they still hold it, and the waiting study comes to them.
    worklist.sign_in(1, NOW + minutes(33))
    assert worklist.holder("s1") == 1 and worklist.holder("s2") == 1
    assert 1 not in worklist.away


def test_an_idle_readers_studies_go_to_another_eligible_reader() -> None:
    worklist = _worklist(1, 2)
    worklist.roster.set_signed_in(2, False)
    worklist.add(make_study("s1", Priority.STAT), NOW)
    assert worklist.holder("s1") == 1
    worklist.reader_away(1, NOW + minutes(5))
    assert worklist.holder("s1") == 1  # reader 2 is signed out: nobody else yet
    worklist.sign_in(2, NOW + minutes(6))
    worklist.tick(NOW + minutes(7))  # tried again on every tick
    assert worklist.holder("s1") == 2
    moved = [e for e in worklist.events if isinstance(e, Reassigned)]
    assert moved[-1].from_reader == 1 and moved[-1].to_reader == 2
    assert "away (session idle)" in moved[-1].reason


def test_an_explicit_sign_out_still_hands_everything_on_at_once() -> None:
    worklist = _worklist(1)
    worklist.add(make_study("s1", Priority.STAT), NOW)
    worklist.reassign_on_sign_out(1, NOW + minutes(1))
    assert worklist.holder("s1") is None  # back on the worklist: nobody else
    assert 1 not in worklist.away


def test_the_off_shift_hand_over_leaves_an_away_readers_studies_alone() -> None:
    worklist = _worklist(1)
    worklist.add(make_study("s1"), NOW)  # not opened
    worklist.reader_away(1, NOW + minutes(1))
    worklist.tick(NOW + minutes(2))
    assert worklist.holder("s1") == 1


def test_a_study_nobody_on_the_roster_may_read_says_so_at_once() -> None:
    worklist = _worklist(1)
    worklist.add(make_study("u1", Priority.ROUTINE, modality="US"), NOW)  # nobody reads US
    [event] = [e for e in worklist.events if isinstance(e, NoReader)]
    assert event.uid == "u1" and not event.anyone_qualified
    assert "nobody on the roster" in event.reason and "reading US" in event.reason


def test_a_critical_study_nobody_may_read_now_says_so_at_once() -> None:
    worklist = _worklist(1)
    worklist.roster.set_signed_in(1, False)
    worklist.add(make_study("k1", Priority.STROKE), NOW)
    worklist.add(make_study("r1", Priority.ROUTINE), NOW)  # routine: the ladder tells
    events = [e for e in worklist.events if isinstance(e, NoReader)]
    assert [(e.uid, e.anyone_qualified) for e in events] == [("k1", True)]
    assert "signed out" in events[0].reason


def test_a_supervisor_assigns_only_to_an_eligible_reader() -> None:
    worklist = Worklist(
        RULES, Roster([make_reader(1), make_reader(2), make_reader(3, licences=frozenset())])
    )
    worklist.add(make_study("s1", Priority.URGENT), NOW)
    first = worklist.holder("s1")
    other = 2 if first == 1 else 1
    candidates = dict((r.user_id, reasons) for r, reasons in worklist.candidates("s1", NOW))
    assert candidates[1] == candidates[2] == ()
    assert candidates[3] == ("not licensed in US-CA",)
    with pytest.raises(WorklistError, match="not licensed in US-CA"):
        worklist.assign_by_hand("s1", 3, NOW, "supervisor root")
    with pytest.raises(WorklistError, match="already holds"):
        worklist.assign_by_hand("s1", first or 0, NOW, "supervisor root")
    decision = worklist.assign_by_hand("s1", other, NOW + minutes(1), "supervisor root")
    assert worklist.holder("s1") == other
    assert "assigned by supervisor root" in decision.explain()
    assert Reassigned(
        "s1", first or 0, other, "reassigned by supervisor root", NOW + minutes(1)
    ) in (worklist.events)
    assert worklist.workload.load(other) == 1.0 and worklist.workload.load(first or 0) == 0.0
    [given] = [e for e in worklist.events if isinstance(e, Assigned) and e.reader_id == other]
    assert "assigned by supervisor root" in given.why


def test_a_supervisor_assigns_a_waiting_study() -> None:
    worklist = _worklist(1)
    worklist.add(make_study("u1", modality="US"), NOW)
    worklist.roster.put(make_reader(1, modalities=frozenset({"CT", "US"})))
    worklist.assign_by_hand("u1", 1, NOW + minutes(2), "supervisor root")
    assert worklist.holder("u1") == 1 and "u1" not in worklist.pending
