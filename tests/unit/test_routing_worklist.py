"""The worklist aggregate: claim lock, hand-backs, reassignment, escalation, events."""

from __future__ import annotations

import pytest
from tests.unit.test_routing_support import NOW, RULES, make_reader, make_study, minutes

from telerad.workflow.model import Priority, Shift
from telerad.workflow.routing import Roster
from telerad.workflow.rules import EscalationAction, Rules
from telerad.workflow.worklist import (
    Assigned,
    Breached,
    Claimed,
    ClaimError,
    Completed,
    Escalated,
    Reassigned,
    Worklist,
    WorklistError,
)


def _worklist(*readers: int, rules: Rules = RULES) -> Worklist:
    return Worklist(rules, Roster([make_reader(r) for r in readers]))


def test_a_new_study_is_pushed_and_explained() -> None:
    worklist = _worklist(1)
    decision = worklist.add(make_study("s1"), NOW)
    assert decision is not None and decision.reader is not None
    assert worklist.holder("s1") == 1
    assert worklist.studies["s1"].assigned_to == 1
    assert worklist.workload.load(1) == 1.0
    (event,) = worklist.events
    assert isinstance(event, Assigned) and event.reader_id == 1
    assert event.why == decision.explain()
    with pytest.raises(WorklistError, match="already on the worklist"):
        worklist.add(make_study("s1"), NOW)


def test_claim_lock_one_reader_per_study() -> None:
    worklist = _worklist(1, 2)
    worklist.add(make_study("s1"), NOW)
    with pytest.raises(ClaimError, match="held by reader 1"):
        worklist.claim("s1", 2, NOW)
    worklist.claim("s1", 1, NOW + minutes(1))
    worklist.claim("s1", 1, NOW + minutes(2))  # opening it again changes nothing
    claims = [e for e in worklist.events if isinstance(e, Claimed)]
    assert claims == [Claimed("s1", 1, NOW + minutes(1))]
    assert worklist.holds["s1"].claimed_at == NOW + minutes(1)
    with pytest.raises(WorklistError, match="not on the worklist"):
        worklist.claim("nope", 1, NOW)


def test_push_only_refuses_a_pull_and_the_pull_pool_allows_it() -> None:
    worklist = _worklist(1)
    worklist.roster.set_signed_in(1, False)
    worklist.add(make_study("s1"), NOW)  # nobody signed in: it waits
    assert worklist.holder("s1") is None
    with pytest.raises(ClaimError, match="pushed, not in the pull pool"):
        worklist.claim("s1", 1, NOW)

    pool = _worklist(1, 2, rules=Rules(pull_pool=True))
    assert pool.add(make_study("r1"), NOW) is None  # routine: waits in the pool
    assert pool.holder("r1") is None
    pool.add(make_study("st1", Priority.STAT), NOW)  # other tiers are still pushed
    assert pool.holder("st1") == 1
    pool.claim("r1", 2, NOW)
    assert pool.holder("r1") == 2
    assert Claimed("r1", 2, NOW, pulled=True) in pool.events
    with pytest.raises(ClaimError, match="held by reader 2"):
        pool.claim("r1", 1, NOW)


def test_a_pull_is_checked_for_eligibility_and_cap() -> None:
    rules = Rules(pull_pool=True, queue_cap_rvu=2.0)
    worklist = Worklist(rules, Roster([make_reader(1), make_reader(2, licences=frozenset())]))
    worklist.add(make_study("r1", rvu=1.5), NOW)
    worklist.add(make_study("r2", rvu=1.0), NOW)
    with pytest.raises(ClaimError, match="reader 2 may not read r1: not licensed in US-CA"):
        worklist.claim("r1", 2, NOW)
    worklist.claim("r1", 1, NOW)
    with pytest.raises(ClaimError, match="at its cap of 2 RVU"):
        worklist.claim("r2", 1, NOW)


def test_release_goes_to_someone_else() -> None:
    worklist = _worklist(1, 2)
    worklist.add(make_study("s1"), NOW)
    with pytest.raises(WorklistError, match="not held by reader 2"):
        worklist.release("s1", 2, NOW)
    decision = worklist.release("s1", 1, NOW)
    assert decision is not None and worklist.holder("s1") == 2
    assert worklist.workload.load(1) == 0.0 and worklist.workload.load(2) == 1.0
    assert Reassigned("s1", 1, 2, "released by reader 1", NOW) in worklist.events


def test_complete_frees_room_for_waiting_studies() -> None:
    rules = Rules(queue_cap_rvu=1.0)
    worklist = Worklist(rules, Roster([make_reader(1)]))
    worklist.add(make_study("s1"), NOW)
    worklist.add(make_study("s2"), NOW)
    assert worklist.holder("s2") is None  # over the cap: waits
    worklist.complete("s1", 1, NOW + minutes(5))
    assert "s1" not in worklist.studies
    assert Completed("s1", 1, NOW + minutes(5)) in worklist.events
    assert worklist.holder("s2") == 1
    with pytest.raises(WorklistError, match="not on the worklist"):
        worklist.complete("s1", 1, NOW)


