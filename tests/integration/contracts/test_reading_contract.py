"""The reading worklist's store (``services.ports.ReadingStore``): what the fake and
SqlReading (with its alerts, storage.db.worklist_alerts) both do."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from tests.fakes.common import Clock
from tests.fakes.world import Stores

from telerad.domain.identity import Role
from telerad.domain.readers import ReaderProfile, once_rule, weekly_rule
from telerad.domain.reading_entries import AlertChange, AlertKind, EntryChange, EntryState
from telerad.workflow.model import Priority, ReadingStudy, ReadKind

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def study(uid: str, facility_id: int, **kw: object) -> ReadingStudy:
    values: dict[str, object] = {
        "uid": uid,
        "facility_id": facility_id,
        "jurisdiction": "US-CA",
        "modality": "CT",
        "priority": Priority.STAT,
        "ready_at": T0,
        "deadline": T0 + timedelta(hours=1),
    }
    values.update(kw)
    return ReadingStudy(**values)  # type: ignore[arg-type]


def completed(entry_id: int, by: int, at: datetime = T0) -> EntryChange:
    return EntryChange(entry_id, {"state": "completed", "completed_at": at, "completed_by": by})


def event(kind: str, reader: int | None = None, detail: str = "") -> dict[str, object]:
    return {"kind": kind, "at": T0, "reader_id": reader, "to_reader": None, "detail": detail}


def test_profiles_and_shifts_round_trip(stores: Stores, clock: Clock) -> None:
    reading = stores.reading
    rad = stores.identity.add_user("rad", Role.RADIOLOGIST)
    assert reading.profile(rad.id) is None
    profile = ReaderProfile(
        rad.id, frozenset({"neuro", "chest"}), frozenset({"CT", "MR"}),
        frozenset({ReadKind.FINAL}), 12.5, 30.0, "Europe/Berlin",
    )  # fmt: skip
    reading.put_profile(profile, clock.now)
    assert reading.profile(rad.id) == profile
    night = reading.add_shift(rad.id, weekly_rule("mon-fri", "22:00", "06:00"))
    once = reading.add_shift(rad.id, once_rule("2026-12-24T08:00", "2026-12-24T20:00"))
    shifts = reading.profile(rad.id).shifts
    assert [s.id for s in shifts] == [night, once]
    assert (shifts[0].days, shifts[0].start, shifts[0].end) == (
        frozenset(range(5)),
        time(22, 0),
        time(6, 0),
    )
    assert (shifts[1].starts_at, shifts[1].ends_at) == (
        datetime(2026, 12, 24, 8, 0, tzinfo=UTC),
        datetime(2026, 12, 24, 20, 0, tzinfo=UTC),
    )
    reading.put_profile(ReaderProfile(rad.id, queue_cap_rvu=None), clock.now)  # shifts stay
    again = reading.profile(rad.id)
    assert (again.modalities, again.queue_cap_rvu, len(again.shifts)) == (frozenset(), None, 2)
    other = stores.identity.add_user("other", Role.RADIOLOGIST)
    assert not reading.remove_shift(other.id, night)  # not theirs
    assert reading.remove_shift(rad.id, night) and not reading.remove_shift(rad.id, night)
    assert [s.id for s in reading.profile(rad.id).shifts] == [once]


def test_the_roster_is_every_enabled_radiologist_with_what_routing_needs(
    stores: Stores, clock: Clock
) -> None:
    identity, reading = stores.identity, stores.reading
    north = stores.index.add_facility("North").id
    ana = identity.add_user("ana", Role.RADIOLOGIST, display_name="Dr Ana")
    identity.add_user("boss", Role.NETWORK_ADMIN)
    off = identity.add_user("off", Role.RADIOLOGIST)
    ben = identity.add_user("ben", Role.RADIOLOGIST)
    identity.update_user(off.id, disabled=1)
    identity.add_licences(ana.id, ["US-CA"])
    identity.grant_privileges(ana.id, [north])
    reading.put_profile(ReaderProfile(ana.id, modalities=frozenset({"MR"})), clock.now)
    roster = reading.radiologists()
    assert [(r.user_id, r.username, r.display_name) for r in roster] == [
        (ana.id, "ana", "Dr Ana"),
        (ben.id, "ben", ""),
    ]
    assert (roster[0].licences, roster[0].facility_ids) == (
        frozenset({"US-CA"}),
        frozenset({north}),
    )
    assert roster[0].profile == reading.profile(ana.id) and roster[1].profile is None


def test_live_sessions_by_last_use_and_age(stores: Stores, clock: Clock) -> None:
    identity, reading = stores.identity, stores.reading
    ana, ben = (
        identity.add_user("ana", Role.RADIOLOGIST),
        identity.add_user("ben", Role.RADIOLOGIST),
    )
    now = clock.now
    identity.add_session("a" * 64, ana.id, now - timedelta(hours=1), "")
    identity.touch_session("a" * 64, now)
    identity.add_session("b" * 64, ben.id, now - timedelta(minutes=40), "")
    assert reading.live_sessions(now - timedelta(minutes=30), now - timedelta(hours=12)) == {ana.id}
    assert reading.live_sessions(now - timedelta(hours=2), now - timedelta(minutes=50)) == {ben.id}
    idle, young = now - timedelta(minutes=30), now - timedelta(minutes=10)
    reading.note_token_use(ben.id, now - timedelta(minutes=5))
    assert reading.live_sessions(idle, young) == frozenset()  # a token counts when asked
    assert reading.live_sessions(idle, young, now - timedelta(minutes=10)) == {ben.id}
    assert reading.live_sessions(idle, young, now - timedelta(minutes=1)) == frozenset()
    reading.note_token_use(ben.id, None)  # signed out: forgotten
    assert reading.live_sessions(idle, young, now - timedelta(days=1)) == frozenset()


def test_entries_keep_their_facts_values_and_history(stores: Stores) -> None:
    reading = stores.reading
    fid = stores.index.add_facility("North").id
    first = study(
        "1.1", fid, body_part="HEAD", subspecialty="neuro", rvu=1.5, patient_key="k",
        read_kind=ReadKind.PRELIMINARY, prior_readers=frozenset({7, 3}),
    )  # fmt: skip
    one, two = reading.add_entry(first), reading.add_entry(study("1.2", fid))
    [e1, e2] = reading.open_entries()
    assert (e1.id, e1.study, e1.assigned_to, e1.claimed_at, e1.recorded) == (
        one,
        first,
        None,
        None,
        frozenset(),
    )
    later = T0 + timedelta(minutes=5)
    reading.save(
        [
            EntryChange(one, {"assigned_to": 7, "assigned_at": T0, "why": "reads CT"}),
            EntryChange(one, {"first_assigned_at": T0}),
            EntryChange(one, {"claimed_at": later}, [event("assigned", 7, "why")]),
            EntryChange(
                two, {"breached_at": T0}, [event("breached"), event("escalated", None, "x")]
            ),
        ]
    )
    reading.save(
        [
            EntryChange(one, {"first_assigned_at": later, "assigned_to": 8}, [event("claimed", 8)]),
            EntryChange(two, {"breached_at": later}),
        ]
    )
    entries = {e.id: e for e in reading.open_entries()}
    assert (entries[one].assigned_to, entries[one].claimed_at) == (8, later)
    assert (entries[one].assigned_at, entries[one].why) == (T0, "reads CT")
    assert (entries[two].assigned_at, entries[two].why) == (None, "")
    assert entries[two].recorded == frozenset({"breached:", "escalated:x"})
    history = reading.history("1.1")
    assert (history.entry_id, history.facility_id, history.state) == (one, fid, EntryState.OPEN)
    assert type(history.state) is EntryState
    assert [(e.kind, e.reader_id, e.detail, e.at) for e in history.events] == [
        ("assigned", 7, "why", T0),
        ("claimed", 8, "", T0),
    ]
    assert reading.history("9.9") is None
    reading.save([completed(one, 8, later), completed(two, 8, later)])
    # The first assignment is kept as it was first written (the breach time is too, unread).
    finished = reading.finished(T0)
    assert sorted((str(f.first_assigned_at), f.completed_at) for f in finished) == [
        (str(T0), later),
        (str(None), later),
    ]
    assert [e.id for e in reading.open_entries()] == []
    with pytest.raises(Exception, match="no_such_column"):
        reading.save([EntryChange(one, {"no_such_column": 1})])


def test_a_withdrawn_entry_is_taken_up_again_with_its_clock(stores: Stores) -> None:
    reading = stores.reading
    fid = stores.index.add_facility("North").id
    first = study("1.1", fid, priority=Priority.STAT)
    pk = reading.add_entry(first)
    assert reading.reopen(first) is None  # open, not withdrawn
    reading.save(
        [
            EntryChange(pk, {"assigned_to": 7, "assigned_at": T0, "claimed_at": T0, "why": "w"}),
            EntryChange(pk, {}, [event("escalated", None, "widen-pool"), event("assigned", 7)]),
            EntryChange(pk, {"state": "withdrawn", "closed_at": T0}),
        ]
    )
    later = study(
        "1.1", fid, priority=Priority.URGENT, modality="MR", ready_at=T0 + timedelta(hours=2),
        deadline=T0 + timedelta(hours=9), prior_readers=frozenset({7}),
    )  # fmt: skip
    back = reading.reopen(later)
    assert back is not None
    assert (back.id, back.ready_at, back.deadline, back.priority, back.last_holder) == (
        pk,
        T0,
        T0 + timedelta(hours=1),
        Priority.STAT,  # the tier it had: the service decides about the deadline
        7,
    )
    assert back.recorded == frozenset({"escalated:widen-pool"})
    [entry] = reading.open_entries()
    assert (entry.assigned_to, entry.claimed_at, entry.assigned_at, entry.why) == (
        None,
        None,
        None,
        "",
    )
    assert (entry.study.modality, entry.study.priority, entry.study.prior_readers) == (
        "MR",
        Priority.URGENT,
        frozenset({7}),
    )
    assert (entry.study.ready_at, entry.study.deadline) == (T0, T0 + timedelta(hours=1))
    assert reading.reopen(later) is None  # open again
    reading.save([completed(pk, 7, T0)])
    assert reading.reopen(later) is None  # read: a new read is a new entry
    new = reading.add_entry(later)
    assert reading.history("1.1").entry_id == new != pk


def test_read_states_show_each_study_s_latest_read(stores: Stores) -> None:
    identity, reading = stores.identity, stores.reading
    fid = stores.index.add_facility("North").id
    ana = identity.add_user("ana", Role.RADIOLOGIST, display_name="Dr Ana")
    ben = identity.add_user("ben", Role.RADIOLOGIST)
    old = reading.add_entry(study("1.1", fid))
    reading.save([completed(old, ben.id, T0)])
    new = reading.add_entry(study("1.1", fid))
    reading.save([EntryChange(new, {"assigned_to": ana.id, "claimed_at": T0})])
    done = reading.add_entry(study("1.2", fid))
    reading.save(
        [
            EntryChange(
                done,
                {
                    "assigned_to": ana.id,
                    "state": "completed",
                    "completed_by": ben.id,
                    "completed_at": T0,
                    "claimed_at": T0,
                },
            )  # fmt: skip
        ]
    )
    reading.add_entry(study("1.3", fid))
    gone = reading.add_entry(study("1.4", fid))
    reading.save([EntryChange(gone, {"assigned_to": 999})])  # an account since deleted
    states = reading.read_states(["1.1", "1.2", "1.3", "1.4", "9.9", "1.1"])
    assert {uid: (s.state, s.reader, s.opened) for uid, s in states.items()} == {
        "1.1": ("open", "Dr Ana", True),
        "1.2": ("completed", "ben", False),
        "1.3": ("open", "", False),
        "1.4": ("open", "", False),
    }
    assert reading.read_states([]) == {}


def test_finished_reads_since_and_by_facility(stores: Stores) -> None:
    reading = stores.reading
    north, south = stores.index.add_facility("North").id, stores.index.add_facility("South").id
    for uid, fid, minutes in (("1.1", north, 10), ("1.2", south, 20), ("1.3", north, -10)):
        pk = reading.add_entry(study(uid, fid, priority=Priority.ROUTINE))
        at = T0 + timedelta(minutes=minutes)
        reading.save([completed(pk, 1, at)])
    reading.add_entry(study("1.4", north))  # open: not finished
    found = reading.finished(T0)
    assert sorted((f.facility_id, f.completed_at) for f in found) == [
        (north, T0 + timedelta(minutes=10)),
        (south, T0 + timedelta(minutes=20)),
    ]
    [only] = reading.finished(T0, frozenset({south}))
    assert (only.priority, only.ready_at, only.deadline, only.first_assigned_at) == (
        Priority.ROUTINE,
        T0,
        T0 + timedelta(hours=1),
        None,
    )


def test_one_live_alert_per_kind_cleared_by_its_cause(stores: Stores) -> None:
    reading = stores.reading
    north, south = stores.index.add_facility("North").id, stores.index.add_facility("South").id
    one, two = reading.add_entry(study("1.1", north)), reading.add_entry(study("1.2", south))
    at = T0 + timedelta(minutes=1)
    reading.save(
        [
            EntryChange(one, alerts=[AlertChange(T0, AlertKind.NO_READER, "nobody reads CT")]),
            EntryChange(one, alerts=[AlertChange(at, AlertKind.NO_READER, "again")]),  # no twin
            EntryChange(one, alerts=[AlertChange(at, AlertKind.BREACH_RISK, "near")]),
            EntryChange(two, alerts=[AlertChange(at, AlertKind.READER_AWAY, "away")]),
        ]
    )
    live = reading.live_alerts(None)
    assert [(a.study_uid, a.kind, a.detail, a.raised_at) for a in live] == [
        ("1.1", AlertKind.NO_READER, "nobody reads CT", T0),
        ("1.1", AlertKind.BREACH_RISK, "near", at),
        ("1.2", AlertKind.READER_AWAY, "away", at),
    ]
    assert (live[0].facility_id, live[0].priority, live[0].entry_id) == (north, Priority.STAT, one)
    assert [a.study_uid for a in reading.live_alerts(frozenset({south}))] == ["1.2"]
    cleared = frozenset({AlertKind.NO_READER})
    reading.save([EntryChange(one, alerts=[AlertChange(at, clear=cleared)])])
    assert [a.kind for a in reading.live_alerts(frozenset({north}))] == [AlertKind.BREACH_RISK]
    reading.save([EntryChange(one, alerts=[AlertChange(at, AlertKind.NO_READER, "back")])])
    assert [a.detail for a in reading.live_alerts(frozenset({north}))] == ["near", "back"]
    reading.save([EntryChange(one, alerts=[AlertChange(at, AlertKind.BREACHED, clear=None)])])
    assert reading.live_alerts(frozenset({north})) == []  # raised and gone in one step


def test_an_alert_is_acknowledged_once_while_live_and_in_scope(stores: Stores) -> None:
    reading = stores.reading
    north, south = stores.index.add_facility("North").id, stores.index.add_facility("South").id
    pk = reading.add_entry(study("1.1", north))
    reading.save([EntryChange(pk, alerts=[AlertChange(T0, AlertKind.NO_READER, "x")])])
    [alert] = reading.live_alerts(None)
    assert reading.acknowledge_alert(alert.id, 5, T0, frozenset({south})) is None
    seen = reading.acknowledge_alert(alert.id, 5, T0 + timedelta(minutes=1), frozenset({north}))
    assert (seen.acknowledged_by, seen.acknowledged_at) == (5, T0 + timedelta(minutes=1))
    again = reading.acknowledge_alert(alert.id, 6, T0 + timedelta(minutes=2), None)
    assert (again.acknowledged_by, again.acknowledged_at) == (5, T0 + timedelta(minutes=1))
    assert reading.live_alerts(None)[0].acknowledged_by == 5  # still live until its cause goes
    reading.save([EntryChange(pk, alerts=[AlertChange(T0, clear=None)])])
    assert reading.acknowledge_alert(alert.id, 5, T0, None) is None
    assert reading.acknowledge_alert(999, 5, T0, None) is None
