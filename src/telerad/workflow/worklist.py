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

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from telerad.workflow.engine import EPSILON, Decision, Roster, Workload, assign
from telerad.workflow.model import ReadingStudy, minute_of
from telerad.workflow.rules import EscalationAction, Rules


class WorklistError(ValueError):
    """A command the worklist refuses (unknown study, not yours, not eligible...)."""


class ClaimError(WorklistError):
    """Someone else holds the study, or it cannot be pulled."""


# -- events --------------------------------------------------------------------------


@dataclass(frozen=True)
class Assigned:
    uid: str
    reader_id: int
    at: datetime
    why: str  # the decision's explanation


@dataclass(frozen=True)
class Claimed:
    uid: str
    reader_id: int
    at: datetime
    pulled: bool = False  # taken from the pull pool rather than pushed


@dataclass(frozen=True)
class Reassigned:
    uid: str
    from_reader: int
    to_reader: int | None  # None: back on the worklist, nobody eligible yet
    reason: str
    at: datetime


@dataclass(frozen=True)
class Completed:
    uid: str
    reader_id: int
    at: datetime


@dataclass(frozen=True)
class Escalated:
    uid: str
    action: EscalationAction
    at: datetime
    reader_id: int | None


@dataclass(frozen=True)
class Breached:
    uid: str
    at: datetime
    reader_id: int | None


