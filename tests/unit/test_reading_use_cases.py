"""The reading worklist's use cases over fake stores (the fast tier of
tests/integration/test_reading_service.py): routing with its reasons, sign-in,
away and sign-out, holds, withdraw and reopen, alerts, assignment by hand,
TAT and SLA, and a restart — every change goes through the store's port."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from tests.fakes.world import World, world

from telerad.domain.audit import EventID
from telerad.domain.identity import Role, User
from telerad.domain.readers import ReaderProfile, weekly_rule
from telerad.domain.reading_entries import AlertKind
from telerad.services.access_audit import Actor
from telerad.services.reading import ReadingService, WorklistError
from telerad.workflow.model import Priority, ReadingStudy

SUPERVISOR = Actor("boss", "network-admin", True, "10.0.0.1")


@dataclass
class Net:
    """A reading network: North (ana reads CT and MR; ben CT) and South (ben only)."""

    w: World
    north: int
    south: int
    ana: User
    ben: User

    @property
    def reading(self) -> ReadingService:
        return self.w.reading

    def study(
        self,
        uid: str,
        *,
        modality: str = "CT",
        priority: Priority = Priority.ROUTINE,
        facility_id: int | None = None,
    ) -> ReadingStudy:
        fid = self.north if facility_id is None else facility_id
        now = self.w.clock()
        return ReadingStudy(
            uid=uid,
            facility_id=fid,
            jurisdiction="US-CA",
            modality=modality,
            priority=priority,
            ready_at=now,
            deadline=self.reading.deadline(fid, priority, now),
        )

    def sign_in(self, user: User) -> str:
        return self.w.auth.start_session(user)

    def kinds(self, uid: str) -> list[str]:
        history = self.reading.store.history(uid)
        assert history is not None
        return [e.kind for e in history.events]


def _radiologist(w: World, name: str, facility_ids: list[int], modalities: set[str]) -> User:
    user = w.auth.create_user(name, Role.RADIOLOGIST, display_name=f"Dr {name.title()}")
    w.stores.identity.add_licences(user.id, ["US-CA"])
    w.stores.identity.grant_privileges(user.id, facility_ids)
    profile = ReaderProfile(user.id, modalities=frozenset(modalities), rvu_per_hour=12)
    w.stores.reading.put_profile(profile, w.clock())
    w.stores.reading.add_shift(user.id, weekly_rule("daily", "00:00", "24:00"))
    return user


@pytest.fixture
def net() -> Net:
    w = world()
    north = w.stores.index.add_facility("North", country="US", state="CA").id
    south = w.stores.index.add_facility("South", country="US", state="CA").id
    ana = _radiologist(w, "ana", [north], {"CT", "MR"})
    ben = _radiologist(w, "ben", [north, south], {"CT"})
    return Net(w, north, south, ana, ben)


def test_a_study_goes_to_the_eligible_signed_in_reader_with_its_reason(net: Net) -> None:
    net.sign_in(net.ana)
    net.sign_in(net.ben)
    net.reading.enqueue(net.study("1.1", modality="MR"))
    assert net.reading.holder("1.1") == net.ana.id  # only ana reads MR
    net.reading.enqueue(net.study("1.2", facility_id=net.south))
    assert net.reading.holder("1.2") == net.ben.id  # only ben reads for South
    [item] = net.reading.worklist_of(net.ana.id)
    assert (item.study.uid, item.state, item.holder_name) == ("1.1", "assigned", "Dr Ana")
    assert "Dr Ana" in item.why and "reads MR" in item.why and item.summary
    history = net.reading.store.history("1.1")
    assert history is not None and [(e.kind, e.reader_id) for e in history.events] == [
        ("assigned", net.ana.id)
    ]
    net.reading.enqueue(net.study("1.1", modality="MR"))  # already open: left as it is
    assert net.kinds("1.1") == ["assigned"]


def test_nobody_signed_in_it_waits_and_goes_to_whoever_signs_in(net: Net) -> None:
    net.reading.enqueue(net.study("1.1", modality="MR"))
    assert net.reading.holder("1.1") is None
    explained = net.reading.explain("1.1")
    assert explained is not None and explained.item is not None
    assert explained.item.state == "waiting" and "signed out" in explained.now
    assert "signed out" in explained.item.why
    net.reading.seen(net.ana.id, net.w.clock.after(minutes=1), token=True)
    assert net.reading.holder("1.1") == net.ana.id
    assert net.reading.explain("9.9") is None


def test_a_lapsed_session_makes_the_reader_away_and_hands_on_at_the_next_tick(net: Net) -> None:
    """Away, not signed out: the study goes to another eligible reader (issue 9, fault 3)."""
    cookies = {net.ana.id: net.sign_in(net.ana), net.ben.id: net.sign_in(net.ben)}
    net.reading.enqueue(net.study("1.1"))  # both read CT
    first = net.reading.holder("1.1")
    assert first in cookies
    net.w.auth.end_session(cookies[first])
    net.reading.tick(net.w.clock.after(seconds=20))
    assert net.reading.holder("1.1") == ({net.ana.id, net.ben.id} - {first}).pop()
    assert first in net.reading.worklist.away
    assert net.kinds("1.1") == ["assigned", "assigned", "reassigned"]
    history = net.reading.store.history("1.1")
    assert history is not None
    assert history.events[-1].detail == f"reader {first} away (session idle)"


def test_a_session_idle_too_long_counts_as_lapsed(net: Net) -> None:
    net.sign_in(net.ana)
    net.reading.enqueue(net.study("1.1", modality="MR"))
    net.reading.tick(net.w.clock.after(minutes=29))
    assert net.ana.id not in net.reading.worklist.away
    net.reading.tick(net.w.clock.after(minutes=2))  # 31 minutes without a request
    assert net.ana.id in net.reading.worklist.away
    assert net.reading.holder("1.1") == net.ana.id  # nobody else reads MR


def test_a_sign_out_hands_everything_on_at_once(net: Net) -> None:
    net.sign_in(net.ana)
    net.sign_in(net.ben)
    net.reading.enqueue(net.study("1.1"))
    first = net.reading.holder("1.1")
    assert first is not None
    net.reading.signed_out(first, net.w.clock.after(seconds=5))
    assert net.reading.holder("1.1") not in (first, None)
    history = net.reading.store.history("1.1")
    assert history is not None and history.events[-1].detail == f"reader {first} signed out"


def test_a_token_counts_for_a_while_then_the_reader_is_away_and_alerted(net: Net) -> None:
    start = net.w.clock()
    net.reading.seen(net.ana.id, start, token=True)
    net.reading.enqueue(net.study("1.1", modality="MR"))
    window = net.reading.token_window
    net.reading.tick(start + window - timedelta(minutes=1))
    assert net.reading.holder("1.1") == net.ana.id and net.reading.board(None).alerts == []
    net.reading.tick(start + window + timedelta(minutes=1))
    assert net.reading.holder("1.1") == net.ana.id  # nobody else reads MR: it stays
    assert net.ana.id in net.reading.worklist.away
    [alert] = net.reading.board(None).alerts
    assert (alert.kind, alert.study_uid) == (AlertKind.READER_AWAY, "1.1")
    assert "Dr Ana is away" in alert.detail
    item = net.reading.item("1.1")
    assert item is not None and item.summary.endswith("reader away")
    net.reading.seen(net.ana.id, start + window + timedelta(minutes=2))
    assert net.reading.board(None).alerts == []  # she is back: attended again


def test_claim_release_and_complete_belong_to_the_holder(net: Net) -> None:
    net.sign_in(net.ana)
    net.reading.enqueue(net.study("1.1", modality="MR"))
    with pytest.raises(WorklistError):
        net.reading.claim("1.1", net.ben.id)
    net.reading.claim("1.1", net.ana.id, net.w.clock.after(minutes=2))
    assert net.reading.worklist_of(net.ana.id)[0].state == "opened"
    handover = net.reading.release("1.1", net.ana.id)
    assert (handover.holder, handover.why) == (net.ana.id, "Nobody else on the roster may read it.")
    with pytest.raises(WorklistError):
        net.reading.complete("1.1", net.ben.id)
    net.reading.complete("1.1", net.ana.id, net.w.clock.after(minutes=28))
    assert net.reading.worklist_of(net.ana.id) == [] and net.reading.holder("1.1") is None
    history = net.reading.store.history("1.1")
    assert history is not None and history.state == "completed"
    assert net.kinds("1.1") == ["assigned", "claimed", "completed"]
    states = net.reading.store.read_states(["1.1"])
    assert (states["1.1"].state, states["1.1"].reader) == ("completed", "Dr Ana")


def test_a_release_goes_to_another_reader_or_says_why_nobody_else_may(net: Net) -> None:
    net.sign_in(net.ana)
    net.reading.enqueue(net.study("1.1"))
    held = net.reading.holder("1.1")
    assert held == net.ana.id
    handover = net.reading.release("1.1", held, net.w.clock.after(minutes=1))
    assert (handover.holder, handover.why) == (
        held,
        "The other qualified readers are 1 signed out.",
    )
    net.sign_in(net.ben)
    net.reading.seen(net.ben.id)  # his first request after signing in
    handover = net.reading.release("1.1", held, net.w.clock.after(minutes=1))
    assert (handover.holder, handover.why) == (net.ben.id, "")
    assert net.reading.holder("1.1") == net.ben.id


def test_a_withdrawn_study_comes_back_with_its_deadline_and_history(net: Net) -> None:
    net.sign_in(net.ana)
    first = net.study("1.1", modality="MR", priority=Priority.STAT)
    net.reading.enqueue(first)
    net.reading.claim("1.1", net.ana.id, net.w.clock.after(minutes=1))
    net.reading.withdraw("1.1", net.w.clock.after(minutes=1))
    net.reading.withdraw("1.1", net.w.clock.after(minutes=1))  # not there: left alone
    assert net.reading.worklist_of(net.ana.id) == []
    withdrawn = net.reading.store.history("1.1")
    assert withdrawn is not None and withdrawn.state == "withdrawn"
    net.w.clock.after(minutes=10)
    net.reading.enqueue(net.study("1.1", modality="MR", priority=Priority.STAT))
    again = net.reading.store.history("1.1")
    assert again is not None and (again.entry_id, again.state) == (withdrawn.entry_id, "open")
    assert [e.kind for e in again.events] == [
        "assigned",
        "claimed",
        "withdrawn",
        "reopened",
        "assigned",
    ]
    assert "the deadline stays" in again.events[3].detail
    back = net.reading.worklist.studies["1.1"]
    assert (back.ready_at, back.deadline) == (first.ready_at, first.deadline)
    assert net.ana.id in back.prior_readers  # continuity for whoever held it
    net.reading.complete("1.1", net.ana.id, net.w.clock.after(minutes=5))
    net.reading.enqueue(net.study("1.1", modality="MR"))  # read again: a new read
    third = net.reading.store.history("1.1")
    assert third is not None and third.entry_id != withdrawn.entry_id


def test_a_study_back_at_another_tier_gets_that_tier_s_deadline_from_its_first_readiness(
    net: Net,
) -> None:
    first = net.study("1.1", priority=Priority.ROUTINE)
    net.reading.enqueue(first)
    net.reading.withdraw("1.1", net.w.clock.after(minutes=5))
    net.w.clock.after(minutes=30)
    net.reading.enqueue(net.study("1.1", priority=Priority.STAT))  # the order became STAT
    back = net.reading.worklist.studies["1.1"]
    expected = net.reading.deadline(net.north, Priority.STAT, first.ready_at)
    assert back.ready_at == first.ready_at and back.deadline == expected < first.deadline
    [entry] = net.reading.store.open_entries()
    assert entry.study.deadline == expected  # stored, so a restart keeps it


def test_a_restart_rebuilds_the_open_worklist_from_the_store(net: Net) -> None:
    net.sign_in(net.ana)
    ready = net.w.clock()
    net.reading.enqueue(net.study("1.1", modality="MR"))
    net.reading.enqueue(net.study("1.2", modality="MR"))
    net.reading.complete("1.2", net.ana.id, net.w.clock.after(minutes=5))
    net.reading.enqueue(net.study("1.3", modality="XA"))  # nobody reads XA
    again = ReadingService(net.w.stores.reading, clock=net.w.clock)
    assert again.start(net.w.clock.after(minutes=5)) == 2
    assert again.start() == 0  # once
    assert set(again.worklist.studies) == {"1.1", "1.3"}
    assert again.holder("1.1") == net.ana.id  # her session is still live
    assert again.holder("1.3") is None
    # Taken up as it was held: no second assignment, the explanation kept.
    assert net.kinds("1.1") == ["assigned"]
    item = again.item("1.1")
    assert item is not None and "Dr Ana" in item.why
    again.claim("1.1", net.ana.id)  # still hers to open
    assert again.worklist.studies["1.1"].ready_at == ready  # TAT counts from there


def test_escalations_are_recorded_once_also_across_a_restart(net: Net) -> None:
    net.reading.enqueue(net.study("1.1", modality="XA", priority=Priority.STAT))
    late = net.w.clock.after(minutes=61)  # STAT: 60 minutes, every step of the ladder passed
    net.reading.tick(late)
    net.reading.tick(net.w.clock.after(minutes=1))
    history = net.reading.store.history("1.1")
    assert history is not None
    steps = [(e.kind, e.detail) for e in history.events]
    assert steps[1:] == [
        ("escalated", "widen-pool"),
        ("escalated", "alert-supervisor"),
        ("breached", ""),
    ]
    assert steps[0][0] == "no-reader" and "reading XA" in steps[0][1]
    board = net.reading.board(None, late)
    assert [a.kind for a in board.alerts] == [
        AlertKind.BREACHED,
        AlertKind.NO_READER,
        AlertKind.BREACH_RISK,
        AlertKind.ESCALATED,
    ]
    assert [(i.study.uid, i.status) for i in board.items] == [("1.1", "breached")]
    fresh = ReadingService(net.w.stores.reading, clock=net.w.clock)
    fresh.start(net.w.clock.after(minutes=1))
    fresh.tick(net.w.clock.after(minutes=1))
    after = net.reading.store.history("1.1")
    assert after is not None and len(after.events) == 5  # + the no-reader of the restart
    assert len(fresh.board(None).alerts) == 4  # one live alert per kind


def test_an_alert_is_acknowledged_in_scope_and_audited(net: Net) -> None:
    net.reading.enqueue(net.study("1.1", modality="XA"))  # nobody reads XA: an alert
    [alert] = net.reading.board(None).alerts
    assert alert.kind is AlertKind.NO_READER and alert.acknowledged_at is None
    before = net.w.stores.audit.count()
    assert net.reading.acknowledge(alert.id, SUPERVISOR, 7, frozenset({net.south})) is None
    assert net.w.stores.audit.count() == before  # nothing seen, nothing audited
    seen = net.reading.acknowledge(alert.id, SUPERVISOR, 7, frozenset({net.north}))
    assert seen is not None and (seen.acknowledged_by, seen.acknowledged_at) == (7, net.w.clock())
    [record] = list(net.w.stores.audit.records())[before:]
    assert record.event_id == EventID.PROCEDURE_RECORD.code and record.actor_id == "boss"
    assert (record.study_uid, record.facility) == ("1.1", "North")
    assert "no-reader alert acknowledged" in record.detail
    [still] = net.reading.board(None).alerts  # live until its cause goes; seen ones last
    assert still.acknowledged_by == 7


def test_a_supervisor_assigns_by_hand_to_an_eligible_reader_only(net: Net) -> None:
    net.sign_in(net.ben)
    net.reading.enqueue(net.study("1.1", modality="MR"))  # only ana reads MR; she is out
    assert net.reading.holder("1.1") is None
    candidates = {c.user_id: c for c in net.reading.candidates("1.1")}
    assert candidates[net.ben.id].reasons and not candidates[net.ben.id].eligible
    with pytest.raises(WorklistError, match="may not read this study"):
        net.reading.assign_by_hand("1.1", net.ben.id, SUPERVISOR)
    net.sign_in(net.ana)
    net.reading.tick()  # she is in: routing gives it to her
    assert net.reading.holder("1.1") == net.ana.id
    net.reading.enqueue(net.study("1.2"))
    held = net.reading.holder("1.2")
    other = net.ben.id if held == net.ana.id else net.ana.id
    item = net.reading.assign_by_hand("1.2", other, SUPERVISOR)
    assert (item.holder, net.reading.holder("1.2")) == (other, other)
    [*_, last] = list(net.w.stores.audit.records())
    assert last.detail == f"reading worklist: assigned by hand to {item.holder_name}"
    with pytest.raises(WorklistError, match="already holds"):
        net.reading.assign_by_hand("1.2", other, SUPERVISOR)


def test_the_board_is_scoped_by_facility(net: Net) -> None:
    net.sign_in(net.ben)
    net.reading.enqueue(net.study("1.1"))
    net.reading.enqueue(net.study("1.2", facility_id=net.south))
    assert {i.study.uid for i in net.reading.board(None).items} == {"1.1", "1.2"}
    north = net.reading.board(frozenset({net.north}))
    assert [i.study.uid for i in north.items] == ["1.1"]
    ben = next(r for r in north.readers if r.user_id == net.ben.id)
    assert ben.studies == 1  # South's study is not counted for North's admin
    south = net.reading.board(frozenset({net.south}))
    assert [r.user_id for r in south.readers] == [net.ben.id]  # ana reads only for North


def test_turnaround_and_sla_count_open_breaches(net: Net) -> None:
    start = net.w.clock()
    net.sign_in(net.ana)
    net.reading.enqueue(net.study("1.1"))
    net.reading.enqueue(net.study("1.2", priority=Priority.STAT, facility_id=net.south))
    net.reading.claim("1.1", net.ana.id, net.w.clock.after(minutes=10))
    net.reading.complete("1.1", net.ana.id, net.w.clock.after(minutes=20))
    since = start - timedelta(days=1)
    tiers, facilities = net.reading.turnaround(None, since)
    assert [(t.priority, t.count, t.open_breaches) for t in tiers] == [(Priority.ROUTINE, 1, 0)]
    assert tiers[0].minutes[50] == pytest.approx(30.0)
    assert [(f.facility_id, f.met, f.count) for f in facilities] == [(net.north, 1, 1)]
    net.w.clock.after(minutes=61)  # the STAT study nobody signed in may read is overdue
    tiers, facilities = net.reading.turnaround(None, since)
    stat = next(t for t in tiers if t.priority is Priority.STAT)
    assert (stat.count, stat.open_breaches, stat.compliance) == (0, 1, 0.0)
    assert [(f.facility_id, f.met, f.count) for f in facilities] == [
        (net.north, 1, 1),
        (net.south, 0, 1),
    ]
    scoped, _ = net.reading.turnaround(frozenset({net.north}), since)
    assert [t.priority for t in scoped] == [Priority.ROUTINE]
