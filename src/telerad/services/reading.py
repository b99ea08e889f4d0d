"""The reading worklist as a running service: routing, holds, history, alerts, its clock.

Use cases over the pure :class:`~telerad.workflow.worklist.Worklist` aggregate:
``enqueue`` (a study became readable), ``withdraw`` (more images arrived),
``claim``, ``release``, ``complete`` (marked read), ``assign_by_hand`` and
``acknowledge`` (the supervisor), and the views people see
(:mod:`telerad.services.reading_views`). Every command runs under one lock, then
stores what the aggregate recorded: each read's entry (who holds it, when
assigned, opened, read), its events with their explanations, from which TAT and
SLA are computed, and the alerts the supervisor must see
(:mod:`telerad.services.reading_alerts`).

A study withdrawn because more images came keeps its entry: when it is ready
again it comes back with its first readiness time, its deadline and its history
(the contract's clock does not restart).

The roster is built from the accounts: radiologists with their licences
(jurisdictions), privileges (facility ids) and reader profiles. A radiologist is
*signed in* while they have a live browser session (the session policy's idle
and maximum ages) or used a bearer token within :attr:`ReadingService.token_window`.
Signing out hands everything they hold on at once; a session that lapses makes
them *away*: what they hold goes to another eligible reader when there is one,
and otherwise stays with them while the supervisor is alerted. :meth:`tick` (the
``reading-worklist`` loop of :mod:`telerad.runtime`) re-reads
the roster and sessions, reloads the rules file when it changed, and runs the
worklist's clock (away, off-shift and stale reassignment, escalation, pushing
what waits).

On start the worklist is rebuilt from the open entries and those studies are
routed again (a reader may get a different study than before the restart).
Assignments are not access to patient data: opening a study is audited by the
viewer's path; a supervisor's assignment and acknowledgement are audited here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from telerad.domain.audit import Action, EventID
from telerad.domain.readers import reader_of
from telerad.domain.reading_entries import (
    AlertChange,
    AlertRow,
    EntryChange,
    EntryState,
    Reopened,
)
from telerad.services.access_audit import Actor
from telerad.services.audit import AuditService
from telerad.services.ports import Immediate, ReadingStore, UnitOfWork
from telerad.services.reading_alerts import alert_changes, back_changes, gone_changes
from telerad.services.reading_views import (
    Board,
    Candidate,
    Explanation,
    Item,
    ReaderLoad,
    ReadingViews,
)
from telerad.workflow.model import Priority, Reader, ReadingStudy
from telerad.workflow.routing import GAVE_IT_BACK, Roster, assign
from telerad.workflow.rules import Rules, RulesSource, default_rules
from telerad.workflow.worklist import (
    Assigned,
    Breached,
    Claimed,
    Completed,
    Escalated,
    Event,
    NoReader,
    Reassigned,
    Unattended,
    Worklist,
    WorklistError,
)

log = logging.getLogger("telerad.reading")

#: A new study is routed on a roster at most this old (the ticker re-reads it too).
ROSTER_FRESH = timedelta(seconds=5)
#: How often a radiologist's bearer-token use is written down.
TOKEN_NOTE = timedelta(seconds=30)

__all__ = [
    "Board",
    "Candidate",
    "Explanation",
    "Handover",
    "Item",
    "ReaderLoad",
    "ReadingService",
    "ReadingStore",
    "WorklistError",
]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Handover:
    """Where a released study went: ``holder`` None when back on the worklist; the
    releasing reader's id when nobody else may read it now (``why`` says why)."""

    holder: int | None
    why: str = ""