Event = Assigned | Claimed | Reassigned | Completed | Escalated | Breached


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
        self.workload = Workload()
        self.events: list[Event] = []
        self._steps_done: dict[str, int] = {}
        #: The minute when every waiting critical study was last tried.
        self._critical_checked: datetime | None = None

    # -- reading the state

    def study(self, uid: str) -> ReadingStudy:
        try:
            return self.studies[uid]
        except KeyError:
            raise WorklistError(f"study {uid} is not on the worklist") from None

    def holder(self, uid: str) -> int | None:
        hold = self.holds.get(uid)
        return hold.reader_id if hold else None

    def _urgency(self, uid: str) -> tuple[int, datetime, str]:
        study = self.studies[uid]
        return (study.priority.rank, study.deadline, uid)

    def _in_pull_pool(self, study: ReadingStudy) -> bool:
        return self.rules.pull_pool and study.priority in self.rules.pull_tiers

    # -- holding and letting go (the only places holds and workload change)

    def _give(self, uid: str, decision: Decision, now: datetime) -> None:
        assert decision.reader is not None and uid not in self.holds
        reader_id = decision.reader.user_id
        study = replace(self.studies[uid], assigned_to=reader_id)
        self.studies[uid] = study
        self.holds[uid] = Hold(reader_id, now)
        self.held_by.setdefault(reader_id, set()).add(uid)
        self.pending.discard(uid)
        self.workload.add(reader_id, study)
        self.events.append(Assigned(uid, reader_id, now, decision.explain()))

    def _take_back(self, uid: str) -> Hold:
        hold = self.holds.pop(uid)
        study = self.studies[uid]
        self.workload.remove(hold.reader_id, study)
        self.held_by[hold.reader_id].discard(uid)
        self.studies[uid] = replace(study, assigned_to=None)
        self.pending.add(uid)
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
        self, uid: str, now: datetime, reason: str, *, keep_if_nobody: bool
    ) -> Decision | None:
        """Give a held study to another reader; when nobody fits, keep it or put it back."""
        hold = self.holds[uid]
        decision = assign(
            self.studies[uid], self.roster, self.workload, self.rules, now,
            exclude=frozenset({hold.reader_id}), trigger=reason,
        )  # fmt: skip
        if decision.reader is None and keep_if_nobody:
            return None
        self._take_back(uid)
        to = None
        if decision.reader is not None:
            to = decision.reader.user_id
            self._give(uid, decision, now)
        self.events.append(Reassigned(uid, hold.reader_id, to, reason, now))
        return decision

    # -- commands

    def add(self, study: ReadingStudy, now: datetime) -> Decision | None:
        """A study became ready: push it to a reader (or leave it in the pull pool)."""
        if study.uid in self.studies:
            raise WorklistError(f"study {study.uid} is already on the worklist")
        self.studies[study.uid] = replace(study, assigned_to=None)
        self.pending.add(study.uid)
        # Through the waiting list, so that a more urgent study waiting there goes first.
        return self._push(now, arrived=study.uid).get(study.uid)

    def claim(self, uid: str, reader_id: int, now: datetime) -> None:
        """``reader_id`` opens the study: it is theirs until completed, released or moved."""
        study = self.study(uid)
        hold = self.holds.get(uid)
        if hold is not None:
            if hold.reader_id != reader_id:
                raise ClaimError(f"study {uid} is held by reader {hold.reader_id}")
            if hold.claimed_at is None:
                hold.claimed_at = now
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
        self.events.append(Claimed(uid, reader_id, now, pulled=True))
        self._push(now)

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
        self.pending.discard(uid)
        del self.studies[uid]
        self._steps_done.pop(uid, None)
        self.events.append(Completed(uid, reader_id, now))
        return self._pushed(now, room_for=reader_id)

    def withdraw(self, uid: str, now: datetime) -> int | None:
        """The study is not ready after all (more images arrived): it leaves the worklist
        unread. Returns the reader who held it (who now has room again), if any."""
        self.study(uid)
        holder = self._take_back(uid).reader_id if uid in self.holds else None
        self.pending.discard(uid)
        del self.studies[uid]
        self._steps_done.pop(uid, None)
        if holder is not None:
            self._push(now, room_for=holder)
        return holder

    def sign_in(self, reader_id: int, now: datetime) -> list[Decision]:
        self.roster.set_signed_in(reader_id, True)
        return self._pushed(now, room_for=reader_id)

    def reassign_on_sign_out(self, reader_id: int, now: datetime) -> list[Decision | None]:
        """The reader signs out: everything they hold, opened or not, goes to someone else."""
        self.roster.set_signed_in(reader_id, False)
        held = sorted(self.held_by.get(reader_id, ()), key=self._urgency)
        reason = f"reader {reader_id} signed out"
        moved = [self._move(uid, now, reason, keep_if_nobody=False) for uid in held]
        self._push(now)
        return moved

    def reassign_off_shift(self, now: datetime) -> list[Decision | None]:
        """Follow the sun: unopened studies of readers who are no longer eligible move on."""
        moved: list[Decision | None] = []
        for uid in sorted(self.holds, key=self._urgency):
            hold = self.holds[uid]
            if hold.claimed_at is not None:
                continue  # they are reading it; let them finish
            reader = self.roster.get(hold.reader_id)
            ok, reasons = self.roster.eligible(reader, self.studies[uid], now)
            if not ok:
                reason = f"reader {hold.reader_id}: {', '.join(reasons)}"
                moved.append(self._move(uid, now, reason, keep_if_nobody=False))
        return moved

    def reassign_stale(self, now: datetime) -> list[Decision]:
        """Studies held past the timeouts go to another reader when one fits."""
        moved = []
        for uid in sorted(self.holds, key=self._urgency):
            hold = self.holds[uid]
            priority = self.studies[uid].priority
            if hold.claimed_at is None:
                since, limit = hold.assigned_at, self.rules.unclaimed_minutes[priority]
                what = "not opened"
            else:
                since, limit = hold.claimed_at, self.rules.claimed_minutes[priority]
                what = "opened but not reported"
            if now - since >= timedelta(minutes=limit):
                reason = f"{what} by reader {hold.reader_id} within {limit} min"
                decision = self._move(uid, now, reason, keep_if_nobody=True)
                if decision is not None:
                    moved.append(decision)
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
        """
        critical = self._critical_checked != minute_of(now) or room_for is not None
        if everything or critical or room_for is not None:
            chosen = [
                uid
                for uid in self.pending
                if everything
                or uid == arrived
                or (critical and self.studies[uid].priority in self.rules.bypass_cap)
                or (
                    room_for is not None
                    and room_for in self.roster.qualified_for(self.studies[uid])
                )
            ]
        else:
            chosen = [arrived] if arrived in self.pending else []
        decisions = {}
        for uid in sorted(chosen, key=self._urgency):
            study = self.studies[uid]
            if self._in_pull_pool(study) and not self.rules.widened(study.elapsed_fraction(now)):
                continue
            trigger = "pushed on arrival" if uid == arrived else "pushed from the waiting list"
            decisions[uid] = self._route(uid, now, trigger)
        if everything or critical:
            self._critical_checked = minute_of(now)
        return decisions

    def escalate(self, now: datetime) -> None:
        """Run the escalation ladder: record each step a study reaches, once."""
        steps = self.rules.escalation
        for uid, study in self.studies.items():
            done = self._steps_done.get(uid, 0)
            if done >= len(steps):
                continue
            fraction = study.elapsed_fraction(now)
            while done < len(steps) and fraction >= steps[done].at:
                ESCALATION[steps[done].action](self, study, now)
                done += 1
            self._steps_done[uid] = done

    def tick(self, now: datetime) -> None:
        """The clock moved: hand over, move stale studies, escalate, push what waits."""
        self.reassign_off_shift(now)
        self.reassign_stale(now)
        self.escalate(now)
        self.assign_pending(now)

    def set_rules(self, rules: Rules) -> None:
        """New rules (the file was reloaded); they apply from the next decision."""
        self.rules = rules
        self._critical_checked = None


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
