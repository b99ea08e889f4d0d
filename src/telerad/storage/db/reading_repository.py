"""Reader profiles and shifts, worklist entries and their history (SQLAlchemy Core).

One ``worklist_entry`` row per read: a study withdrawn because more images came
keeps its row (reopened with its deadline); one enqueued again after it was read
gets a new row, so turnaround is measured per read.
Its ``worklist_event`` rows are the assignment history with the explanations.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, case, delete, func, insert, select, update

from telerad.domain.identity import Role
from telerad.domain.read_status import ReadState
from telerad.domain.readers import ReaderProfile, ShiftRule, parse_clock
from telerad.domain.reading_entries import (
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
from telerad.storage.db import tables as t
from telerad.storage.db.times import utc
from telerad.storage.db.unit_of_work import reading, writing
from telerad.storage.db.worklist_alerts import acknowledge_alert, apply_alert_changes, live_alerts
from telerad.workflow.model import Priority, ReadingStudy, ReadKind

# The entry types live in the domain; kept importable from here for storage's callers.
__all__ = [
    "EntryChange",
    "EntryEvent",
    "FinishedRead",
    "History",
    "OpenEntry",
    "RosterRow",
    "SqlReading",
]

#: Entry columns that keep their first value (a later write does not replace it).
KEEP_FIRST = frozenset({"first_assigned_at", "breached_at"})


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _join(values: Iterable[object]) -> str:
    return " ".join(sorted(str(v) for v in values))


def _shift_from(row: Any) -> ShiftRule:
    if row.starts_at is not None:
        return ShiftRule(starts_at=utc(row.starts_at), ends_at=utc(row.ends_at), id=row.id)
    return ShiftRule(
        days=frozenset(int(d) for d in row.days.split()),
        start=parse_clock(row.start_time),
        end=parse_clock(row.end_time),
        id=row.id,
    )


def _profile_from(row: Any, shifts: Sequence[ShiftRule]) -> ReaderProfile:
    return ReaderProfile(
        user_id=row.user_id,
        subspecialties=_words(row.subspecialties),
        modalities=_words(row.modalities),
        read_kinds=frozenset(ReadKind(k) for k in row.read_kinds.split()),
        rvu_per_hour=row.rvu_per_hour,
        queue_cap_rvu=row.queue_cap_rvu,
        tz=row.tz,
        shifts=tuple(shifts),
    )


def _study_from(row: Any) -> ReadingStudy:
    ready_at, deadline = utc(row.ready_at), utc(row.deadline)
    assert ready_at is not None and deadline is not None
    return ReadingStudy(
        uid=row.study_uid,
        facility_id=row.facility_id,
        jurisdiction=row.jurisdiction,
        modality=row.modality,
        priority=Priority(row.priority),
        ready_at=ready_at,
        deadline=deadline,
        rvu=row.rvu,
        body_part=row.body_part,
        subspecialty=row.subspecialty,
        patient_key=row.patient_key,
        read_kind=ReadKind(row.read_kind),
        prior_readers=frozenset(int(r) for r in row.prior_readers.split()),
    )


def _facts(study: ReadingStudy) -> dict[str, Any]:
    """The entry columns routing reads (the facility and the clock aside)."""
    return {
        "jurisdiction": study.jurisdiction,
        "modality": study.modality,
        "body_part": study.body_part,
        "subspecialty": study.subspecialty,
        "priority": study.priority.value,
        "read_kind": study.read_kind.value,
        "rvu": study.rvu,
        "patient_key": study.patient_key,
        "prior_readers": _join(study.prior_readers),
    }


class SqlReading:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- profiles and shifts ----------------------------------------------------------------
    def _shifts(self, conn: Any, user_ids: Sequence[int] | None) -> dict[int, list[ShiftRule]]:
        query = select(t.reader_shift).order_by(t.reader_shift.c.id)
        if user_ids is not None:
            query = query.where(t.reader_shift.c.user_id.in_(list(user_ids)))
        found: dict[int, list[ShiftRule]] = defaultdict(list)
        for row in conn.execute(query):
            found[row.user_id].append(_shift_from(row))
        return found

    def profile(self, user_id: int) -> ReaderProfile | None:
        with reading(self.engine) as conn:
            row = conn.execute(
                select(t.reader_profile).where(t.reader_profile.c.user_id == user_id)
            ).first()
            if row is None:
                return None
            return _profile_from(row, self._shifts(conn, [user_id]).get(user_id, []))

    def put_profile(self, profile: ReaderProfile, now: datetime) -> None:
        """Create or replace the profile (its shifts are kept apart: add_shift, remove_shift)."""
        values = {
            "subspecialties": _join(profile.subspecialties),
            "modalities": _join(profile.modalities),
            "read_kinds": _join(k.value for k in profile.read_kinds),
            "rvu_per_hour": profile.rvu_per_hour,
            "queue_cap_rvu": profile.queue_cap_rvu,
            "tz": profile.tz,
            "updated_at": now,
        }
        p = t.reader_profile
        with writing(self.engine) as conn:
            done = conn.execute(update(p).where(p.c.user_id == profile.user_id).values(**values))
            if done.rowcount == 0:
                conn.execute(insert(p).values(user_id=profile.user_id, **values))

    def add_shift(self, user_id: int, rule: ShiftRule) -> int:
        values: dict[str, Any] = {"user_id": user_id}
        if rule.weekly:
            assert rule.start is not None and rule.end is not None
            values.update(
                days=_join(rule.days),
                start_time=f"{rule.start:%H:%M}",
                end_time=f"{rule.end:%H:%M}",
            )
        else:
            values.update(starts_at=rule.starts_at, ends_at=rule.ends_at)
        with writing(self.engine) as conn:
            pk = conn.execute(
                insert(t.reader_shift).values(**values).returning(t.reader_shift.c.id)
            ).scalar_one()
        return int(pk)

    def remove_shift(self, user_id: int, shift_id: int) -> bool:
        s = t.reader_shift
        with writing(self.engine) as conn:
            done = conn.execute(delete(s).where(s.c.id == shift_id, s.c.user_id == user_id))
        return bool(done.rowcount)

    def radiologists(self) -> list[RosterRow]:
        """Every enabled radiologist with licences, privileges, profile and shifts."""
        u = t.app_user
        with reading(self.engine) as conn:
            users = conn.execute(
                select(u.c.id, u.c.username, u.c.display_name)
                .where(u.c.role == Role.RADIOLOGIST.value, u.c.disabled == 0)
                .order_by(u.c.id)
            ).all()
            licences: dict[int, set[str]] = defaultdict(set)
            for row in conn.execute(select(t.licence)):
                licences[row.user_id].add(row.jurisdiction)
            privileges: dict[int, set[int]] = defaultdict(set)
            for row in conn.execute(select(t.privilege)):
                privileges[row.user_id].add(row.facility_id)
            shifts = self._shifts(conn, None)
            profiles = {
                row.user_id: _profile_from(row, shifts.get(row.user_id, []))
                for row in conn.execute(select(t.reader_profile))
            }
        return [
            RosterRow(
                r.id,
                r.username,
                r.display_name,
                frozenset(licences[r.id]),
                frozenset(privileges[r.id]),
                profiles.get(r.id),
            )
            for r in users
        ]

    def live_sessions(
        self, seen_since: datetime, created_since: datetime, tokens_since: datetime | None = None
    ) -> frozenset[int]:
        """Users with a browser session used since ``seen_since`` and started after
        ``created_since`` (the session policy's idle and maximum ages), and those who
        used a bearer token since ``tokens_since``."""
        s, u = t.web_session, t.app_user
        with reading(self.engine) as conn:
            rows = conn.execute(
                select(s.c.user_id)
                .where(s.c.last_seen >= seen_since, s.c.created_at >= created_since)
                .distinct()
            ).all()
            tokens = (
                conn.execute(select(u.c.id).where(u.c.token_seen_at >= tokens_since)).all()
                if tokens_since is not None
                else []
            )
        return frozenset(r[0] for r in rows) | frozenset(r[0] for r in tokens)

    def note_token_use(self, user_id: int, at: datetime | None) -> None:
        """The account used a bearer token at ``at`` (None: forget it, it signed out)."""
        u = t.app_user
        with writing(self.engine) as conn:
            conn.execute(update(u).where(u.c.id == user_id).values(token_seen_at=at))

    # -- entries ----------------------------------------------------------------------------
    def add_entry(self, study: ReadingStudy) -> int:
        with writing(self.engine) as conn:
            pk = conn.execute(
                insert(t.worklist_entry)
                .values(
                    study_uid=study.uid,
                    facility_id=study.facility_id,
                    **_facts(study),
                    ready_at=study.ready_at,
                    deadline=study.deadline,
                    state=EntryState.OPEN.value,
                )
                .returning(t.worklist_entry.c.id)
            ).scalar_one()
        return int(pk)

    def save(self, changes: Iterable[EntryChange]) -> None:
        """Apply what commands changed, in one transaction."""
        e, ev = t.worklist_entry, t.worklist_event
        with writing(self.engine) as conn:
            for change in changes:
                if change.values:
                    values = {
                        k: func.coalesce(e.c[k], v) if k in KEEP_FIRST else v
                        for k, v in change.values.items()
                    }
                    conn.execute(update(e).where(e.c.id == change.entry_id).values(values))
                if change.events:
                    rows = [{"entry_id": change.entry_id, **event} for event in change.events]
                    conn.execute(insert(ev), rows)
                if change.alerts:
                    apply_alert_changes(conn, change.entry_id, change.alerts)

    def reopen(self, study: ReadingStudy) -> Reopened | None:
        """Take up the study's latest entry again when it was withdrawn: state open, the
        routing facts of ``study``, its first readiness time and deadline kept."""
        e, ev = t.worklist_entry, t.worklist_event
        with writing(self.engine) as conn:
            row = conn.execute(
                select(e).where(e.c.study_uid == study.uid).order_by(e.c.id.desc()).limit(1)
            ).first()
            if row is None or row.state != EntryState.WITHDRAWN:
                return None
            conn.execute(
                update(e)
                .where(e.c.id == row.id)
                .values(
                    state=EntryState.OPEN.value,
                    closed_at=None,
                    assigned_to=None,
                    assigned_at=None,
                    claimed_at=None,
                    why="",
                    **_facts(study),
                )
            )
            recorded = conn.execute(
                select(ev.c.kind, ev.c.detail).where(
                    ev.c.entry_id == row.id, ev.c.kind.in_(("escalated", "breached"))
                )
            ).all()
        ready_at, deadline = utc(row.ready_at), utc(row.deadline)
        assert ready_at is not None and deadline is not None
        return Reopened(
            row.id,
            ready_at,
            deadline,
            Priority(row.priority),
            row.assigned_to,
            frozenset(f"{r.kind}:{r.detail}" for r in recorded),
        )

    def live_alerts(self, facility_ids: frozenset[int] | None) -> list[AlertRow]:
        """The alerts whose cause has not gone, of the given facilities' studies."""
        return live_alerts(self.engine, facility_ids)

    def acknowledge_alert(
        self, alert_id: int, user_id: int, at: datetime, facility_ids: frozenset[int] | None
    ) -> AlertRow | None:
        return acknowledge_alert(self.engine, alert_id, user_id, at, facility_ids)

    def open_entries(self) -> list[OpenEntry]:
        e, ev = t.worklist_entry, t.worklist_event
        with reading(self.engine) as conn:
            rows = conn.execute(
                select(e).where(e.c.state == EntryState.OPEN.value).order_by(e.c.id)
            ).all()
            recorded: dict[int, set[str]] = defaultdict(set)
            for r in conn.execute(
                select(ev.c.entry_id, ev.c.kind, ev.c.detail)
                .join(e, e.c.id == ev.c.entry_id)
                .where(e.c.state == EntryState.OPEN.value, ev.c.kind.in_(("escalated", "breached")))
            ):
                recorded[r.entry_id].add(f"{r.kind}:{r.detail}")
        return [
            OpenEntry(
                r.id,
                _study_from(r),
                r.assigned_to,
                utc(r.claimed_at),
                frozenset(recorded[r.id]),
                utc(r.assigned_at),
                r.why,
            )
            for r in rows
        ]

    def history(self, study_uid: str) -> History | None:
        """The latest entry of the study and its events, oldest first."""
        e, ev = t.worklist_entry, t.worklist_event
        with reading(self.engine) as conn:
            entry = conn.execute(
                select(e.c.id, e.c.facility_id, e.c.state)
                .where(e.c.study_uid == study_uid)
                .order_by(e.c.id.desc())
                .limit(1)
            ).first()
            if entry is None:
                return None
            rows = conn.execute(select(ev).where(ev.c.entry_id == entry.id).order_by(ev.c.id)).all()
        events = [EntryEvent(r.kind, utc(r.at), r.reader_id, r.to_reader, r.detail) for r in rows]
        return History(entry.id, entry.facility_id, EntryState(entry.state), events)

    def read_states(self, study_uids: Sequence[str]) -> dict[str, ReadState]:
        """The latest read of each study that has been on the worklist, in one query."""
        if not study_uids:
            return {}
        e, u = t.worklist_entry, t.app_user
        latest = (
            select(func.max(e.c.id))
            .where(e.c.study_uid.in_(sorted(set(study_uids))))
            .group_by(e.c.study_uid)
        )
        reader = case(
            (e.c.state == EntryState.COMPLETED.value, e.c.completed_by), else_=e.c.assigned_to
        )
        query = (
            select(e.c.study_uid, e.c.state, e.c.claimed_at, u.c.username, u.c.display_name)
            .select_from(e.outerjoin(u, u.c.id == reader))
            .where(e.c.id.in_(latest))
        )
        with reading(self.engine) as conn:
            rows = conn.execute(query).all()
        return {
            r.study_uid: ReadState(
                r.state,
                r.display_name or r.username or "",
                r.state == EntryState.OPEN and r.claimed_at is not None,
            )
            for r in rows
        }

    def finished(
        self, since: datetime, facility_ids: frozenset[int] | None = None
    ) -> list[FinishedRead]:
        """Reads completed since ``since`` (of ``facility_ids`` when given)."""
        e = t.worklist_entry
        where = [e.c.state == EntryState.COMPLETED.value, e.c.completed_at >= since]
        if facility_ids is not None:
            where.append(e.c.facility_id.in_(sorted(facility_ids)))
        with reading(self.engine) as conn:
            rows = conn.execute(
                select(
                    e.c.facility_id,
                    e.c.priority,
                    e.c.ready_at,
                    e.c.deadline,
                    e.c.completed_at,
                    e.c.first_assigned_at,
                ).where(and_(*where))
            ).all()
        out = []
        for r in rows:
            ready, deadline, done = utc(r.ready_at), utc(r.deadline), utc(r.completed_at)
            assert ready is not None and deadline is not None and done is not None
            out.append(
                FinishedRead(
                    r.facility_id,
                    Priority(r.priority),
                    ready,
                    deadline,
                    done,
                    utc(r.first_assigned_at),
                )
            )
        return out