def test_sign_out_moves_everything_the_reader_holds() -> None:
    worklist = _worklist(1, 2)
    worklist.roster.set_signed_in(2, False)
    worklist.add(make_study("s1"), NOW)
    worklist.add(make_study("s2", Priority.STROKE), NOW)
    worklist.claim("s1", 1, NOW)
    worklist.roster.set_signed_in(2, True)
    worklist.reassign_on_sign_out(1, NOW + minutes(1))
    assert worklist.holder("s1") == 2 and worklist.holder("s2") == 2
    moved = [e for e in worklist.events if isinstance(e, Reassigned)]
    assert [e.uid for e in moved] == ["s2", "s1"]  # the stroke first
    assert all(e.reason == "reader 1 signed out" for e in moved)
    assert worklist.workload.load(1) == 0.0


def test_sign_out_with_nobody_left_puts_studies_back() -> None:
    worklist = _worklist(1)
    worklist.add(make_study("s1"), NOW)
    worklist.reassign_on_sign_out(1, NOW)
    assert worklist.holder("s1") is None and "s1" in worklist.pending
    assert Reassigned("s1", 1, None, "reader 1 signed out", NOW) in worklist.events
    worklist.sign_in(1, NOW + minutes(1))
    assert worklist.holder("s1") == 1


def test_stale_studies_move_after_the_timeouts() -> None:
    # default timeouts: a stat study unopened 10 min, opened but unreported 45 min
    worklist = _worklist(1, 2)
    worklist.add(make_study("unopened", Priority.STAT), NOW)
    worklist.add(make_study("opened", Priority.STAT), NOW)
    first = worklist.holder("unopened")
    opened_by = worklist.holder("opened")
    assert first is not None and opened_by is not None
    worklist.claim("opened", opened_by, NOW)
    assert worklist.reassign_stale(NOW + minutes(9)) == []
    moved = worklist.reassign_stale(NOW + minutes(10))
    assert [d.study.uid for d in moved] == ["unopened"]
    assert worklist.holder("unopened") not in (first, None)
    assert worklist.holder("opened") == opened_by
    worklist.reassign_stale(NOW + minutes(45))
    assert worklist.holder("opened") not in (opened_by, None)
    reasons = [e.reason for e in worklist.events if isinstance(e, Reassigned)]
    assert reasons[0] == f"not opened by reader {first} within 10 min"
    assert f"opened but not reported by reader {opened_by} within 45 min" in reasons


def test_a_stale_study_stays_when_nobody_else_fits() -> None:
    worklist = _worklist(1)
    worklist.add(make_study("s1", Priority.STAT), NOW)
    assert worklist.reassign_stale(NOW + minutes(30)) == []
    assert worklist.holder("s1") == 1
    assert not [e for e in worklist.events if isinstance(e, Reassigned)]


def test_follow_the_sun_hands_over_unopened_studies_at_the_end_of_a_shift() -> None:
    day = Shift(NOW - minutes(60), NOW + minutes(30))
    night = Shift(NOW + minutes(30), NOW + minutes(600))
    roster = Roster([make_reader(1, shifts=(day,)), make_reader(2, shifts=(night,))])
    worklist = Worklist(RULES, roster)
    worklist.add(make_study("unopened"), NOW)
    worklist.add(make_study("opened"), NOW)
    worklist.claim("opened", 1, NOW)
    worklist.tick(NOW + minutes(30))
    assert worklist.holder("unopened") == 2
    assert worklist.holder("opened") == 1  # being read: not taken away
    assert Reassigned("unopened", 1, 2, "reader 1: not on shift", NOW + minutes(30)) in (
        worklist.events
    )


