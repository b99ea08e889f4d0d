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
change, not the length of the waiting list. The state they change, and the
machinery that pushes and escalates, is :mod:`telerad.workflow.worklist_state`.
"""

from __future__ import annotations

import heapq
from dataclasses import replace
from datetime import datetime

from telerad.workflow.explain import nobody
from telerad.workflow.model import Reader, ReadingStudy
from telerad.workflow.routing import (
    EPSILON,
    Decision,
    Roster,
    assign,
    score_reader,
)
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
from telerad.workflow.worklist_state import ClaimError, Hold, WorklistError, WorklistState

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


class Worklist(WorklistState):
    """The commands; :class:`WorklistState` holds what they change."""

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

    def restore(
        self,
        study: ReadingStudy,
        reader_id: int,
        assigned_at: datetime,
        claimed_at: datetime | None,
    ) -> bool:
        """Take up a hold kept in the store (a restart, another process taking over): the
        study is held by ``reader_id`` again, opened or not, as it was — no new decision,
        no event. False when they may not read it any more (it is then to be added).
        Whether they are signed in and on shift is the clock's business, as for any hold."""
        if study.uid in self.studies:
            raise WorklistError(f"study {study.uid} is already on the worklist")
        if reader_id not in self.roster.qualified_for(study):
            return False
        uid = study.uid
        self.studies[uid] = study = replace(study, assigned_to=reader_id)
        self.holds[uid] = hold = Hold(reader_id, assigned_at, claimed_at)
        self._watch(uid, hold)
        self.held_by.setdefault(reader_id, set()).add(uid)
        self.workload.add(reader_id, study)
        if claimed_at is not None:
            self.workload.open(reader_id, study)
        return True

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
            score=score_reader(
                reader, self.studies[uid], self.workload, self.rules, now, self.roster
            ),
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

    def tick(self, now: datetime) -> None:
        """The clock moved: hand over, move stale studies, escalate, push what waits."""
        self.reassign_away(now)
        self.reassign_off_shift(now)
        self.reassign_stale(now)
        self.escalate(now)
        self.assign_pending(now)
