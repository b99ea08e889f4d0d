"""What people see of the reading worklist: a reader's queue, the board, explanations.

Read-only views over the service's state (:class:`ReadingViews` is mixed into
:class:`~telerad.services.reading.ReadingService`, whose lock and worklist it
reads). Every row says why it is where it is: the holder's short reason, the
pull pool, or — for a study nobody holds — why nobody may take it now.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from telerad.domain.reading_entries import (
    AlertRow,
    EntryEvent,
    EntryState,
    ItemState,
    SlaStatus,
)
from telerad.domain.turnaround import FacilitySla, Read, TierTat, per_facility, per_tier
from telerad.workflow.explain import nobody
from telerad.workflow.model import Reader, ReadingStudy, minute_of
from telerad.workflow.routing import assign
from telerad.workflow.rules import EscalationAction
from telerad.workflow.worklist import Worklist

if TYPE_CHECKING:
    from telerad.services.ports import ReadingStore


@dataclass(frozen=True)
class Item:
    """One study on the worklist as people see it."""

    study: ReadingStudy
    holder: int | None
    holder_name: str
    opened: bool
    state: ItemState
    #: The whole explanation: why this reader, why now; or why nobody has it.
    why: str
    status: SlaStatus
    time_left: timedelta
    #: The reason in one short line ("neuro, licensed in US-TX, least loaded of 3").
    summary: str = ""


@dataclass(frozen=True)
class ReaderLoad:
    user_id: int
    name: str
    signed_in: bool
    on_shift: bool
    studies: int
    rvu: float
    cap: float
    away: bool = False


@dataclass(frozen=True)
class Board:
    items: list[Item]
    readers: list[ReaderLoad]
    network: str
    rules_error: str | None
    #: Live alerts, unacknowledged first, most serious first.
    alerts: list[AlertRow]


@dataclass(frozen=True)
class Explanation:
    item: Item | None  # None: no longer on the worklist
    state: EntryState
    facility_id: int
    history: list[EntryEvent]
    now: str  # for a waiting study: why nobody has it now


@dataclass(frozen=True)
class Candidate:
    """A reader a supervisor may give a study to, or why not."""

    user_id: int
    name: str
    reasons: tuple[str, ...]  # empty: eligible now
    rvu: float
    cap: float

    @property
    def eligible(self) -> bool:
        return not self.reasons


_ALERT = EscalationAction.ALERT_SUPERVISOR


class ReadingViews:
    """The views; the service provides the state below."""

    store: ReadingStore
    worklist: Worklist
    clock: Callable[[], datetime]
    _lock: threading.RLock
    _why: dict[str, str]
    _summary: dict[str, str]
    _names: dict[int, str]
    _nobody: dict[str, tuple[datetime, str]]

    def start(self, now: datetime | None = None) -> int:
        raise NotImplementedError

    def _refresh(self, now: datetime) -> None:
        raise NotImplementedError

    def _flush(self) -> None:
        raise NotImplementedError

    def _name(self, reader_id: int | None) -> str:
        if reader_id is None:
            return ""
        return self._names.get(reader_id, f"reader {reader_id}")

    def _why_nobody(self, uid: str, now: datetime) -> str:
        """Why nobody holds a waiting study now, worked out once a minute."""
        minute = minute_of(now)
        cached = self._nobody.get(uid)
        if cached is not None and cached[0] == minute:
            return cached[1]
        wl = self.worklist
        decision = assign(
            wl.studies[uid], wl.roster, wl.workload, wl.rules, now, trigger="asked why it waits"
        )
        text = nobody(decision) if decision.reader is None else "Waiting to be pushed."
        self._nobody[uid] = (minute, text)
        return text

    def _item(self, uid: str, now: datetime, reader_id: int | None = None) -> Item:
        wl = self.worklist
        study = wl.studies[uid]
        hold = wl.holds.get(uid)
        opened = hold is not None and hold.claimed_at is not None
        if hold is not None:
            state = ItemState.OPENED if opened else ItemState.ASSIGNED
        elif self._pooled(study, now):
            state = ItemState.POOL
        else:
            state = ItemState.WAITING
        if hold is not None:
            why = self._why.get(uid, "")
            summary = self._summary.get(uid, "") or why.split("\n")[0]
            if hold.reader_id in wl.away:
                summary = f"{summary}; reader away".lstrip("; ")
        elif state is ItemState.POOL:
            who = f"reader {reader_id}" if reader_id is not None else "an eligible reader"
            why = summary = f"In the pull pool ({study.priority}): {who} may claim it."
        else:
            why = summary = self._why_nobody(uid, now)
        holder = hold.reader_id if hold else None
        return Item(
            study=study,
            holder=holder,
            holder_name=self._name(holder),
            opened=opened,
            state=state,
            why=why,
            status=self._status(study, now),
            time_left=study.deadline - now,
            summary=summary,
        )

    def _urgency(self, uid: str) -> tuple[int, datetime, str]:
        """The worklist's own reading order: what the engine planned to be read first."""
        return self.worklist.order(uid)

    def _pooled(self, study: ReadingStudy, now: datetime) -> bool:
        """In the pull pool, waiting to be claimed (not yet pushed by the ladder)."""
        rules = self.worklist.rules
        return (
            rules.pull_pool
            and study.priority in rules.pull_tiers
            and not rules.widened(study.elapsed_fraction(now))
        )

    def _status(self, study: ReadingStudy, now: datetime) -> SlaStatus:
        if now >= study.deadline:
            return SlaStatus.BREACHED
        alert = [s.at for s in self.worklist.rules.escalation if s.action is _ALERT]
        if study.elapsed_fraction(now) >= (alert[0] if alert else 0.8):
            return SlaStatus.AT_RISK
        return SlaStatus.OK

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

    def _load(
        self, reader: Reader, now: datetime, facility_ids: frozenset[int] | None
    ) -> ReaderLoad:
        wl = self.worklist
        held = [
            wl.studies[uid]
            for uid in wl.held_by.get(reader.user_id, ())
            if facility_ids is None or wl.studies[uid].facility_id in facility_ids
        ]
        return ReaderLoad(
            reader.user_id,
            reader.name or f"reader {reader.user_id}",
            reader.signed_in,
            wl.roster.on_shift(reader, now),
            len(held),
            sum(s.rvu for s in held),
            wl.rules.cap_of(reader.queue_cap_rvu),
            away=reader.user_id in wl.away,
        )

    def board(self, facility_ids: frozenset[int] | None, now: datetime | None = None) -> Board:
        """Every open study the caller may see, by priority and deadline; the readers'
        load; the live alerts."""
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
            readers = [
                self._load(reader, now, facility_ids)
                for reader in sorted(wl.roster, key=lambda r: r.user_id)
                if facility_ids is None or reader.facility_ids & facility_ids
            ]
            alerts = self.store.live_alerts(facility_ids)
            alerts.sort(key=lambda a: (a.acknowledged_at is not None, a.kind.rank, a.raised_at))
            return Board(items, readers, wl.rules.network, self.rules_error, alerts)

    @property
    def rules_error(self) -> str | None:
        raise NotImplementedError

    def item(self, uid: str, now: datetime | None = None) -> Item | None:
        with self._lock:
            if uid not in self.worklist.studies:
                return None
            return self._item(uid, now or self.clock())

    def candidates(self, uid: str, now: datetime | None = None) -> list[Candidate]:
        """Who a supervisor may give the study to, each with why not when they may not."""
        now = now or self.clock()
        with self._lock:
            self.start(now)
            self._refresh(now)  # the credentials as they are now, not at the last tick
            self._flush()
            wl = self.worklist
            found = []
            for reader, reasons in wl.candidates(uid, now):
                load = self._load(reader, now, None)
                found.append(Candidate(reader.user_id, load.name, reasons, load.rvu, load.cap))
            return found

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
        self,
        facility_ids: frozenset[int] | None,
        since: datetime,
        now: datetime | None = None,
    ) -> tuple[list[TierTat], list[FacilitySla]]:
        """TAT percentiles per tier and SLA compliance per facility of reads since
        ``since``; open studies already past their deadline count as breaches."""
        now = now or self.clock()
        reads = [
            Read(f.facility_id, f.priority, f.ready_at, f.deadline, f.completed_at)
            for f in self.store.finished(since, facility_ids)
        ]
        with self._lock:
            overdue: Sequence[ReadingStudy] = [
                s
                for s in self.worklist.studies.values()
                if s.deadline <= now and (facility_ids is None or s.facility_id in facility_ids)
            ]
        reads += [Read(s.facility_id, s.priority, s.ready_at, s.deadline, None) for s in overdue]
        return per_tier(reads), per_facility(reads)
