"""The reading worklist as a service, on a real (SQLite) platform with a fake clock.

Readers come from accounts + licences + privileges + profiles; "signed in" is a
live browser session or a recent token; every change is stored, so a restart
rebuilds the worklist and TAT is measured from the stored history.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.support import eventually

from telerad.bootstrap import Platform, open_platform
from telerad.config import Settings
from telerad.domain.identity import Role, User
from telerad.domain.readers import ReaderProfile, weekly_rule
from telerad.domain.reading_entries import AlertKind
from telerad.runtime import Loop, Runtime
from telerad.services.reading import ReadingService, WorklistError
from telerad.storage.db.reading_repository import SqlReading
from telerad.workflow.model import Priority, ReadingStudy


def _now() -> datetime:
    # Sessions are stamped with the real clock: the fake one starts there.
    return datetime.now(UTC).replace(second=0, microsecond=0)


@dataclass
class World:
    platform: Platform
    facility_id: int
    other_facility_id: int
    ana: User
    ben: User

    @property
    def reading(self) -> ReadingService:
        return self.platform.reading


def _radiologist(p: Platform, name: str, facility_ids: list[int], modalities: set[str]) -> User:
    user = p.auth.create_user(name, Role.RADIOLOGIST, display_name=f"Dr {name.title()}")
    p.identity.add_licences(user.id, ["US-CA"])
    p.identity.grant_privileges(user.id, facility_ids)
    store: SqlReading = p.reading.store
    store.put_profile(
        ReaderProfile(user.id, modalities=frozenset(modalities), rvu_per_hour=12), _now()
    )
    store.add_shift(user.id, weekly_rule("daily", "00:00", "24:00"))
    return user


@pytest.fixture
def world(platform: Platform) -> World:
    north = platform.index.add_facility("North", country="US", state="CA")
    south = platform.index.add_facility("South", country="US", state="CA")
    ana = _radiologist(platform, "ana", [north.id], {"CT", "MR"})
    ben = _radiologist(platform, "ben", [north.id, south.id], {"CT"})
    return World(platform, north.id, south.id, ana, ben)


def _study(
    w: World,
    uid: str,
    now: datetime,
    *,
    modality: str = "CT",
    priority: Priority = Priority.ROUTINE,
    facility_id: int | None = None,
    rvu: float = 1.0,
) -> ReadingStudy:
    fid = facility_id if facility_id is not None else w.facility_id
    return ReadingStudy(
        uid=uid,
        facility_id=fid,
        jurisdiction="US-CA",
        modality=modality,
        priority=priority,
        ready_at=now,
        deadline=w.reading.deadline(fid, priority, now),
        rvu=rvu,
    )


def _sign_in(w: World, user: User) -> str:
    return w.platform.auth.start_session(user)


def test_enqueue_goes_to_the_eligible_signed_in_reader_with_its_reason(world: World) -> None:
    now = _now()
    _sign_in(world, world.ana)
    _sign_in(world, world.ben)
    # Only ana reads MR.
    world.reading.enqueue(_study(world, "1.2.3.1", now, modality="MR"), now)
    assert world.reading.holder("1.2.3.1") == world.ana.id
    # South: only ben is privileged there.
    south = _study(world, "1.2.3.2", now, facility_id=world.other_facility_id)
    world.reading.enqueue(south, now)
    assert world.reading.holder("1.2.3.2") == world.ben.id
    items = world.reading.worklist_of(world.ana.id, now)
    assert [i.study.uid for i in items] == ["1.2.3.1"]
    assert items[0].state == "assigned"
    assert "Dr Ana" in items[0].why and "reads MR" in items[0].why
    history = world.reading.store.history("1.2.3.1")
    assert history is not None and [e.kind for e in history.events] == ["assigned"]
    assert history.events[0].reader_id == world.ana.id


def test_nobody_signed_in_waits_then_goes_on_sign_in(world: World) -> None:
    now = _now()
    world.reading.enqueue(_study(world, "1.2.3.3", now, modality="MR"), now)
    assert world.reading.holder("1.2.3.3") is None
    explained = world.reading.explain("1.2.3.3", now)
    assert explained is not None and explained.item is not None
    assert explained.item.state == "waiting" and "signed out" in explained.now
    world.reading.seen(world.ana.id, now + timedelta(minutes=1), token=True)
    assert world.reading.worklist.holder("1.2.3.3") == world.ana.id


def test_a_session_that_ends_hands_on_at_the_next_tick_as_away(world: World) -> None:
    """A session gone without a sign-out (expired, revoked) is "away", not "signed out":
    the study goes to another eligible reader (issue 9, fault 3)."""
    now = _now()
    ana_session = _sign_in(world, world.ana)
    _sign_in(world, world.ben)
    world.reading.enqueue(_study(world, "1.2.3.4", now, modality="CT"), now)
    first = world.reading.worklist.holder("1.2.3.4")
    assert first in (world.ana.id, world.ben.id)
    # Whoever got it loses their session.
    if first == world.ana.id:
        world.platform.auth.end_session(ana_session)
        other = world.ben.id
    else:
        world.platform.identity.revoke_tokens(world.ben.id)  # deletes ben's sessions too
        other = world.ana.id
    world.reading.tick(now + timedelta(seconds=20))
    assert world.reading.worklist.holder("1.2.3.4") == other
    history = world.reading.store.history("1.2.3.4")
    assert history is not None
    kinds = [e.kind for e in history.events]
    assert kinds == ["assigned", "assigned", "reassigned"]
    assert history.events[-1].detail == f"reader {first} away (session idle)"


def test_an_explicit_sign_out_hands_on_at_once(world: World) -> None:
    now = _now()
    _sign_in(world, world.ana)
    _sign_in(world, world.ben)
    world.reading.enqueue(_study(world, "1.2.3.4", now, modality="CT"), now)
    first = world.reading.worklist.holder("1.2.3.4")
    assert first is not None
    world.reading.signed_out(first, now + timedelta(seconds=5))
    assert world.reading.worklist.holder("1.2.3.4") not in (first, None)
    history = world.reading.store.history("1.2.3.4")
    assert history is not None and history.events[-1].detail == f"reader {first} signed out"


def test_token_use_counts_as_signed_in_for_a_while(world: World) -> None:
    now = _now()
    world.reading.seen(world.ana.id, now, token=True)
    world.reading.enqueue(_study(world, "1.2.3.5", now, modality="MR"), now)
    assert world.reading.worklist.holder("1.2.3.5") == world.ana.id
    world.reading.tick(now + world.reading.token_window - timedelta(minutes=1))
    assert world.reading.worklist.holder("1.2.3.5") == world.ana.id
    world.reading.tick(now + world.reading.token_window + timedelta(minutes=1))
    # Away, not signed out: nobody else reads MR, so it stays with her and the
    # supervisor is told (issue 9, fault 3).
    assert world.reading.worklist.holder("1.2.3.5") == world.ana.id
    assert world.ana.id in world.reading.worklist.away
    [alert] = world.reading.board(None).alerts
    assert alert.kind is AlertKind.READER_AWAY and alert.study_uid == "1.2.3.5"
    assert "Dr Ana is away" in alert.detail
    world.reading.seen(world.ana.id, now + world.reading.token_window + timedelta(minutes=2))
    assert world.reading.board(None).alerts == []  # she is back: attended again


def test_claim_release_complete_and_permissions_of_holds(world: World) -> None:
    now = _now()
    _sign_in(world, world.ana)
    world.reading.enqueue(_study(world, "1.2.3.6", now, modality="MR"), now)
    with pytest.raises(WorklistError):
        world.reading.claim("1.2.3.6", world.ben.id, now)
    world.reading.claim("1.2.3.6", world.ana.id, now + timedelta(minutes=2))
    assert world.reading.worklist_of(world.ana.id, now)[0].state == "opened"
    # Nobody else reads MR: a release keeps it with ana, and says why.
    handover = world.reading.release("1.2.3.6", world.ana.id, now)
    assert handover.holder == world.ana.id
    assert handover.why == "Nobody else on the roster may read it."
    with pytest.raises(WorklistError):
        world.reading.complete("1.2.3.6", world.ben.id, now)
    world.reading.complete("1.2.3.6", world.ana.id, now + timedelta(minutes=30))
    assert world.reading.worklist_of(world.ana.id, now) == []
    history = world.reading.store.history("1.2.3.6")
    assert history is not None and history.state == "completed"
    assert [e.kind for e in history.events] == ["assigned", "claimed", "completed"]
    tiers, facilities = world.reading.turnaround(None, now - timedelta(days=1))
    assert [(t.priority, t.count) for t in tiers] == [(Priority.ROUTINE, 1)]
    assert tiers[0].minutes[50] == pytest.approx(30.0)
    assert [(f.facility_id, f.met, f.count) for f in facilities] == [(world.facility_id, 1, 1)]


def test_a_withdrawn_study_comes_back_with_its_deadline_and_history(world: World) -> None:
    """Issue 9, fault 1: it came back with a new deadline and its history gone."""
    now = _now()
    _sign_in(world, world.ana)
    first = _study(world, "1.2.3.7", now, modality="MR", priority=Priority.STAT)
    world.reading.enqueue(first, now)
    world.reading.claim("1.2.3.7", world.ana.id, now + timedelta(minutes=1))
    world.reading.withdraw("1.2.3.7", now + timedelta(minutes=2))
    world.reading.withdraw("1.2.3.7", now + timedelta(minutes=3))  # not there: left alone
    assert world.reading.worklist_of(world.ana.id, now) == []
    history = world.reading.store.history("1.2.3.7")
    assert history is not None and history.state == "withdrawn"
    later = now + timedelta(minutes=10)
    world.reading.enqueue(_study(world, "1.2.3.7", later, modality="MR", priority=Priority.STAT))
    again = world.reading.store.history("1.2.3.7")
    assert again is not None and again.entry_id == history.entry_id and again.state == "open"
    assert [e.kind for e in again.events] == [
        "assigned",
        "claimed",
        "withdrawn",
        "reopened",
        "assigned",
    ]
    back = world.reading.worklist.studies["1.2.3.7"]
    assert (back.ready_at, back.deadline) == (first.ready_at, first.deadline)
    assert world.ana.id in back.prior_readers  # continuity for whoever held it
    # A read after a final report is a new read (a new entry).
    world.reading.complete("1.2.3.7", world.ana.id, later + timedelta(minutes=5))
    world.reading.enqueue(_study(world, "1.2.3.7", later, modality="MR"), later)
    third = world.reading.store.history("1.2.3.7")
    assert third is not None and third.entry_id != history.entry_id


def test_restart_rebuilds_the_open_worklist(world: World, tmp_path: Path) -> None:
    now = _now()
    _sign_in(world, world.ana)
    world.reading.enqueue(_study(world, "1.2.3.8", now, modality="MR"), now)
    world.reading.enqueue(_study(world, "1.2.3.9", now, modality="MR"), now)
    world.reading.complete("1.2.3.9", world.ana.id, now + timedelta(minutes=5))
    world.reading.enqueue(_study(world, "1.2.3.10", now, modality="XA"), now)  # nobody reads XA
    settings = world.platform.settings
    world.platform.close()
    again = open_platform(settings)
    try:
        assert again.reading.start(now + timedelta(minutes=10)) == 2
        assert again.reading.worklist.holder("1.2.3.8") == world.ana.id  # session still live
        assert set(again.reading.worklist.studies) == {"1.2.3.8", "1.2.3.10"}
        assert again.reading.worklist.holder("1.2.3.10") is None
        history = again.reading.store.history("1.2.3.8")
        # Taken up as it was held: no second assignment, the explanation kept.
        assert history is not None and [e.kind for e in history.events] == ["assigned"]
        item = again.reading.item("1.2.3.8", now + timedelta(minutes=10))
        assert item is not None and "Dr Ana" in item.why
        # An opened study stays with its reader too.
        again.reading.claim("1.2.3.8", world.ana.id, now + timedelta(minutes=11))
        ready = again.reading.worklist.studies["1.2.3.8"].ready_at
        assert ready == now  # the original ready time: TAT counts from there
    finally:
        again.close()


def test_escalations_are_recorded_once_also_across_a_restart(world: World) -> None:
    now = _now()
    world.reading.enqueue(
        _study(world, "1.2.3.11", now, modality="XA", priority=Priority.STAT), now
    )
    late = now + timedelta(minutes=61)  # STAT: 60 min; every step of the ladder passed
    world.reading.tick(late)
    world.reading.tick(late + timedelta(minutes=1))
    history = world.reading.store.history("1.2.3.11")
    assert history is not None
    kinds = [(e.kind, e.detail) for e in history.events]
    assert kinds == [
        ("no-reader", kinds[0][1]),
        ("escalated", "widen-pool"),
        ("escalated", "alert-supervisor"),
        ("breached", ""),
    ]
    assert "nobody on the roster is" in kinds[0][1] and "reading XA" in kinds[0][1]
    alerts = world.reading.board(None, late).alerts
    assert [a.kind for a in alerts] == [
        AlertKind.BREACHED,
        AlertKind.NO_READER,
        AlertKind.BREACH_RISK,
        AlertKind.ESCALATED,
    ]
    board = world.reading.board(None, late)
    assert [(i.study.uid, i.status) for i in board.items] == [("1.2.3.11", "breached")]
    fresh = ReadingService(world.reading.store, clock=lambda: late)
    fresh.start(late + timedelta(minutes=2))
    fresh.tick(late + timedelta(minutes=3))
    after = world.reading.store.history("1.2.3.11")
    assert after is not None and len(after.events) == 5  # + the no-reader of the restart
    assert len(fresh.board(None, late).alerts) == 4  # one live alert per kind


def test_board_is_scoped_by_facility(world: World) -> None:
    now = _now()
    _sign_in(world, world.ben)
    world.reading.enqueue(_study(world, "1.2.3.12", now), now)
    south = _study(world, "1.2.3.13", now, facility_id=world.other_facility_id)
    world.reading.enqueue(south, now)
    everything = world.reading.board(None, now)
    assert {i.study.uid for i in everything.items} == {"1.2.3.12", "1.2.3.13"}
    north_only = world.reading.board(frozenset({world.facility_id}), now)
    assert [i.study.uid for i in north_only.items] == ["1.2.3.12"]
    ben = next(r for r in north_only.readers if r.user_id == world.ben.id)
    assert ben.studies == 1  # south's study is not counted for north's admin


def test_rules_file_change_applies(world: World, tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('network = "west"\n[targets]\nroutine = 100\n')
    service = ReadingService(world.reading.store, rules)
    now = _now()
    assert service.deadline(world.facility_id, Priority.ROUTINE, now) == now + timedelta(
        minutes=100
    )
    service.start(now)
    assert service.board(None, now).network == "west"
    rules.write_text('network = "east"\n[targets]\nroutine = 50\n')
    import os

    os.utime(rules, ns=(1, 1))  # a different modification time, whatever the clock's grain
    service.tick(now + timedelta(seconds=20))
    assert service.worklist.rules.network == "east"
    assert service.deadline(world.facility_id, Priority.ROUTINE, now) == now + timedelta(minutes=50)
    rules.write_text("targets = 3\n")
    os.utime(rules, ns=(2, 2))
    service.tick(now + timedelta(seconds=40))
    assert service.worklist.rules.network == "east"  # the last good rules stay
    assert service.board(None, now).rules_error is not None


def test_pull_pool_lists_what_the_reader_may_claim(world: World, tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[pull_pool]\nenabled = true\ntiers = ["routine"]\n')
    service = ReadingService(world.reading.store, rules)
    now = _now()
    _sign_in(world, world.ana)
    _sign_in(world, world.ben)
    service.enqueue(_study(world, "1.2.3.14", now, modality="MR"), now)
    assert service.holder("1.2.3.14") is None
    pool = service.worklist_of(world.ana.id, now)
    assert [(i.study.uid, i.state) for i in pool] == [("1.2.3.14", "pool")]
    assert service.worklist_of(world.ben.id, now) == []  # ben does not read MR
    service.claim("1.2.3.14", world.ana.id, now)
    assert service.worklist.holder("1.2.3.14") == world.ana.id


def test_the_worklist_clock_runs_as_a_loop_and_stops(world: World) -> None:
    ticks = []
    service = world.reading
    original = service.tick

    def counting(now: datetime | None = None) -> None:
        ticks.append(now)
        original(now)

    [loop] = [loop for loop in world.platform.runtime.loops if loop.name == "reading-worklist"]
    assert loop.every == world.platform.settings.worklist_tick_seconds
    # The platform's clock runs only in the process that decides (holds the lease).
    service.reset()
    loop.run()
    assert not service._started  # not the lease holder: nothing decided here
    world.platform.leadership._leader = True
    loop.run()
    assert service._started  # the holder's tick takes the worklist up
    runtime = Runtime([Loop("reading-worklist", 0.05, counting)])
    before = set(threading.enumerate())
    runtime.start()
    [thread] = [t for t in set(threading.enumerate()) - before if t.name == "reading-worklist"]
    eventually(lambda: len(ticks) >= 2, 5, 0.02, "two ticks of the loop")
    runtime.stop()
    # Stopped means the loop's thread has ended: no tick can come any more.
    assert runtime.running == [] and not thread.is_alive()
    count = len(ticks)
    thread.join()
    assert len(ticks) == count


def test_settings_rules_file_is_used(tmp_path: Path) -> None:
    rules = tmp_path / "net.toml"
    rules.write_text('network = "north"\n')
    p = open_platform(Settings(data_dir=tmp_path / "data", fsync=False, rules_file=rules))
    try:
        assert p.reading.rules().network == "north"
    finally:
        p.close()


@pytest.mark.postgres
def test_the_same_on_postgresql(pg_platform: Platform) -> None:
    p = pg_platform
    north = p.index.add_facility("North", country="US", state="CA")
    ana = _radiologist(p, "ana", [north.id], {"CT"})
    world = World(p, north.id, north.id, ana, ana)
    now = _now()
    session = _sign_in(world, ana)
    world.reading.enqueue(_study(world, "9.1", now), now)
    world.reading.enqueue(_study(world, "9.2", now), now)
    assert world.reading.holder("9.1") == ana.id
    world.reading.claim("9.1", ana.id, now + timedelta(minutes=1))
    world.reading.complete("9.1", ana.id, now + timedelta(minutes=20))
    tiers, facilities = world.reading.turnaround(frozenset({north.id}), now - timedelta(days=1))
    assert tiers[0].minutes[50] == pytest.approx(20.0) and facilities[0].met == 1
    p.auth.end_session(session)
    world.reading.tick(now + timedelta(seconds=20))
    assert world.reading.holder("9.2") == ana.id  # away: nobody else may take it
    assert [a.kind for a in world.reading.board(None).alerts] == [AlertKind.READER_AWAY]
    fresh = ReadingService(world.reading.store)
    assert fresh.start(now + timedelta(minutes=1)) == 1
    assert set(fresh.worklist.studies) == {"9.2"}


def test_a_release_nobody_else_may_take_says_why(world: World) -> None:
    now = _now()
    _sign_in(world, world.ana)
    world.reading.enqueue(_study(world, "1.2.3.40", now, modality="CT"), now)
    held = world.reading.holder("1.2.3.40")
    assert held is not None  # ana and ben both read CT; only one is signed in
    handover = world.reading.release("1.2.3.40", held, now + timedelta(minutes=1))
    assert handover.holder == held
    assert handover.why == "The other qualified readers are 1 signed out."


def test_a_restart_keeps_an_opened_study_with_its_reader(world: World) -> None:
    """A radiologist reading a study must not lose it because the process restarted (or
    another process took over the worklist)."""
    now = _now()
    _sign_in(world, world.ana)
    _sign_in(world, world.ben)
    world.reading.enqueue(_study(world, "1.2.3.50", now, modality="CT"), now)
    holder = world.reading.holder("1.2.3.50")
    assert holder is not None
    world.reading.claim("1.2.3.50", holder, now + timedelta(minutes=1))
    other = world.ben.id if holder == world.ana.id else world.ana.id
    world.reading.enqueue(_study(world, "1.2.3.51", now, modality="CT"), now)
    world.reading.reset()  # as a process that stops deciding
    assert world.reading.start(now + timedelta(minutes=2)) == 2
    wl = world.reading.worklist
    assert wl.holder("1.2.3.50") == holder
    assert wl.holds["1.2.3.50"].claimed_at == now + timedelta(minutes=1)
    assert wl.workload.load(holder) >= 1.0 and wl.holder("1.2.3.51") in (holder, other)
    kinds = [e.kind for e in world.reading.store.history("1.2.3.50").events]  # type: ignore[union-attr]
    assert kinds == ["assigned", "claimed"]
