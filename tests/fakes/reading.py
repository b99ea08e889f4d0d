"""The reading worklist's store in memory: reader profiles and shifts, entries, their
history and alerts (the real one: storage.db.reading_repository.SqlReading and
storage.db.worklist_alerts).

It keeps what the SQL store keeps and answers as it does: one entry per read
(a withdrawn entry is taken up again by :meth:`reopen`, with its facility, first
readiness and deadline), ``first_assigned_at`` and ``breached_at`` keep their
first value, one live alert per entry and kind, entries, events, shifts and
alerts listed by id, alerts and finished reads scoped by facility. An entry
keeps the study it was made of; :meth:`save` changes what commands change of it
(who holds it, when, its state and deadline), not its routing facts. The roster,
the live sessions and token use come from the accounts' fake
(:class:`~tests.fakes.identity.FakeIdentity`), as the SQL store reads the
accounts' tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from tests.fakes.common import ids
from tests.fakes.identity import FakeIdentity

from telerad.domain.identity import Role
from telerad.domain.read_status import ReadState
from telerad.domain.readers import ReaderProfile, ShiftRule
from telerad.domain.reading_entries import (
    AlertChange,
    AlertKind,
    AlertRow,
    EntryChange,
    EntryEvent,
    EntryState,
    FinishedRead,
    History,
    OpenEntry,
    Reopened,
    RosterRow,
)
from telerad.workflow.model import ReadingStudy

#: Entry columns that keep their first value.
KEPT_FIRST = frozenset({"first_assigned_at", "breached_at"})
#: What commands change of an entry (its routing facts come from the study it was made of).
ENTRY_COLUMNS = frozenset(
    {
        "deadline", "state", "assigned_to", "assigned_at", "first_assigned_at", "claimed_at",
        "completed_at", "completed_by", "breached_at", "why", "closed_at",
    }
)  # fmt: skip
EVENT_COLUMNS = frozenset({"kind", "at", "reader_id", "to_reader", "detail"})
#: Events a restart must not repeat.
RECORDED = ("escalated", "breached")


def _study(row: dict[str, Any]) -> ReadingStudy:
    study: ReadingStudy = row["study"]
    return replace(study, deadline=row["deadline"])


class FakeReading:
    def __init__(self, identity: FakeIdentity) -> None:
        self.identity = identity
        self.profiles: dict[int, ReaderProfile] = {}  # without their shifts
        self.shifts: dict[int, tuple[int, ShiftRule]] = {}  # id → (user id, rule)
        self.entries: dict[int, dict[str, Any]] = {}
        self.events: dict[int, dict[str, Any]] = {}
        self.alerts: dict[int, dict[str, Any]] = {}
        self._ids = {name: ids() for name in ("shift", "entry", "event", "alert")}

    # -- profiles and shifts ----------------------------------------------------------------
    def profile(self, user_id: int) -> ReaderProfile | None:
        found = self.profiles.get(user_id)
        if found is None:
            return None
        shifts = tuple(rule for _, (uid, rule) in sorted(self.shifts.items()) if uid == user_id)
        return replace(found, shifts=shifts)

    def put_profile(self, profile: ReaderProfile, now: datetime) -> None:
        self.profiles[profile.user_id] = replace(profile, shifts=())

    def add_shift(self, user_id: int, rule: ShiftRule) -> int:
        pk = next(self._ids["shift"])
        self.shifts[pk] = (user_id, replace(rule, id=pk))
        return pk

    def remove_shift(self, user_id: int, shift_id: int) -> bool:
        found = self.shifts.get(shift_id)
        if found is None or found[0] != user_id:
            return False
        del self.shifts[shift_id]
        return True

    def radiologists(self) -> list[RosterRow]:
        return [
            RosterRow(
                u.id,
                u.username,
                u.display_name,
                self.identity.licences(u.id),
                self.identity.privileges(u.id),
                self.profile(u.id),
            )
            for u in (a.user for _, a in sorted(self.identity.users.items()))
            if u.role is Role.RADIOLOGIST and not u.disabled
        ]

    def live_sessions(
        self, seen_since: datetime, created_since: datetime, tokens_since: datetime | None = None
    ) -> frozenset[int]:
        sessions = {
            s.user_id
            for s in self.identity.sessions.values()
            if s.last_seen >= seen_since and s.created_at >= created_since
        }
        tokens = {
            a.user.id
            for a in self.identity.users.values()
            if tokens_since is not None
            and a.token_seen_at is not None
            and a.token_seen_at >= tokens_since
        }
        return frozenset(sessions | tokens)

    def note_token_use(self, user_id: int, at: datetime | None) -> None:
        self.identity.update_user(user_id, token_seen_at=at)

    # -- entries ----------------------------------------------------------------------------
    def add_entry(self, study: ReadingStudy) -> int:
        pk = next(self._ids["entry"])
        row = dict.fromkeys(ENTRY_COLUMNS)
        row.update(
            study=replace(study, assigned_to=None), deadline=study.deadline,
            state=EntryState.OPEN.value, why="",
        )  # fmt: skip
        self.entries[pk] = row
        return pk

    def save(self, changes: Iterable[EntryChange]) -> None:
        changes = list(changes)
        for change in changes:  # checked first: one transaction, all or nothing
            unknown = set(change.values) - ENTRY_COLUMNS
            unknown |= {k for e in change.events for k in e} - EVENT_COLUMNS
            if unknown or change.entry_id not in self.entries:
                raise ValueError(f"entry {change.entry_id}: no columns {sorted(unknown)}")
        for change in changes:
            row = self.entries[change.entry_id]
            for key, value in change.values.items():
                if key not in KEPT_FIRST or row[key] is None:
                    row[key] = value
            for event in change.events:
                row_event = dict.fromkeys(EVENT_COLUMNS) | {"detail": ""} | event
                self.events[next(self._ids["event"])] = {"entry_id": change.entry_id, **row_event}
            self._apply_alerts(change.entry_id, change.alerts)

    def _apply_alerts(self, entry_id: int, changes: Sequence[AlertChange]) -> None:
        for change in changes:
            live = [a for a in self.alerts.values() if a["entry_id"] == entry_id]
            live = [a for a in live if a["cleared_at"] is None]
            if change.raise_kind is not None:
                kind = change.raise_kind.value
                if not any(a["kind"] == kind for a in live):
                    alert = {
                        "entry_id": entry_id, "kind": kind, "raised_at": change.at,
                        "detail": change.detail, "acknowledged_at": None,
                        "acknowledged_by": None, "cleared_at": None,
                    }  # fmt: skip
                    self.alerts[next(self._ids["alert"])] = alert
                    live.append(alert)
            if change.clear is None or change.clear:
                kinds = None if change.clear is None else {k.value for k in change.clear}
                for alert in live:
                    if kinds is None or alert["kind"] in kinds:
                        alert["cleared_at"] = change.at

    def _latest(self, study_uid: str) -> tuple[int, dict[str, Any]] | None:
        found = [(pk, e) for pk, e in self.entries.items() if e["study"].uid == study_uid]
        return max(found, key=lambda f: f[0]) if found else None

    def _recorded(self, entry_id: int) -> frozenset[str]:
        return frozenset(
            f"{e['kind']}:{e['detail']}"
            for e in self.events.values()
            if e["entry_id"] == entry_id and e["kind"] in RECORDED
        )

    def reopen(self, study: ReadingStudy) -> Reopened | None:
        latest = self._latest(study.uid)
        if latest is None or latest[1]["state"] != EntryState.WITHDRAWN:
            return None
        pk, row = latest
        reopened = Reopened(
            pk,
            row["study"].ready_at,
            row["deadline"],
            row["study"].priority,
            row["assigned_to"],
            self._recorded(pk),
        )
        kept = row["study"]  # its facility and first readiness stay
        row.update(
            study=replace(study, facility_id=kept.facility_id, ready_at=kept.ready_at,
                          deadline=row["deadline"], assigned_to=None),
            state=EntryState.OPEN.value, closed_at=None, assigned_to=None, assigned_at=None,
            claimed_at=None, why="",
        )  # fmt: skip
        return reopened

    def open_entries(self) -> list[OpenEntry]:
        return [
            OpenEntry(
                pk,
                _study(e),
                e["assigned_to"],
                e["claimed_at"],
                self._recorded(pk),
                e["assigned_at"],
                e["why"],
            )
            for pk, e in sorted(self.entries.items())
            if e["state"] == EntryState.OPEN
        ]

    def history(self, study_uid: str) -> History | None:
        latest = self._latest(study_uid)
        if latest is None:
            return None
        pk, row = latest
        events = [
            EntryEvent(e["kind"], e["at"], e["reader_id"], e["to_reader"], e["detail"])
            for _, e in sorted(self.events.items())
            if e["entry_id"] == pk
        ]
        return History(pk, row["study"].facility_id, EntryState(row["state"]), events)

    def read_states(self, study_uids: Sequence[str]) -> dict[str, ReadState]:
        found = {}
        for uid in set(study_uids):
            latest = self._latest(uid)
            if latest is None:
                continue
            row = latest[1]
            done = row["state"] == EntryState.COMPLETED
            reader = row["completed_by"] if done else row["assigned_to"]
            user = self.identity.user_by_id(reader) if reader is not None else None
            name = (user.display_name or user.username) if user is not None else ""
            opened = row["state"] == EntryState.OPEN and row["claimed_at"] is not None
            found[uid] = ReadState(row["state"], name, opened)
        return found

    def finished(
        self, since: datetime, facility_ids: frozenset[int] | None = None
    ) -> list[FinishedRead]:
        return [
            FinishedRead(
                e["study"].facility_id,
                e["study"].priority,
                e["study"].ready_at,
                e["deadline"],
                e["completed_at"],
                e["first_assigned_at"],
            )
            for _, e in sorted(self.entries.items())
            if e["state"] == EntryState.COMPLETED
            and e["completed_at"] >= since
            and (facility_ids is None or e["study"].facility_id in facility_ids)
        ]

    # -- alerts -----------------------------------------------------------------------------
    def _alert_row(self, pk: int, a: dict[str, Any]) -> AlertRow:
        study = self.entries[a["entry_id"]]["study"]
        return AlertRow(
            id=pk,
            entry_id=a["entry_id"],
            study_uid=study.uid,
            facility_id=study.facility_id,
            priority=study.priority,
            kind=AlertKind(a["kind"]),
            raised_at=a["raised_at"],
            detail=a["detail"],
            acknowledged_at=a["acknowledged_at"],
            acknowledged_by=a["acknowledged_by"],
        )

    def _in_scope(self, a: dict[str, Any], facility_ids: frozenset[int] | None) -> bool:
        return facility_ids is None or self.entries[a["entry_id"]]["study"].facility_id in (
            facility_ids
        )

    def live_alerts(self, facility_ids: frozenset[int] | None) -> list[AlertRow]:
        return [
            self._alert_row(pk, a)
            for pk, a in sorted(self.alerts.items())
            if a["cleared_at"] is None and self._in_scope(a, facility_ids)
        ]

    def acknowledge_alert(
        self, alert_id: int, user_id: int, at: datetime, facility_ids: frozenset[int] | None
    ) -> AlertRow | None:
        a = self.alerts.get(alert_id)
        if a is None or a["cleared_at"] is not None or not self._in_scope(a, facility_ids):
            return None
        if a["acknowledged_at"] is None:
            a.update(acknowledged_at=at, acknowledged_by=user_id)
        return self._alert_row(alert_id, a)
