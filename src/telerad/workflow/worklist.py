"""The reading worklist: open studies, who holds each one, and what happened (events).

One aggregate, pure: a service loads it, calls a command, saves it and publishes
:attr:`Worklist.events`. A study is held by at most one reader (the claim lock):
push assignment gives it to the engine's choice; a reader *claims* it by opening
it; nobody else may claim it while held. Studies change hands when their reader
releases them, signs out, goes off shift before opening them, or sits on them
past the rules' timeouts. :meth:`Worklist.tick` runs the escalation ladder.

Every command ends by pushing what waits and may now go somewhere: critical
studies always (so one never waits while a reader who may read it exists), the
studies the reader with new room is qualified for after a completion, release or
sign-in, and everything on :meth:`Worklist.tick`. Commands thus cost what they
change, not the length of the waiting list.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from telerad.workflow.engine import (
    EPSILON,
    Decision,
    QualificationKey,
    Roster,
    Workload,
    assign,
    qualification_key,
    reading_order,
    score_reader,
    start_in,
)
from telerad.workflow.explain import nobody, summary
from telerad.workflow.model import Reader, ReadingStudy, minute_of
from telerad.workflow.rules import EscalationAction, Rules
from telerad.workflow.worklist_events import (
    Assigned,
    Breached,
    Claimed,
    Completed,
    Escalated,
    Event,
    NoReader,
    Reassigned,
    Unattended,
)

__all__ = [
    "Assigned",
    "Breached",
    "ClaimError",
    "Claimed",
    "Completed",
    "Escalated",
    "Event",
    "NoReader",
    "Reassigned",
    "Unattended",
    "Worklist",
    "WorklistError",
]


class WorklistError(ValueError):
    """A command the worklist refuses (unknown study, not yours, not eligible...)."""


class ClaimError(WorklistError):
    """Someone else holds the study, or it cannot be pulled."""


@dataclass
class Hold:
    reader_id: int
    assigned_at: datetime
    claimed_at: datetime | None = None


# -- the aggregate -------------------------------------------------------------------


class Worklist:
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

    # -- commands

    def add(self, study: ReadingStudy, now: datetime) -> Decision | None:
        """A study became ready: push it to a reader (or leave it in the pull pool)."""
        if study.uid in self.studies:
            raise WorklistError(f"study {study.uid} is already on the worklist")
        self.studies[study.uid] = replace(study, assigned_to=None)
        self._wait(study.uid)
        # Through the waiting list, so that a more urgent study waiting there goes first.
        decision = self._push(now, arrived=study.uid).get(study.uid)
        if study.uid not in self.holds:
            self._note_no_reader(study.uid, now, decision)
        return decision

    def _note_no_reader(self, uid: str, now: datetime, decision: Decision | None) -> None:
        """Say so at once when nobody on the roster may read the study, or when nobody
        may read a critical one now (the supervisor must act; the ladder is too late)."""
        study = self.studies[uid]
        qualified = self.roster.qualified_for(study)
        if not qualified:
            decision = decision or assign(study, self.roster, self.workload, self.rules, now)
            self.events.append(NoReader(uid, now, nobody(decision), anyone_qualified=False))
            return
        if study.priority not in self.rules.bypass_cap:
            return
        readers = (self.roster.get(q) for q in qualified)
        if any(r.signed_in and self.roster.on_shift(r, now) for r in readers):
            return
        decision = decision or assign(study, self.roster, self.workload, self.rules, now)
        self.events.append(NoReader(uid, now, nobody(decision), anyone_qualified=True))

    def claim(self, uid: str, reader_id: int, now: datetime) -> None:
        """``reader_id`` opens the study: it is theirs until completed, released or moved."""
        study = self.study(uid)
        hold = self.holds.get(uid)
        if hold is not None:
            if hold.reader_id != reader_id:
                raise ClaimError(f"study {uid} is held by reader {hold.reader_id}")
            if hold.claimed_at is None:
                hold.claimed_at = now
                self.workload.open(reader_id, study)
                self._watch(uid, hold)
                self.events.append(Claimed(uid, reader_id, now))
            self._push(now)
            return
        if not self._in_pull_pool(study):
            raise ClaimError(f"study {uid} is pushed, not in the pull pool ({study.priority})")
        reader = self.roster.get(reader_id)
        ok, reasons = self.roster.eligible(reader, study, now)
        if not ok:
            raise ClaimError(f"reader {reader_id} may not read {uid}: {', '.join(reasons)}")
        cap = self.rules.cap_of(reader.queue_cap_rvu)
        if (
            study.priority not in self.rules.bypass_cap
            and self.workload.load(reader_id) + study.rvu > cap + EPSILON
        ):
            raise ClaimError(f"reader {reader_id}'s queue is at its cap of {cap:g} RVU")
        decision = assign(
            study, Roster([reader]), self.workload, self.rules, now,
            trigger=f"pulled from the pool by reader {reader_id}",
        )  # fmt: skip
        self._give(uid, decision, now)
        self.holds[uid].claimed_at = now
        self.workload.open(reader_id, study)
        self._watch(uid, self.holds[uid])
        self.events.append(Claimed(uid, reader_id, now, pulled=True))
        self._push(now)

    def candidates(self, uid: str, now: datetime) -> list[tuple[Reader, tuple[str, ...]]]:
        """Every reader on the roster with why they may not read the study now (no
        reasons: they may), those who may first, then by id: what a supervisor picks from."""
        study = self.study(uid)
        found = [(r, tuple(self.roster.eligible(r, study, now)[1])) for r in self.roster]
        return sorted(found, key=lambda c: (bool(c[1]), c[0].user_id))

    def assign_by_hand(self, uid: str, reader_id: int, now: datetime, by: str) -> Decision:
        """A supervisor gives the study to ``reader_id`` (waiting or held by someone else).

        Only an eligible reader may get it; their queue cap does not stop a person's
        choice, but the explanation shows their load."""
        study = self.study(uid)
        if reader_id not in self.roster:
            raise WorklistError(f"reader {reader_id} is not on the roster")
        reader = self.roster.get(reader_id)
        ok, reasons = self.roster.eligible(reader, study, now)
        if not ok:
            raise WorklistError(f"{reader.label} may not read this study: {', '.join(reasons)}")
        hold = self.holds.get(uid)
        if hold is not None and hold.reader_id == reader_id:
            raise WorklistError(f"{reader.label} already holds this study")
        previous = self._take_back(uid).reader_id if hold is not None else None
        decision = Decision(
            study=self.studies[uid],
            now=now,
            reader=reader,
            score=score_reader(reader, self.studies[uid], self.workload, self.rules, now),
            considered=1,
            trigger=f"assigned by {by}",
        )
        self._give(uid, decision, now)
        if previous is not None:
            self.events.append(Reassigned(uid, previous, reader_id, f"reassigned by {by}", now))
            self._push(now, room_for=previous)
        return decision

    def _own(self, uid: str, reader_id: int) -> Hold:
        self.study(uid)
        hold = self.holds.get(uid)
        if hold is None or hold.reader_id != reader_id:
            raise WorklistError(f"study {uid} is not held by reader {reader_id}")
        return hold

    def release(self, uid: str, reader_id: int, now: datetime) -> Decision | None:
        """The reader gives the study back: it goes to someone else, or stays when nobody
        else may read it now (and ``None`` is returned)."""
        self._own(uid, reader_id)
        decision = self._move(uid, now, f"released by reader {reader_id}", keep_if_nobody=True)
        self._push(now, room_for=reader_id)
        return decision

    def complete(self, uid: str, reader_id: int, now: datetime) -> list[Decision]:
        """The report is signed: the study leaves the worklist and the reader has room again."""
        self._own(uid, reader_id)
        self._take_back(uid)
        self._forget(uid)
        self.events.append(Completed(uid, reader_id, now))
        return self._pushed(now, room_for=reader_id)

    def withdraw(self, uid: str, now: datetime) -> int | None:
        """The study is not ready after all (more images arrived): it leaves the worklist
        unread. Returns the reader who held it (who now has room again), if any."""
        self.study(uid)
        holder = self._take_back(uid).reader_id if uid in self.holds else None
        self._forget(uid)
        if holder is not None:
            self._push(now, room_for=holder)
        return holder

    def _forget(self, uid: str) -> None:
        self._unwait(uid)
        del self.studies[uid]
        self._steps_done.pop(uid, None)
        self._step_due.pop(uid, None)

    def sign_in(self, reader_id: int, now: datetime) -> list[Decision]:
        self.roster.set_signed_in(reader_id, True)
        self.away.discard(reader_id)
        return self._pushed(now, room_for=reader_id) + self._take_over(reader_id, now)

    def _take_over(self, reader_id: int, now: datetime) -> list[Decision]:
        """A reader came: unopened studies in colleagues' queues that they may read move to
        whoever would now open them sooner (readers of one shift sign in one by one, and
        the first would otherwise keep the whole backlog until the stale timeouts)."""
        if not self.roster.on_shift(self.roster.get(reader_id), now):
            return []
        theirs = [
            uid
            for uid, hold in self.holds.items()
            if hold.claimed_at is None
            and hold.reader_id != reader_id
            and hold.reader_id not in self.away  # reassign_away() looks after those
            and reader_id in self.roster.qualified_for(self.studies[uid])
        ]
        moved = []
        for uid in sorted(theirs, key=self._urgency):
            reason = f"reader {reader_id} signed in"
            decision = self._move(uid, now, reason, keep_if_nobody=True, sooner=True)
            if decision is not None:
                moved.append(decision)
        return moved

    def reader_away(self, reader_id: int, now: datetime) -> list[Decision | None]:
        """The reader's session lapsed without a sign-out: they get nothing new, and each
        study they hold goes to another eligible reader when there is one; otherwise it
        stays with them (an :class:`Unattended` event says so) and is tried again on
        every tick, until someone may take it or they come back."""
        self.roster.set_signed_in(reader_id, False)
        self.away.add(reader_id)
        held = sorted(self.held_by.get(reader_id, ()), key=self._urgency)
        reason = f"reader {reader_id} away (session idle)"
        moved: list[Decision | None] = []
        for uid in held:
            decision = self._move(uid, now, reason, keep_if_nobody=True)
            if decision is None:
                why = "nobody else may read it now; it stays with them"
                self.events.append(Unattended(uid, reader_id, now, f"{reason}: {why}"))
            moved.append(decision)
        self._push(now)
        return moved

    def reassign_away(self, now: datetime) -> list[Decision]:
        """Studies held by readers who are away go to someone else as soon as one fits."""
        moved = []
        for reader_id in sorted(self.away):
            for uid in sorted(self.held_by.get(reader_id, ()), key=self._urgency):
                reason = f"reader {reader_id} away (session idle)"
                decision = self._move(uid, now, reason, keep_if_nobody=True)
                if decision is not None:
                    moved.append(decision)
        return moved

    def reassign_on_sign_out(self, reader_id: int, now: datetime) -> list[Decision | None]:
        """The reader signs out: everything they hold, opened or not, goes to someone else."""
        self.roster.set_signed_in(reader_id, False)
        self.away.discard(reader_id)
        held = sorted(self.held_by.get(reader_id, ()), key=self._urgency)
        reason = f"reader {reader_id} signed out"
        moved = [self._move(uid, now, reason, keep_if_nobody=False) for uid in held]
        self._push(now)
        return moved

    def reassign_off_shift(self, now: datetime) -> list[Decision | None]:
        """Follow the sun: unopened studies of readers who are no longer eligible move on."""
        leaving: list[tuple[str, str]] = []
        for reader_id, held in self.held_by.items():
            if not held or reader_id in self.away:  # reassign_away() looks after those
                continue
            reader = self.roster.get(reader_id)
            on_duty = reader.signed_in and self.roster.on_shift(reader, now)
            # Studies are given only to eligible readers, and credentials change only
            # with the reader's record: on duty and unchanged, they still may read them.
            if on_duty and self._cleared.get(reader_id) is reader:
                continue
            for uid in held:
                if self.holds[uid].claimed_at is not None:
                    continue  # they are reading it; let them finish
                ok, reasons = self.roster.eligible(reader, self.studies[uid], now)
                if not ok:
                    leaving.append((uid, f"reader {reader_id}: {', '.join(reasons)}"))
            if on_duty:
                self._cleared[reader_id] = reader
        # Moving one study changes nobody's eligibility: collect first, then move.
        leaving.sort(key=lambda item: self._urgency(item[0]))
        return [self._move(uid, now, reason, keep_if_nobody=False) for uid, reason in leaving]

    def reassign_stale(self, now: datetime) -> list[Decision]:
        """Studies held past the timeouts go to another reader when one fits."""
        due = []
        while self._stale_at and self._stale_at[0][0] <= now:
            entry = heapq.heappop(self._stale_at)
            _, _, uid, hold, claimed_at = entry
            if self.holds.get(uid) is hold and hold.claimed_at == claimed_at:
                due.append(entry)
        # A move gives the study a fresh hold and leaves the others as they were.
        moved = []
        for entry in sorted(due, key=lambda e: self._urgency(e[2])):
            uid = entry[2]
            hold = self.holds[uid]
            priority = self.studies[uid].priority
            if hold.claimed_at is None:
                what, limit = "not opened", self.rules.unclaimed_minutes[priority]
            else:
                what, limit = "opened but not reported", self.rules.claimed_minutes[priority]
            reason = f"{what} by reader {hold.reader_id} within {limit} min"
            # Not opened while they read another: it moves only to someone who would open
            # it sooner (a holder reading nothing has sat on it: anyone may have it).
            busy = hold.claimed_at is None and self.workload.reading(hold.reader_id)
            decision = self._move(uid, now, reason, keep_if_nobody=True, sooner=busy)
            if decision is not None:
                moved.append(decision)
            else:  # nobody else fits, or would open it sooner: tried again next tick
                heapq.heappush(self._stale_at, entry)
        return moved

    def assign_pending(self, now: datetime) -> list[Decision]:
        """Push every unassigned study that can go somewhere, most urgent first."""
        return self._pushed(now, everything=True)

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

    def tick(self, now: datetime) -> None:
        """The clock moved: hand over, move stale studies, escalate, push what waits."""
        self.reassign_away(now)
        self.reassign_off_shift(now)
        self.reassign_stale(now)
        self.escalate(now)
        self.assign_pending(now)

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


def _widen(worklist: Worklist, study: ReadingStudy, now: datetime) -> None:
    # Only news while nobody holds it; assign_pending then tries the wider pool.
    if study.assigned_to is None:
        worklist.events.append(Escalated(study.uid, EscalationAction.WIDEN_POOL, now, None))


def _alert(worklist: Worklist, study: ReadingStudy, now: datetime) -> None:
    worklist.events.append(
        Escalated(study.uid, EscalationAction.ALERT_SUPERVISOR, now, study.assigned_to)
    )


def _breach(worklist: Worklist, study: ReadingStudy, now: datetime) -> None:
    worklist.events.append(Breached(study.uid, now, study.assigned_to))


#: The ladder's actions: step → what the worklist does (the service turns events into alerts).
ESCALATION: dict[EscalationAction, Callable[[Worklist, ReadingStudy, datetime], None]] = {
    EscalationAction.WIDEN_POOL: _widen,
    EscalationAction.ALERT_SUPERVISOR: _alert,
    EscalationAction.BREACH: _breach,
}