class ReadingService(ReadingViews):
    def __init__(
        self,
        store: ReadingStore,
        rules_file: Path | None = None,
        *,
        session_idle: timedelta = timedelta(minutes=30),
        session_max: timedelta = timedelta(hours=12),
        token_window: timedelta = timedelta(minutes=10),
        clock: Callable[[], datetime] = _utcnow,
        audit: AuditService | None = None,
        facility_name: Callable[[int], str] = str,
        unit_of_work: UnitOfWork | None = None,
    ) -> None:
        self.store = store
        #: What a command writes together (an entry, its history, an audit record).
        self.unit: UnitOfWork = unit_of_work or Immediate()
        self.clock = clock
        self.session_idle = session_idle
        self.session_max = session_max
        #: A bearer token used this recently counts as signed in.
        self.token_window = token_window
        self.audit = audit
        self.facility_name = facility_name
        self._source = RulesSource(rules_file) if rules_file is not None else None
        self._default = default_rules() if rules_file is None else None
        self._lock = threading.RLock()
        self.worklist = Worklist(self.rules(), Roster())
        self._entries: dict[str, int] = {}  # open study uid → entry id
        self._why: dict[str, str] = {}  # open study uid → its holder's explanation
        self._summary: dict[str, str] = {}  # the same in one line
        self._nobody: dict[str, tuple[datetime, str]] = {}  # why nobody holds it, per minute
        self._recorded: dict[str, set[str]] = {}  # escalations stored before a restart
        self._names: dict[int, str] = {}
        self._token_noted: dict[int, datetime] = {}  # when this process last wrote it down
        self._started = False
        self._refreshed = datetime.min.replace(tzinfo=UTC)

    # -- rules ------------------------------------------------------------------------------
    def rules(self) -> Rules:
        """The rules in force (the rules file re-read when it changed)."""
        if self._source is not None:
            return self._source.current()
        assert self._default is not None
        return self._default

    @property
    def rules_error(self) -> str | None:
        return self._source.error if self._source is not None else None

    def deadline(self, facility_id: int, priority: Priority, ready_at: datetime) -> datetime:
        """When a study ready at ``ready_at`` must be read, by the facility's contract."""
        return self.rules().deadline(facility_id, priority, ready_at)

    def _apply_rules(self) -> None:
        rules = self.rules()
        if rules is not self.worklist.rules:
            self.worklist.set_rules(rules)

    # -- start, stop, the clock -------------------------------------------------------------
    def start(self, now: datetime | None = None) -> int:
        """Load the roster and take up the open entries again; returns how many.

        A study someone held keeps its holder (opened or not) while they may still
        read it; the others are routed again. Every command starts the service first
        when nobody did (`telerad serve` does, in the process that decides).
        """
        now = now or self.clock()
        with self._lock:
            if self._started:
                return 0
            self._started = True
            self._refresh(now)
            entries = self.store.open_entries()
            entries.sort(key=lambda e: (e.study.priority.rank, e.study.deadline, e.study.uid))
            wl = self.worklist
            for entry in entries:  # holds first: the others are routed around them
                uid = entry.study.uid
                self._entries[uid] = entry.id
                self._recorded[uid] = set(entry.recorded)
                held = entry.assigned_to is not None and wl.restore(
                    entry.study, entry.assigned_to, entry.assigned_at or now, entry.claimed_at
                )
                if held:
                    self._why[uid] = entry.why
            for entry in entries:
                if entry.study.uid not in wl.studies:
                    wl.add(entry.study, now)
            self._flush()
            return len(entries)

    def held(self) -> AbstractContextManager[object]:
        """The worklist kept to this thread (its lock), for a unit of work that feeds it:
        taken before the unit begins, as :class:`~telerad.services.ports.UnitOfWork` asks."""
        return self._lock

    def _undone_forgets(self) -> None:
        """Should the unit of work open now roll back, what memory holds of it goes too:
        the worklist is rebuilt from the store by the next command."""
        self.unit.on_rollback(self.reset)

    def reset(self) -> None:
        """Forget the worklist (this process no longer decides, or writes it relied on
        were undone): the next command or :meth:`start` rebuilds it from the store."""
        with self._lock:
            self.worklist = Worklist(self.rules(), Roster())
            self._entries.clear()
            self._why.clear()
            self._summary.clear()
            self._nobody.clear()
            self._recorded.clear()
            self._started = False

    def tick(self, now: datetime | None = None) -> None:
        """New rules, roster and sign-ins; then the worklist's clock: hand over, move stale
        studies, escalate, push what waits."""
        now = now or self.clock()
        with self._lock:
            self.start(now)
            self._apply_rules()
            self._refresh(now)
            self.worklist.tick(now)
            self._flush()

    # -- who is signed in ---------------------------------------------------------------
    def _readers(self, now: datetime) -> tuple[list[Reader], frozenset[int]]:
        signed_in = self.store.live_sessions(
            now - self.session_idle, now - self.session_max, now - self.token_window
        )
        readers = []
        for row in self.store.radiologists():
            self._names[row.user_id] = row.display_name or row.username
            readers.append(
                reader_of(
                    row.user_id,
                    self._names[row.user_id],
                    row.licences,
                    row.facility_ids,
                    row.profile,
                    signed_in=False,
                )
            )
        return readers, signed_in

    def _refresh(self, now: datetime) -> None:
        """Re-read the roster; sign in whoever came, mark away whoever's session lapsed."""
        self._refreshed = now
        roster = self.worklist.roster
        readers, signed_in = self._readers(now)
        present = {r.user_id for r in readers}
        for reader in readers:
            was = reader.user_id in roster and roster.get(reader.user_id).signed_in
            roster.put(replace(reader, signed_in=was))
        for reader in list(roster):
            if reader.user_id not in present:  # disabled, deleted or no longer a radiologist
                roster.put(Reader(reader.user_id, reader.name, signed_in=reader.signed_in))
        for reader in sorted(roster, key=lambda r: r.user_id):
            should = reader.user_id in signed_in and reader.user_id in present
            if should and not reader.signed_in:
                self._sign_in(reader.user_id, now)
            elif reader.signed_in and not should:
                if reader.user_id in present:
                    self.worklist.reader_away(reader.user_id, now)
                else:  # they may not read any more: hand everything on
                    self.worklist.reassign_on_sign_out(reader.user_id, now)

    def _sign_in(self, user_id: int, now: datetime) -> None:
        was_away = user_id in self.worklist.away
        self.worklist.sign_in(user_id, now)
        if was_away:  # what stayed with them is attended again
            changes = [
                EntryChange(self._entries[uid], alerts=back_changes(now))
                for uid in self.worklist.held_by.get(user_id, ())
                if uid in self._entries
            ]
            self.store.save(changes)

    def seen(self, user_id: int, now: datetime | None = None, *, token: bool = False) -> None:
        """A radiologist made an authenticated request: they are signed in from now on."""
        now = now or self.clock()
        with self._lock:
            self.start(now)
            if token:
                self.note_token(user_id, now)
            roster = self.worklist.roster
            if user_id not in roster:
                self._refresh(now)
            elif not roster.get(user_id).signed_in:
                self._sign_in(user_id, now)
            self._flush()

    def token_note_due(self, user_id: int) -> bool:
        """Whether a radiologist's token use is worth writing down now (at most every
        :data:`TOKEN_NOTE`: the database keeps it, so every process sees it)."""
        last = self._token_noted.get(user_id)
        return last is None or self.clock() - last >= TOKEN_NOTE

    def note_token(self, user_id: int, now: datetime | None = None) -> None:
        """A radiologist used a bearer token (in any process): signed in from the next tick."""
        now = now or self.clock()
        if self.token_note_due(user_id):
            self._token_noted[user_id] = now
            self.store.note_token_use(user_id, now)

    def signed_out(self, user_id: int, now: datetime | None = None) -> None:
        """The reader signed out: reassign what they hold now rather than at the next tick."""
        now = now or self.clock()
        with self._lock:
            self._token_noted.pop(user_id, None)
            self.store.note_token_use(user_id, None)
            roster = self.worklist.roster
            if user_id in roster and (
                roster.get(user_id).signed_in or user_id in self.worklist.away
            ):
                self.worklist.reassign_on_sign_out(user_id, now)
                self._flush()

    # -- commands ---------------------------------------------------------------------------
    def enqueue(self, study: ReadingStudy, now: datetime | None = None) -> None:
        """A study became readable: route it (see :meth:`holder` for where it went).

        A study already open on the worklist is left as it is; one withdrawn earlier
        comes back with its readiness time, deadline and history.
        """
        now = now or self.clock()
        with self._lock:
            self.start(now)
            if study.uid in self.worklist.studies:
                return
            self._apply_rules()
            if now - self._refreshed >= ROSTER_FRESH:  # credentials changed in the meantime
                self._refresh(now)
            with self.unit:  # the entry, its history and its routing together
                self._undone_forgets()
                reopened = self.store.reopen(study)
                if reopened is None:
                    self._entries[study.uid] = self.store.add_entry(study)
                else:
                    study = self._resume(study, reopened, now)
                self.worklist.add(study, now)
                self._flush()

    def _resume(self, study: ReadingStudy, entry: Reopened, now: datetime) -> ReadingStudy:
        """The study as it was when withdrawn: the contract's clock runs on."""
        deadline = entry.deadline
        if study.priority is not entry.priority:  # the order changed tier meanwhile
            deadline = self.deadline(study.facility_id, study.priority, entry.ready_at)
        holder = frozenset({entry.last_holder}) if entry.last_holder is not None else frozenset()
        self._entries[study.uid] = entry.id
        self._recorded[study.uid] = set(entry.recorded)
        change = EntryChange(entry.id, {"deadline": deadline} if deadline != entry.deadline else {})
        when = deadline.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        detail = f"ready again after more images; the deadline stays {when}"
        change.events.append(_row("reopened", now, None, None, detail))
        self.store.save([change])
        return replace(
            study,
            ready_at=entry.ready_at,
            deadline=deadline,
            prior_readers=study.prior_readers | holder,
        )

    def withdraw(self, study_uid: str, now: datetime | None = None) -> None:
        """More images arrived after it was readable: off the worklist until ready again
        (a study not on the worklist is left alone)."""
        now = now or self.clock()
        with self._lock:
            self.start(now)
            if study_uid not in self.worklist.studies:
                return
            with self.unit:
                self._undone_forgets()
                holder = self.worklist.withdraw(study_uid, now)
                entry = self._entries.pop(study_uid)
                change = EntryChange(entry, {"state": EntryState.WITHDRAWN, "closed_at": now})
                detail = "more images arrived; it comes back with its deadline once complete"
                change.events.append(_row("withdrawn", now, holder, None, detail))
                change.alerts.extend(gone_changes(now))
                self._forget(study_uid)
                self.store.save([change])
                self._flush()

    def holder(self, uid: str) -> int | None:
        """The reader who holds the study now (None: waiting, or not on the worklist)."""
        with self._lock:
            return self.worklist.holder(uid) if uid in self.worklist.studies else None

    def claim(self, uid: str, reader_id: int, now: datetime | None = None) -> None:
        """The reader opens the study (or takes it from the pull pool)."""
        now = now or self.clock()
        with self._lock:
            self.start(now)
            self.worklist.claim(uid, reader_id, now)
            self._flush()

    def release(self, uid: str, reader_id: int, now: datetime | None = None) -> Handover:
        """The reader gives the study back: to another reader, or it stays with them when
        nobody else may read it now (and the handover says why)."""
        now = now or self.clock()
        with self._lock:
            self.start(now)
            wl = self.worklist
            decision = wl.release(uid, reader_id, now)
            self._flush()
            if decision is not None:
                return Handover(decision.reader.user_id if decision.reader else None)
            nobody_else = assign(
                wl.studies[uid], wl.roster, wl.workload, wl.rules, now,
                exclude=frozenset({reader_id}), trigger="released",
            )  # fmt: skip
            return Handover(reader_id, _why_nobody_else(nobody_else.left_out))

    def complete(self, uid: str, reader_id: int, now: datetime | None = None) -> None:
        """The study is read (the report signed): it leaves the worklist."""
        now = now or self.clock()
        with self._lock:
            self.start(now)
            self.worklist.complete(uid, reader_id, now)
            self._flush()

    # -- the supervisor -----------------------------------------------------------------
    def assign_by_hand(
        self, uid: str, reader_id: int, actor: Actor, now: datetime | None = None
    ) -> Item:
        """A supervisor gives the study to an eligible reader (audited)."""
        now = now or self.clock()
        with self._lock:
            self.start(now)
            self._refresh(now)
            study = self.worklist.study(uid)
            # The assignment and its audit record together (a refusal writes nothing).
            with self.unit:
                self.worklist.assign_by_hand(uid, reader_id, now, by=f"supervisor {actor.id}")
                self._undone_forgets()
                self._flush()
                item = self._item(uid, now)
                detail = f"reading worklist: assigned by hand to {item.holder_name}"
                self._audit(actor, study, detail)
        return item

    def acknowledge(
        self, alert_id: int, actor: Actor, user_id: int, facility_ids: frozenset[int] | None
    ) -> AlertRow | None:
        """The supervisor saw an alert (audited); None when it is not live or not theirs."""
        with self.unit:  # the acknowledgement and its audit record together
            row = self.store.acknowledge_alert(alert_id, user_id, self.clock(), facility_ids)
            if row is not None:
                detail = f"reading worklist: {row.kind.value} alert acknowledged"
                study = self.worklist.studies.get(row.study_uid)
                self._audit(actor, study, detail, row.study_uid, row.facility_id)
        return row

    def _audit(
        self,
        actor: Actor,
        study: ReadingStudy | None,
        detail: str,
        uid: str = "",
        facility_id: int | None = None,
    ) -> None:
        if self.audit is None:
            return
        fid = study.facility_id if study is not None else facility_id
        self.audit.record(
            EventID.PROCEDURE_RECORD,
            actor.id,
            actor_role=actor.role,
            actor_is_user=actor.is_user,
            action=Action.UPDATE,
            source_address=actor.source,
            study_uid=study.uid if study is not None else uid,
            facility=self.facility_name(fid) if fid is not None else "",
            detail=detail,
        )

    # -- storing what happened ------------------------------------------------------------
    def _forget(self, uid: str) -> None:
        self._entries.pop(uid, None)
        self._why.pop(uid, None)
        self._summary.pop(uid, None)
        self._nobody.pop(uid, None)
        self._recorded.pop(uid, None)

    def _flush(self) -> None:
        events = list(self.worklist.events)
        self.worklist.events.clear()
        if not events:
            return
        changes: dict[int, EntryChange] = {}
        closed = []
        for event in events:
            entry = self._entries.get(event.uid)
            if entry is None:
                continue
            change = changes.setdefault(entry, EntryChange(entry))
            row = self._record(event, change.values)
            if row is not None:
                change.events.append(row)
            if row is not None or not isinstance(event, (Escalated, Breached)):
                change.alerts.extend(self._alerts(event, entry))
            if isinstance(event, Completed):
                closed.append(event.uid)
        self.store.save(changes.values())
        for uid in closed:
            self._forget(uid)

    def _alerts(self, event: Event, entry: int) -> list[AlertChange]:
        found = alert_changes(event, self.worklist.studies.get(event.uid), self._name)
        for alert in found:
            if alert.raise_kind is not None:  # what a supervisor must see: no PHI in the log
                log.warning("worklist alert: %s (entry %s)", alert.raise_kind.value, entry)
        return found

    def _record(self, event: Event, values: dict[str, Any]) -> dict[str, Any] | None:
        """The entry's new column values for ``event``, and its history row."""
        match event:
            case Assigned(uid, reader, at, why, short):
                self._why[uid], self._summary[uid] = why, short
                self._nobody.pop(uid, None)
                values.update(
                    assigned_to=reader,
                    assigned_at=at,
                    first_assigned_at=at,
                    claimed_at=None,
                    why=why,
                )
                return _row("assigned", at, reader, None, why)
            case Claimed(uid, reader, at, pulled):
                values.update(claimed_at=at)
                return _row("claimed", at, reader, None, "pulled from the pool" if pulled else "")
            case Reassigned(uid, from_reader, to_reader, reason, at):
                if to_reader is None:
                    self._why.pop(uid, None)
                    self._summary.pop(uid, None)
                    values.update(assigned_to=None, assigned_at=None, claimed_at=None, why="")
                return _row("reassigned", at, from_reader, to_reader, reason)
            case Completed(uid, reader, at):
                values.update(
                    state=EntryState.COMPLETED, completed_at=at, completed_by=reader, closed_at=at
                )
                return _row("completed", at, reader, None, "")
            case Escalated(uid, action, at, reader):
                return self._once(uid, "escalated", action.value, at, reader)
            case Breached(uid, at, reader):
                values.update(breached_at=at)
                return self._once(uid, "breached", "", at, reader)
            case NoReader(uid, at, reason, _):
                return _row("no-reader", at, None, None, reason)
            case Unattended(uid, reader, at, reason):
                return _row("unattended", at, reader, None, reason)
        return None

    def _once(
        self, uid: str, kind: str, detail: str, at: datetime, reader: int | None
    ) -> dict[str, Any] | None:
        """Escalations are recorded once per read, also across a restart."""
        key = f"{kind}:{detail}"
        seen = self._recorded.setdefault(uid, set())
        if key in seen:
            return None
        seen.add(key)
        return _row(kind, at, reader, None, detail)


def _why_nobody_else(left_out: dict[str, int]) -> str:
    """Why nobody but the releasing reader may take a study now, in words."""
    others = {why: n for why, n in left_out.items() if why != GAVE_IT_BACK}
    if not others:
        return "Nobody else on the roster may read it."
    counts = sorted(others.items(), key=lambda kv: (-kv[1], kv[0]))
    return "The other qualified readers are " + ", ".join(f"{n} {w}" for w, n in counts) + "."


def _row(
    kind: str, at: datetime, reader: int | None, to_reader: int | None, detail: str
) -> dict[str, Any]:
    return {"kind": kind, "at": at, "reader_id": reader, "to_reader": to_reader, "detail": detail}