def test_escalation_ladder() -> None:
    # urgent: 240 min; widen at 120, alert at 192, breach at 240
    rules = Rules(queue_cap_rvu=1.0)
    worklist = Worklist(rules, Roster([make_reader(1)]))
    worklist.add(make_study("held", Priority.URGENT, rvu=1.0), NOW)
    worklist.add(make_study("waiting", Priority.URGENT, rvu=1.0), NOW)
    assert worklist.holder("waiting") is None  # reader 1 is at the cap

    def steps() -> list[tuple[str, str]]:
        out = []
        for e in worklist.events:
            if isinstance(e, Escalated):
                out.append((e.uid, str(e.action)))
            elif isinstance(e, Breached):
                out.append((e.uid, "breach"))
        return out

    worklist.tick(NOW + minutes(119))
    assert steps() == [] and worklist.holder("waiting") is None
    worklist.tick(NOW + minutes(120))
    assert steps() == [("waiting", "widen-pool")]  # the held study needs no wider pool
    assert worklist.holder("waiting") == 1  # over the cap, but the pool is wider now
    worklist.claim("held", 1, NOW + minutes(150))
    worklist.claim("waiting", 1, NOW + minutes(150))
    worklist.tick(NOW + minutes(192))
    assert steps()[1:] == [("held", "alert-supervisor"), ("waiting", "alert-supervisor")]
    worklist.tick(NOW + minutes(200))
    assert len(steps()) == 3  # each step once
    worklist.tick(NOW + minutes(240))
    assert steps()[3:] == [("held", "breach"), ("waiting", "breach")]
    alert = next(e for e in worklist.events if isinstance(e, Escalated) and e.uid == "held"
                 and e.action is EscalationAction.ALERT_SUPERVISOR)  # fmt: skip
    assert alert.reader_id == 1


def test_the_pull_pool_is_pushed_once_the_pool_widens() -> None:
    worklist = _worklist(1, rules=Rules(pull_pool=True))
    worklist.add(make_study("r1"), NOW)  # routine: 1440 min, widened at 720
    worklist.tick(NOW + minutes(719))
    assert worklist.holder("r1") is None
    worklist.tick(NOW + minutes(720))
    assert worklist.holder("r1") == 1


def test_new_rules_apply_to_the_next_decision() -> None:
    worklist = _worklist(1, rules=Rules(queue_cap_rvu=1.0))
    worklist.add(make_study("s1"), NOW)
    worklist.add(make_study("s2"), NOW)
    assert worklist.holder("s2") is None
    worklist.set_rules(Rules(queue_cap_rvu=5.0))
    worklist.tick(NOW + minutes(1))
    assert worklist.holder("s2") == 1


def test_a_waiting_stroke_goes_out_with_the_next_command() -> None:
    later = Shift(NOW + minutes(10), NOW + minutes(600))
    worklist = Worklist(RULES, Roster([make_reader(1, shifts=(later,))]))
    worklist.add(make_study("stroke", Priority.STROKE), NOW)
    assert worklist.holder("stroke") is None  # nobody on shift yet
    worklist.add(make_study("routine", ready_at=NOW + minutes(10)), NOW + minutes(10))
    assert worklist.holder("stroke") == 1
    order = [e.uid for e in worklist.events if isinstance(e, Assigned)]
    assert order == ["stroke", "routine"]  # the most urgent first


def test_a_stale_study_moves_only_to_a_reader_who_would_open_it_sooner() -> None:
    # Reader 1 is reading a long study with a STAT queued behind it; reader 2 is as busy.
    worklist = _worklist(1, 2)
    worklist.add(make_study("long-1", Priority.STAT, rvu=3.0), NOW)
    worklist.add(make_study("long-2", Priority.STAT, rvu=6.0), NOW)
    holders = {worklist.holder("long-1"), worklist.holder("long-2")}
    assert holders == {1, 2}
    for uid in ("long-1", "long-2"):
        worklist.claim(uid, worklist.holder(uid) or 0, NOW)
    first = worklist.holder("long-1")
    worklist.add(make_study("queued", Priority.STAT), NOW)
    assert worklist.holder("queued") == first  # the one who finishes first (18 min)
    # Ten minutes on it is stale, but the other reader would open it later still: it stays.
    assert worklist.reassign_stale(NOW + minutes(10)) == []
    assert worklist.holder("queued") == first
    # The other reader finishes: they would open it now, so it moves at the next check.
    other = 2 if first == 1 else 1
    worklist.complete("long-2" if other == 2 else "long-1", other, NOW + minutes(11))
    worklist.tick(NOW + minutes(11))
    assert worklist.holder("queued") == other


def test_a_reader_who_signs_in_takes_over_studies_they_would_open_sooner() -> None:
    worklist = _worklist(1, 2)
    worklist.roster.set_signed_in(2, False)
    for uid in ("a", "b", "c"):
        worklist.add(make_study(uid, Priority.STAT), NOW)
    assert [worklist.holder(u) for u in "abc"] == [1, 1, 1]
    worklist.claim("a", 1, NOW)
    worklist.sign_in(2, NOW + minutes(1))
    # Reader 1 reads "a", then "b", then "c": reader 2, free, takes "b" at once; "c"
    # would then wait as long with either, and stays.
    assert [worklist.holder(u) for u in "abc"] == [1, 2, 1]
    moved = [e for e in worklist.events if isinstance(e, Reassigned)]
    assert [(e.uid, e.from_reader, e.to_reader, e.reason) for e in moved] == [
        ("b", 1, 2, "reader 2 signed in")
    ]
