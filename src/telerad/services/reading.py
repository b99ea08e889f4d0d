"""The reading worklist as a running service: routing, holds, history, the ticker.

Use cases over the pure :class:`~telerad.workflow.worklist.Worklist` aggregate:
``enqueue`` (a study became readable), ``withdraw`` (more images arrived),
``claim``, ``release``, ``complete`` (marked read), and the views people see
(``worklist_of`` a reader, the supervisor's ``board``, ``explain``,
``turnaround``). Every command runs under one lock, then stores what the
aggregate recorded: each read's entry (who holds it, when assigned, opened,
read) and its events with their explanations, from which TAT and SLA are
computed.

The roster is built from the accounts: radiologists with their licences
(jurisdictions), privileges (facility ids) and reader profiles. A radiologist is
*signed in* while they have a live browser session (the session policy's idle
and maximum ages) or used a bearer token within :attr:`ReadingService.token_window`;
when that ends, everything they hold is reassigned. The ticker re-reads the
roster and sessions, reloads the rules file when it changed, and runs the
worklist's clock (off-shift and stale reassignment, escalation, pushing what waits).

On start the worklist is rebuilt from the open entries and those studies are
routed again (a reader may get a different study than before the restart).
Assignments are not access to patient data: opening a study is audited by the
viewer's path, not here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from telerad.domain.read_status import ReadState
from telerad.domain.readers import reader_of
from telerad.domain.reading_entries import (
    EntryChange,
    EntryEvent,
    FinishedRead,
    History,
    OpenEntry,
    RosterRow,
)
from telerad.domain.turnaround import FacilitySla, Read, TierTat, per_facility, per_tier
from telerad.services.readers import ProfileStore
from telerad.workflow.engine import Roster, assign
from telerad.workflow.model import Priority, Reader, ReadingStudy
from telerad.workflow.rules import EscalationAction, Rules, RulesSource, default_rules
from telerad.workflow.worklist import (
    Assigned,
    Breached,
    Claimed,
    Completed,
    Escalated,
    Event,
    Reassigned,
    Worklist,
    WorklistError,
)

log = logging.getLogger("telerad.reading")

__all__ = ["ReadingService", "ReadingStore", "WorklistError"]


class ReadingStore(ProfileStore, Protocol):
    """Where worklist entries, their history and the roster are kept
    (storage.db.reading_repository.SqlReading).

    Reader profiles live in the same store: `telerad reader` and the demo hand
    ``ReadingService.store`` to :class:`~telerad.services.readers.ReaderAdmin`.
    """

    def radiologists(self) -> list[RosterRow]: ...

    def live_sessions(self, seen_since: datetime, created_since: datetime) -> frozenset[int]: ...

    def add_entry(self, study: ReadingStudy) -> int: ...

    def save(self, changes: Iterable[EntryChange]) -> None: ...

    def open_entries(self) -> list[OpenEntry]: ...

    def history(self, study_uid: str) -> History | None: ...

    def read_states(self, study_uids: Sequence[str]) -> dict[str, ReadState]:
        """The latest read of each of these studies that has been on the worklist."""
        ...

    def finished(
        self, since: datetime, facility_ids: frozenset[int] | None = None
    ) -> list[FinishedRead]: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Item:
    """One study on the worklist as people see it."""

    study: ReadingStudy
    holder: int | None
    holder_name: str
    opened: bool
    #: assigned (pushed, not opened), opened, pool (may be claimed), waiting (nobody yet)
    state: str
    why: str
    #: ok, at-risk (past the supervisor alert share of its turnaround), breached
    status: str
    time_left: timedelta


@dataclass(frozen=True)
class ReaderLoad:
    user_id: int
    name: str
    signed_in: bool
    on_shift: bool
    studies: int
    rvu: float
    cap: float


@dataclass(frozen=True)
class Board:
    items: list[Item]
    readers: list[ReaderLoad]
    network: str
    rules_error: str | None


@dataclass(frozen=True)
class Explanation:
    item: Item | None  # None: no longer on the worklist
    state: str  # open, completed, withdrawn
    facility_id: int
    history: list[EntryEvent]
    now: str  # for a waiting study: why nobody has it now


class ReadingService:
    def __init__(
        self,
        store: ReadingStore,
        rules_file: Path | None = None,
        *,
        session_idle: timedelta = timedelta(minutes=30),
        session_max: timedelta = timedelta(hours=12),
        token_window: timedelta = timedelta(minutes=10),
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.clock = clock
        self.session_idle = session_idle
        self.session_max = session_max
        #: A bearer token used this recently counts as signed in.
        self.token_window = token_window
        self._source = RulesSource(rules_file) if rules_file is not None else None
        self._default = default_rules() if rules_file is None else None
        self._lock = threading.RLock()
        self.worklist = Worklist(self.rules(), Roster())
        self._entries: dict[str, int] = {}  # open study uid → entry id
        self._why: dict[str, str] = {}  # open study uid → its holder's explanation
        self._recorded: dict[str, set[str]] = {}  # escalations stored before a restart
        self._names: dict[int, str] = {}
        self._token_seen: dict[int, datetime] = {}
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self._started = False

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
        """Load the roster and route the open entries again; returns how many.

        Every command starts the service first when nobody did (`telerad serve` does).
        """
        now = now or self.clock()
        with self._lock:
            if self._started:
                return 0
            self._started = True
            self._refresh(now)
            entries = self.store.open_entries()
            entries.sort(key=lambda e: (e.study.priority.rank, e.study.deadline, e.study.uid))
            for entry in entries:
                self._entries[entry.study.uid] = entry.id
                self._recorded[entry.study.uid] = set(entry.recorded)
                self.worklist.add(entry.study, now)
            self._flush()
            return len(entries)

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

    def start_ticker(self, interval: float = 20.0) -> None:
        """Tick every ``interval`` seconds in a background thread until :meth:`stop_ticker`."""
        if self._ticker is not None:
            return
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.tick()
                except Exception:  # a failed tick must not stop the clock
                    log.exception("worklist tick failed")

        self._ticker = threading.Thread(target=run, name="worklist-ticker", daemon=True)
        self._ticker.start()

    def shutdown(self) -> None:
        """Stop the ticker (the server stops its listeners' handles this way)."""
        self.stop_ticker()

    def stop_ticker(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=10)
            self._ticker = None

    # -- who is signed in ---------------------------------------------------------------
    def _readers(self, now: datetime) -> tuple[list[Reader], frozenset[int]]:
        live = self.store.live_sessions(now - self.session_idle, now - self.session_max)
        tokens = list(self._token_seen.items())  # note_token() writes without the lock
        recent = {uid for uid, at in tokens if now - at <= self.token_window}
        signed_in = live | recent
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
        return readers, frozenset(signed_in)

    def _refresh(self, now: datetime) -> None:
        """Re-read the roster; sign in and out whoever changed."""
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
                self.worklist.sign_in(reader.user_id, now)
            elif reader.signed_in and not should:
                self.worklist.reassign_on_sign_out(reader.user_id, now)

    def seen(self, user_id: int, now: datetime | None = None, *, token: bool = False) -> None:
        """A radiologist made an authenticated request: they are signed in from now on."""
        now = now or self.clock()
        with self._lock:
            self.start(now)
            if token:
                self._token_seen[user_id] = now
            roster = self.worklist.roster
            if user_id not in roster:
                self._refresh(now)
            elif not roster.get(user_id).signed_in:
                self.worklist.sign_in(user_id, now)
            self._flush()

    def note_token(self, user_id: int) -> None:
        """A radiologist used a bearer token (anywhere): cheap, lock-free; seen at the next tick."""
        self._token_seen[user_id] = self.clock()

    def signed_out(self, user_id: int, now: datetime | None = None) -> None:
        """The reader signed out: reassign what they hold now rather than at the next tick."""
        now = now or self.clock()
        with self._lock:
            self._token_seen.pop(user_id, None)
            if user_id in self.worklist.roster and self.worklist.roster.get(user_id).signed_in:
                self.worklist.reassign_on_sign_out(user_id, now)
                self._flush()

    # -- commands ---------------------------------------------------------------------------
    def enqueue(self, study: ReadingStudy, now: datetime | None = None) -> None:
        """A study became readable: route it (see :meth:`holder` for where it went).

        A study already open on the worklist is left as it is.
        """
        now = now or self.clock()
        with self._lock:
            self.start(now)
            if study.uid in self.worklist.studies:
                return
            self._apply_rules()
            self._entries[study.uid] = self.store.add_entry(study)
            self.worklist.add(study, now)
            self._flush()

    def withdraw(self, study_uid: str, now: datetime | None = None) -> None:
        """More images arrived after it was readable: off the worklist until ready again
        (a study not on the worklist is left alone)."""
        now = now or self.clock()
        with self._lock:
            self.start(now)
            if study_uid not in self.worklist.studies:
                return
            holder = self.worklist.withdraw(study_uid, now)
            entry = self._entries.pop(study_uid)
            change = EntryChange(entry, {"state": "withdrawn", "closed_at": now})
            change.events.append(_row("withdrawn", now, holder, None, "more images arrived"))
            self._why.pop(study_uid, None)
            self._recorded.pop(study_uid, None)
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

    def release(self, uid: str, reader_id: int, now: datetime | None = None) -> int | None:
        """The reader gives the study back; returns who has it now (them, when nobody else
        may read it)."""
        now = now or self.clock()
        with self._lock:
            self.start(now)
            decision = self.worklist.release(uid, reader_id, now)
            self._flush()
            if decision is None:
                return reader_id
            return decision.reader.user_id if decision.reader else None

    def complete(self, uid: str, reader_id: int, now: datetime | None = None) -> None:
        """The study is read (the report signed): it leaves the worklist."""
        now = now or self.clock()
        with self._lock:
            self.start(now)
            self.worklist.complete(uid, reader_id, now)
            self._flush()

    # -- storing what happened ------------------------------------------------------------
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
            if isinstance(event, Completed):
                closed.append(event.uid)
        self.store.save(changes.values())
        for uid in closed:
            self._entries.pop(uid, None)
            self._why.pop(uid, None)
            self._recorded.pop(uid, None)

    def _record(self, event: Event, values: dict[str, Any]) -> dict[str, Any] | None:
        """The entry's new column values for ``event``, and its history row."""
        match event:
            case Assigned(uid, reader, at, why):
                self._why[uid] = why
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
                    values.update(assigned_to=None, assigned_at=None, claimed_at=None, why="")
                return _row("reassigned", at, from_reader, to_reader, reason)
            case Completed(uid, reader, at):
                values.update(state="completed", completed_at=at, completed_by=reader, closed_at=at)
                return _row("completed", at, reader, None, "")
            case Escalated(uid, action, at, reader):
                return self._once(uid, "escalated", action.value, at, reader)
            case Breached(uid, at, reader):
                values.update(breached_at=at)
                return self._once(uid, "breached", "", at, reader)
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

    # -- views ------------------------------------------------------------------------------
    def _item(self, uid: str, now: datetime, reader_id: int | None = None) -> Item:
        wl = self.worklist
        study = wl.studies[uid]
        hold = wl.holds.get(uid)
        opened = hold is not None and hold.claimed_at is not None
        if hold is not None:
            state = "opened" if opened else "assigned"
        elif self._pooled(study, now):
            state = "pool"
        else:
            state = "waiting"
        why = self._why.get(uid, "") if hold is not None else ""
        if state == "pool":
            who = f"reader {reader_id}" if reader_id is not None else "an eligible reader"
            why = f"In the pull pool ({study.priority}): {who} may claim it."
        holder = hold.reader_id if hold else None
        return Item(
            study=study,
            holder=holder,
            holder_name=self._names.get(holder, f"reader {holder}") if holder else "",
            opened=opened,
            state=state,
            why=why,
            status=self._status(study, now),
            time_left=study.deadline - now,
        )

    def _urgency(self, uid: str) -> tuple[int, datetime, str]:
        study = self.worklist.studies[uid]
        return (study.priority.rank, study.deadline, uid)

    def _pooled(self, study: ReadingStudy, now: datetime) -> bool:
        """In the pull pool, waiting to be claimed (not yet pushed by the ladder)."""
        rules = self.worklist.rules
        return (
            rules.pull_pool
            and study.priority in rules.pull_tiers
            and not rules.widened(study.elapsed_fraction(now))
        )

    def _status(self, study: ReadingStudy, now: datetime) -> str:
        if now >= study.deadline:
            return "breached"
        alert = [s.at for s in self.worklist.rules.escalation if s.action is _ALERT]
        if study.elapsed_fraction(now) >= (alert[0] if alert else 0.8):
            return "at-risk"
        return "ok"

    def worklist_of(self, reader_id: int, now: datetime | None = None) -> list[Item]:
        """What the reader holds (most urgent first), then the pull pool they may claim."""
        now = now or self.clock()
        with self._lock:
            self.start(now)
            wl = self.worklist
            held = sorted(wl.held_by.get(reader_id, ()), key=self._urgency)
            items = [self._item(uid, now) for uid in held]
            if wl.rules.pull_pool and reader_id in wl.roster:
                reader = wl.roster.get(reader_id)
                pool = []
                for uid in wl.pending:
                    study = wl.studies[uid]
                    if not self._pooled(study, now):
                        continue
                    if wl.roster.eligible(reader, study, now)[0]:
                        pool.append(uid)
                items += [
                    self._item(uid, now, reader_id) for uid in sorted(pool, key=self._urgency)
                ]
            return items

    def board(self, facility_ids: frozenset[int] | None, now: datetime | None = None) -> Board:
        """Every open study the caller may see, by priority and deadline; the readers' load."""
        now = now or self.clock()
        with self._lock:
            self.start(now)
            wl = self.worklist
            visible = [
                uid
                for uid, s in wl.studies.items()
                if facility_ids is None or s.facility_id in facility_ids
            ]
            items = [self._item(uid, now) for uid in sorted(visible, key=self._urgency)]
            readers = []
            for reader in sorted(wl.roster, key=lambda r: r.user_id):
                if facility_ids is not None and not reader.facility_ids & facility_ids:
                    continue
                held = [
                    wl.studies[uid]
                    for uid in wl.held_by.get(reader.user_id, ())
                    if facility_ids is None or wl.studies[uid].facility_id in facility_ids
                ]
                readers.append(
                    ReaderLoad(
                        reader.user_id,
                        reader.name or f"reader {reader.user_id}",
                        reader.signed_in,
                        wl.roster.on_shift(reader, now),
                        len(held),
                        sum(s.rvu for s in held),
                        wl.rules.cap_of(reader.queue_cap_rvu),
                    )
                )
            return Board(items, readers, wl.rules.network, self.rules_error)

    def item(self, uid: str, now: datetime | None = None) -> Item | None:
        with self._lock:
            if uid not in self.worklist.studies:
                return None
            return self._item(uid, now or self.clock())

    def explain(self, uid: str, now: datetime | None = None) -> Explanation | None:
        """The study's assignment history and, while nobody holds it, why nobody does."""
        now = now or self.clock()
        with self._lock:
            history = self.store.history(uid)
            if history is None:
                return None
            item = self._item(uid, now) if uid in self.worklist.studies else None
            text = ""
            if item is not None and item.holder is None:
                wl = self.worklist
                decision = assign(
                    wl.studies[uid], wl.roster, wl.workload, wl.rules, now,
                    trigger="asked why it waits",
                )  # fmt: skip
                text = decision.explain()
            return Explanation(item, history.state, history.facility_id, history.events, text)

    def turnaround(
        self, facility_ids: frozenset[int] | None, since: datetime
    ) -> tuple[list[TierTat], list[FacilitySla]]:
        """TAT percentiles per tier and SLA compliance per facility of reads since ``since``."""
        reads = [
            Read(f.facility_id, f.priority, f.ready_at, f.deadline, f.completed_at)
            for f in self.store.finished(since, facility_ids)
        ]
        return per_tier(reads), per_facility(reads)


_ALERT = EscalationAction.ALERT_SUPERVISOR


def _row(
    kind: str, at: datetime, reader: int | None, to_reader: int | None, detail: str
) -> dict[str, Any]:
    return {"kind": kind, "at": at, "reader_id": reader, "to_reader": to_reader, "detail": detail}
