"""The reading worklist's state and machinery: the waiting list and its indexes, holds
and workload, pushing what waits, the escalation ladder.

:class:`WorklistState` keeps what :class:`~telerad.workflow.worklist.Worklist`'s
commands change, in the only places each part changes (``pending`` in the waiting
list's methods, holds and workload in giving and taking back), so the indexes
stay true. Pure: no I/O.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from telerad.workflow.explain import summary
from telerad.workflow.model import Reader, ReadingStudy, minute_of
from telerad.workflow.routing import (
    EPSILON,
    Decision,
    QualificationKey,
    Roster,
    Workload,
    assign,
    qualification_key,
    reading_order,
    start_in,
)
from telerad.workflow.rules import EscalationAction, Rules
from telerad.workflow.worklist_events import (
    Assigned,
    Breached,
    Escalated,
    Event,
    Reassigned,
)


class WorklistError(ValueError):
    """A command the worklist refuses (unknown study, not yours, not eligible...)."""


class ClaimError(WorklistError):
    """Someone else holds the study, or it cannot be pulled."""


@dataclass
class Hold:
    reader_id: int
    assigned_at: datetime
    claimed_at: datetime | None = None


class WorklistState:
    def __init__(self, rules: Rules, roster: Roster) -> None:
        self.rules = rules
        self.roster = roster
        self.studies: dict[str, ReadingStudy] = {}
        self.holds: dict[str, Hold] = {}
        self.held_by: dict[int, set[str]] = {}
        self.pending: set[str] = set()
        self.workload = Workload(order=lambda s: reading_order(s, self.roster, self.rules))
        self.events: list[Event] = []
        self._steps_done: dict[str, int] = {}
        #: When each study reaches its next escalation step, as near as a timedelta says.
        self._step_due: dict[str, datetime] = {}
        #: The minute when every waiting critical study was last tried.
        self._critical_checked: datetime | None = None
        #: The waiting studies by what qualifies a reader for them, and the critical ones.
        self._waiting: dict[QualificationKey, set[str]] = {}
        self._critical_waiting: set[str] = set()
        #: Who is qualified for each waiting group, and the other way round.
        self._group_readers: dict[QualificationKey, tuple[int, ...]] = {}
        self._reader_groups: dict[int, set[QualificationKey]] = {}
        self._indexed: tuple[Roster, int] = (roster, roster.version)
        #: When each hold goes stale: (due, tie-break, uid, hold, its claimed_at then).
        self._stale_at: list[tuple[datetime, int, str, Hold, datetime | None]] = []
        self._ties = itertools.count()
        #: Readers whose every unopened study was last found eligible, as they were then.
        self._cleared: dict[int, Reader] = {}
        #: Readers whose presence lapsed (an idle session) without signing out: what they
        #: hold moves when someone else may read it, and stays with them otherwise.
        self.away: set[int] = set()

    # -- reading the state

    def study(self, uid: str) -> ReadingStudy:
        try:
            return self.studies[uid]
        except KeyError:
            raise WorklistError(f"study {uid} is not on the worklist") from None

    def holder(self, uid: str) -> int | None:
        hold = self.holds.get(uid)
        return hold.reader_id if hold else None

    def order(self, uid: str) -> tuple[int, datetime, str]:
        """The study's place in a reader's queue (:func:`reading_order`), which is also
        the order waiting studies are pushed in: sort by it, most urgent first."""
        return reading_order(self.studies[uid], self.roster, self.rules)

    _urgency = order

    def _in_pull_pool(self, study: ReadingStudy) -> bool:
        return self.rules.pull_pool and study.priority in self.rules.pull_tiers

    # -- the waiting list and its indexes (the only places ``pending`` changes)

    def _wait(self, uid: str) -> None:
        study = self.studies[uid]
        self.pending.add(uid)
        key = qualification_key(study)
        group = self._waiting.get(key)
        if group is None:
            group = self._waiting[key] = set()
            self._index_group(key, study)
        group.add(uid)
        if study.priority in self.rules.bypass_cap:
            self._critical_waiting.add(uid)

    def _index_group(self, key: QualificationKey, study: ReadingStudy) -> None:
        qualified = self._group_readers[key] = self.roster.qualified_for(study)
        for reader_id in qualified:
            self._reader_groups.setdefault(reader_id, set()).add(key)

    def _groups_of(self, reader_id: int) -> list[tuple[QualificationKey, set[str]]]:
        """The waiting groups ``reader_id`` is qualified for."""
        if self._indexed != (self.roster, self.roster.version):  # credentials changed
            self._indexed = (self.roster, self.roster.version)
            self._group_readers, self._reader_groups = {}, {}
            for key, group in self._waiting.items():
                self._index_group(key, self.studies[next(iter(group))])
        return [(key, self._waiting[key]) for key in self._reader_groups.get(reader_id, ())]

    def _unwait(self, uid: str) -> None:
        if uid not in self.pending:
            return
        self.pending.discard(uid)
        key = qualification_key(self.studies[uid])
        group = self._waiting[key]
        group.discard(uid)
        if not group:
            del self._waiting[key]
            for reader_id in self._group_readers.pop(key, ()):
                self._reader_groups[reader_id].discard(key)
        self._critical_waiting.discard(uid)

    # -- holding and letting go (the only places holds and workload change)

    def _watch(self, uid: str, hold: Hold) -> None:
        """Note when ``hold`` goes stale (an entry whose hold changed since is skipped)."""
        priority = self.studies[uid].priority
        if hold.claimed_at is None:
            due = hold.assigned_at + timedelta(minutes=self.rules.unclaimed_minutes[priority])
        else:
            due = hold.claimed_at + timedelta(minutes=self.rules.claimed_minutes[priority])
        entry = (due, next(self._ties), uid, hold, hold.claimed_at)
        heapq.heappush(self._stale_at, entry)

    def _give(self, uid: str, decision: Decision, now: datetime) -> None:
        assert decision.reader is not None and uid not in self.holds
        reader_id = decision.reader.user_id
        study = replace(self.studies[uid], assigned_to=reader_id)
        self.studies[uid] = study
        self.holds[uid] = hold = Hold(reader_id, now)
        self._watch(uid, hold)
        self.held_by.setdefault(reader_id, set()).add(uid)
        self._unwait(uid)
        self.workload.add(reader_id, study)
        self.events.append(Assigned(uid, reader_id, now, decision.explain(), summary(decision)))

    def _take_back(self, uid: str) -> Hold:
        hold = self.holds.pop(uid)
        study = self.studies[uid]
        self.workload.remove(hold.reader_id, study)
        self.held_by[hold.reader_id].discard(uid)
        self.studies[uid] = replace(study, assigned_to=None)
        self._wait(uid)
        return hold

    def _route(
        self, uid: str, now: datetime, trigger: str, exclude: frozenset[int] = frozenset()
    ) -> Decision:
        decision = assign(
            self.studies[uid], self.roster, self.workload, self.rules, now,
            exclude=exclude, trigger=trigger,
        )  # fmt: skip
        if decision.reader is not None:
            self._give(uid, decision, now)
        return decision

    def _move(
        self, uid: str, now: datetime, reason: str, *, keep_if_nobody: bool, sooner: bool = False
    ) -> Decision | None:
        """Give a held study to another reader; when nobody fits, keep it or put it back.
        ``sooner``: only to a reader who would open it sooner than its holder would."""
        hold = self.holds[uid]
        if keep_if_nobody and not self._anyone_else(uid, hold.reader_id, now):
            return None  # what the engine would find, without a decision to explain it
        decision = assign(
            self.studies[uid], self.roster, self.workload, self.rules, now,
            exclude=frozenset({hold.reader_id}), trigger=reason,
        )  # fmt: skip
        if decision.reader is None and keep_if_nobody:
            return None
        if sooner and decision.score is not None:
            holder = self.roster.get(hold.reader_id)
            if decision.score.wait_minutes >= start_in(holder, self.studies[uid], self.workload):
                return None
        self._take_back(uid)
        to = None
        if decision.reader is not None:
            to = decision.reader.user_id
            self._give(uid, decision, now)
        self.events.append(Reassigned(uid, hold.reader_id, to, reason, now))
        return decision

    def _anyone_else(self, uid: str, holder: int, now: datetime) -> bool:
        """Whether :func:`assign` would find a reader for ``uid`` other than ``holder``."""
        study = self.studies[uid]
        anyone = study.priority in self.rules.bypass_cap or self.rules.widened(
            study.elapsed_fraction(now)
        )
        for reader_id in self.roster.qualified_for(study):
            if reader_id == holder:
                continue
            reader = self.roster.get(reader_id)
            if not (reader.signed_in and self.roster.on_shift(reader, now)):
                continue
            cap = self.rules.cap_of(reader.queue_cap_rvu)
            if anyone or self.workload.load(reader_id) + study.rvu <= cap + EPSILON:
                return True
        return False

    def _forget(self, uid: str) -> None:
        self._unwait(uid)
        del self.studies[uid]
        self._steps_done.pop(uid, None)
        self._step_due.pop(uid, None)

    def _pushed(
        self, now: datetime, *, room_for: int | None = None, everything: bool = False
    ) -> list[Decision]:
        """The studies :meth:`_push` gave to a reader."""
        decisions = self._push(now, room_for=room_for, everything=everything)
        return [d for d in decisions.values() if d.reader is not None]

    def _push(
        self,
        now: datetime,
        *,
        arrived: str = "",
        room_for: int | None = None,
        everything: bool = False,
    ) -> dict[str, Decision]:
        """Route waiting studies: ``arrived``, the critical ones, those ``room_for`` may read.

        A critical study that found nobody in this minute finds nobody again until the
        minute changes (shifts start on whole minutes) or a reader signs in: its cap is
        bypassed, so others' load cannot matter. It is retried only then.

        Waiting studies are indexed by what qualifies a reader for them, so ``room_for``
        looks only at the groups that reader may read; and a waiting study that no
        eligible reader has room for is not routed at all (the engine would find
        nobody): only the arrival gets a decision that says why nobody.
        """
        critical = self._critical_checked != minute_of(now) or room_for is not None
        rooms: dict[QualificationKey, tuple[bool, float]] = {}
        if everything:
            groups: Iterable[tuple[QualificationKey, set[str]]] = self._waiting.items()
        elif room_for is not None:
            groups = self._groups_of(room_for)
        else:
            groups = ()
        # Rooms only shrink while pushing: a study left out here would be left out later.
        candidates = {arrived} if arrived in self.pending else set()
        for key, group in groups:
            if self._room(key, self.studies[next(iter(group))], now, rooms)[0]:
                candidates.update(uid for uid in group if self._fits(uid, now, rooms))
        if critical and not everything:
            candidates.update(uid for uid in self._critical_waiting if self._fits(uid, now, rooms))
        decisions = {}
        for uid in sorted(candidates, key=self._urgency):
            study = self.studies[uid]
            if self._in_pull_pool(study) and not self.rules.widened(study.elapsed_fraction(now)):
                continue
            if uid != arrived and not self._fits(uid, now, rooms):
                continue
            trigger = "pushed on arrival" if uid == arrived else "pushed from the waiting list"
            decision = decisions[uid] = self._route(uid, now, trigger)
            if decision.reader is not None:
                rooms.pop(qualification_key(study), None)  # that reader's room shrank
        if everything or critical:
            self._critical_checked = minute_of(now)
        return decisions

    def _fits(
        self, uid: str, now: datetime, rooms: dict[QualificationKey, tuple[bool, float]]
    ) -> bool:
        """Whether the engine could find someone for the waiting study ``uid`` now.

        ``False`` only when it surely could not: nobody qualified is eligible, or (below
        the cap's bypass and the widened pool) no eligible reader has room for its RVU.
        ``rooms`` caches, per group, whether anyone is eligible and the most room any
        eligible reader has; a stale entry errs towards trying.
        """
        study = self.studies[uid]
        anyone, most = self._room(qualification_key(study), study, now, rooms)
        if not anyone:
            return False
        if study.rvu <= most + 2 * EPSILON or study.priority in self.rules.bypass_cap:
            return True
        return self.rules.widened(study.elapsed_fraction(now))

    def _room(
        self,
        key: QualificationKey,
        study: ReadingStudy,
        now: datetime,
        rooms: dict[QualificationKey, tuple[bool, float]],
    ) -> tuple[bool, float]:
        """For ``study``'s group: is anyone qualified eligible, and the most room of those."""
        room = rooms.get(key)
        if room is None:
            most, anyone = float("-inf"), False
            for reader_id in self.roster.qualified_for(study):
                reader = self.roster.get(reader_id)
                if reader.signed_in and self.roster.on_shift(reader, now):
                    anyone = True
                    cap = self.rules.cap_of(reader.queue_cap_rvu)
                    most = max(most, cap - self.workload.load(reader_id))
            room = rooms[key] = (anyone, most)
        return room

    def escalate(self, now: datetime) -> None:
        """Run the escalation ladder: record each step a study reaches, once."""
        steps = self.rules.escalation
        for uid, study in self.studies.items():
            due = self._step_due.get(uid)
            if due is not None and now < due:
                continue
            done = self._steps_done.get(uid, 0)
            if done >= len(steps):
                self._step_due[uid] = _NEVER
                continue
            fraction = study.elapsed_fraction(now)
            while done < len(steps) and fraction >= steps[done].at:
                ESCALATION[steps[done].action](self, study, now)
                done += 1
            self._steps_done[uid] = done
            # The next step's time, a little early: the fraction above has the last word.
            self._step_due[uid] = (
                study.ready_at + study.turnaround * steps[done].at - _SLACK
                if done < len(steps)
                else _NEVER
            )

    def set_rules(self, rules: Rules) -> None:
        """New rules (the file was reloaded); they apply from the next decision."""
        self.rules = rules
        self._critical_checked = None
        self._step_due.clear()
        self._stale_at = []
        for uid, hold in self.holds.items():
            self._watch(uid, hold)
        self._critical_waiting = {
            uid for uid in self.pending if self.studies[uid].priority in rules.bypass_cap
        }


_NEVER = datetime.max.replace(tzinfo=UTC)
#: Escalation times are computed a little early, so that rounding never makes one late.
_SLACK = timedelta(milliseconds=1)


def _widen(worklist: WorklistState, study: ReadingStudy, now: datetime) -> None:
    # Only news while nobody holds it; assign_pending then tries the wider pool.
    if study.assigned_to is None:
        worklist.events.append(Escalated(study.uid, EscalationAction.WIDEN_POOL, now, None))


def _alert(worklist: WorklistState, study: ReadingStudy, now: datetime) -> None:
    worklist.events.append(
        Escalated(study.uid, EscalationAction.ALERT_SUPERVISOR, now, study.assigned_to)
    )


def _breach(worklist: WorklistState, study: ReadingStudy, now: datetime) -> None:
    worklist.events.append(Breached(study.uid, now, study.assigned_to))


#: The ladder's actions: step → what the worklist does (the service turns events into alerts).
ESCALATION: dict[EscalationAction, Callable[[WorklistState, ReadingStudy, datetime], None]] = {
    EscalationAction.WIDEN_POOL: _widen,
    EscalationAction.ALERT_SUPERVISOR: _alert,
    EscalationAction.BREACH: _breach,
}
