"""A discrete-event replay of a reading day: the routing engine against the FIFO baseline.

Both policies see the same arrivals and the same roster; readers sign in and out at
their shift edges (a reader whose shift ends mid-read finishes it first) and take
``rvu / rvu_per_hour`` hours per study, times the study's ``effort`` (its noise,
drawn from the scenario's seed, so a study takes one reader the same time under
either policy).

* ``engine``: the real :class:`~telerad.workflow.worklist.Worklist`. Studies are
  pushed on arrival; ``tick`` runs every minute (reassignment of stale and
  off-shift studies, the escalation ladder, pushing what waits); a free reader opens
  (claims) the study at the top of their queue in the worklist's own reading order
  (:meth:`Worklist.order <telerad.workflow.worklist.Worklist.order>`) and completes
  it when the read is done.
* ``fifo``: an open worklist in arrival order; a free reader takes the oldest study
  they are eligible for (:func:`~telerad.simulation.fifo.fifo_next`), and a new study
  goes to the reader who has been idle longest among those eligible for it.

Every assignment is checked against :func:`~telerad.workflow.eligibility.eligible`
at the moment it is made; an ineligible one stops the run with
:class:`IneligibleAssignment`. Each study's :class:`Cover` says whether anyone
qualified for it was on shift before its deadline, so that breaches routing could
not have prevented are told apart. Pure: no clock, no I/O; ``progress`` is a callback.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from telerad.simulation.fifo import fifo_next
from telerad.simulation.scenario import Scenario
from telerad.workflow.coverage import Span, duty, shift_intervals
from telerad.workflow.eligibility import eligible
from telerad.workflow.model import Priority, ReadingStudy
from telerad.workflow.routing import Roster
from telerad.workflow.rules import EscalationAction, Rules
from telerad.workflow.worklist import Assigned, Escalated, Reassigned, Worklist

__all__ = [
    "Cover",
    "IneligibleAssignment",
    "Outcome",
    "Policy",
    "ReadTwice",
    "Run",
    "SimulationBug",
    "duty",
    "shift_intervals",
    "simulate",
]

DAY_SECONDS = 86_400.0
#: How long the run may go on after the day to drain the queues.
DRAIN_HOURS = 24.0
SAMPLE_MINUTES = 5
TICK_SECONDS = 60.0

#: Called as the replay goes: (studies read, studies in the day, hours since it began).
Progress = Callable[[int, int, float], None]


class Policy(enum.StrEnum):
    ENGINE = "engine"
    FIFO = "fifo"


class SimulationBug(AssertionError):
    """What must never happen; the replay stops rather than report a figure built on it."""


class IneligibleAssignment(SimulationBug):
    """A study went to a reader who may not read it."""


class ReadTwice(SimulationBug):
    """A study was read to the end a second time."""


class _Kind(enum.IntEnum):
    """Event kinds; at one instant they run in this order."""

    DONE = 0
    SIGN_OUT = 1
    SIGN_IN = 2
    ARRIVE = 3
    TICK = 4
    SAMPLE = 5


class Cover(enum.StrEnum):
    """Whether the roster could have read a study in time at all, whatever the routing."""

    #: A reader qualified for it was on shift at some time between ready and deadline.
    ON_DUTY = "on_duty"
    #: Readers qualified for it exist, but none was on shift before its deadline.
    OFF_DUTY = "off_duty"
    #: Nobody on the roster holds the licence, privileges and competence it needs.
    NOBODY = "nobody_qualified"


@dataclass(frozen=True)
class Outcome:
    """One study's fate; times in seconds from the start of the day."""

    uid: str
    priority: Priority
    ready: float
    deadline: float
    done: float | None
    reader: int | None
    cover: Cover = Cover.ON_DUTY

    @property
    def breached(self) -> bool:
        """Read after its deadline, or never read."""
        return self.done is None or self.done > self.deadline

    @property
    def tat_minutes(self) -> float | None:
        return None if self.done is None else (self.done - self.ready) / 60


@dataclass
class Run:
    """What one policy did with the day."""

    policy: Policy
    outcomes: list[Outcome]
    #: Seconds each reader spent reading, within the day.
    busy: dict[int, float]
    #: Seconds each reader was signed in, within the day.
    on_duty: dict[int, float]
    #: (minutes from the start of the day, studies ready and not yet opened).
    queue: list[tuple[float, int]]
    assignments: int = 0
    reassignments: int = 0
    #: Reads cut short because the study was moved to someone else while open.
    abandoned: int = 0
    supervisor_alerts: int = 0
    #: Seconds from the start of the day when the run stopped (drained or capped).
    ended: float = 0.0
    #: Seconds from the start of the day to its end (the figures' window).
    day_end: float = DAY_SECONDS
    #: Readers who were ever signed in.
    readers: list[int] = field(default_factory=list)
    #: Studies nobody on the roster may read, counted by what they need (:func:`need`).
    unreadable: dict[str, int] = field(default_factory=dict)


def need(study: ReadingStudy) -> str:
    """What reading ``study`` takes, in words: ``US breast, final read, facility 12 (US-TX)``."""
    return (
        f"{study.modality} {study.subspecialty or 'general'}, {study.read_kind} read, "
        f"facility {study.facility_id} ({study.jurisdiction})"
    )


class _Replay:
    """The clock, the readers' comings and goings and their reads; policies fill in."""

    policy: Policy

    def __init__(
        self,
        scenario: Scenario,
        rules: Rules,
        *,
        drain_hours: float = DRAIN_HOURS,
        progress: Progress | None = None,
    ) -> None:
        self.origin = scenario.start
        self.rules = scenario.rules(rules)
        self.studies = [a.study(self.rules) for a in scenario.arrivals]
        last = max((self.seconds(s.ready_at) for s in self.studies), default=0.0)
        #: The day the figures are about: a UTC day, longer if the trace is.
        self.day_end = max(DAY_SECONDS, last)
        self.cap = self.day_end + drain_hours * 3600
        self.effort = {a.uid: a.effort for a in scenario.arrivals}
        self.roster = Roster(replace(r, signed_in=False) for r in scenario.readers)
        self.progress = progress
        self._heap: list[tuple[float, int, int, int, int]] = []
        self._seq = 0
        self.now = 0.0
        self.reading: dict[int, tuple[str, int, float]] = {}  # reader → (uid, token, since)
        self.available: set[int] = set()  # signed in, on shift, not on their way out
        self.leaving: set[int] = set()  # shift over, finishing a read
        self.signed_since: dict[int, float] = {}
        self.done: dict[str, tuple[float, int]] = {}
        self.duty: dict[int, list[Span]] = {}
        self.run = Run(self.policy, [], {}, {}, [])
        self.setup()

    def setup(self) -> None:
        """The policy's own state."""

    # -- the clock

    def at(self, seconds: float) -> datetime:
        return self.origin + timedelta(seconds=seconds)

    def seconds(self, when: datetime) -> float:
        return (when - self.origin).total_seconds()

    def schedule(self, when: float, kind: _Kind, key: int = 0, token: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, kind, self._seq, key, token))

    def replay(self) -> Run:
        until = self.at(self.cap)
        for reader in self.roster:
            self.duty[reader.user_id] = spans = duty(reader, self.origin, until)
            for begin, end in spans:
                self.schedule(self.seconds(begin), _Kind.SIGN_IN, reader.user_id)
                self.schedule(self.seconds(end), _Kind.SIGN_OUT, reader.user_id)
        for i, study in enumerate(self.studies):
            self.schedule(max(self.seconds(study.ready_at), 0.0), _Kind.ARRIVE, i)
        self.schedule(0.0, _Kind.SAMPLE)
        self.first_tick()
        total = len(self.studies)
        while self._heap and len(self.done) < total:
            when, kind, _, key, token = heapq.heappop(self._heap)
            if when > self.cap:
                break
            self.now = when
            if kind == _Kind.DONE:
                self._done(key, token)
            elif kind == _Kind.ARRIVE:
                self.arrive(self.studies[key])
            elif kind == _Kind.TICK:
                self._tick()
            elif kind == _Kind.SIGN_OUT:
                self._sign_out(key)
            elif kind == _Kind.SIGN_IN:
                self._sign_in(key)
            else:
                self._sample()
        if len(self.done) < total:
            self.now = self.cap  # some studies were never read: the run went to the cap
        return self._finish()

    # -- readers

    def _sign_in(self, reader_id: int) -> None:
        self.available.add(reader_id)
        if reader_id in self.leaving:  # the next shift starts before the last read is done
            self.leaving.discard(reader_id)
            return
        self.signed_since[reader_id] = self.now
        self.sign_in(reader_id)

    def _sign_out(self, reader_id: int) -> None:
        self.available.discard(reader_id)
        if reader_id in self.reading:
            self.leaving.add(reader_id)
        else:
            self._leave(reader_id)

    def _leave(self, reader_id: int) -> None:
        self.leaving.discard(reader_id)
        self._account(self.run.on_duty, reader_id, self.signed_since.pop(reader_id, self.now))
        self.sign_out(reader_id)

    def _account(self, table: dict[int, float], reader_id: int, since: float) -> None:
        seconds = min(self.now, self.day_end) - max(since, 0.0)
        table[reader_id] = table.get(reader_id, 0.0) + max(seconds, 0.0)

    def start_read(self, reader_id: int, study: ReadingStudy) -> None:
        reader = self.roster.get(reader_id)
        effort = self.effort.get(study.uid, 1.0)
        seconds = study.rvu / reader.rvu_per_hour * 3600 * effort
        self._seq += 1
        self.reading[reader_id] = (study.uid, self._seq, self.now)
        self.schedule(self.now + seconds, _Kind.DONE, reader_id, self._seq)

    def stop_read(self, reader_id: int) -> str:
        uid, _, since = self.reading.pop(reader_id)
        self._account(self.run.busy, reader_id, since)
        return uid

    def _done(self, reader_id: int, token: int) -> None:
        current = self.reading.get(reader_id)
        if current is None or current[1] != token:
            return  # the read was cut short: the study moved on
        uid = self.stop_read(reader_id)
        if uid in self.done:
            raise ReadTwice(f"{self.policy}: study {uid} read again by reader {reader_id}")
        self.done[uid] = (self.now, reader_id)
        self.complete(reader_id, uid)
        if reader_id in self.leaving:
            self._leave(reader_id)
        else:
            self.free(reader_id)

    def check(self, reader_id: int, study: ReadingStudy) -> None:
        ok, reasons = eligible(self.roster.get(reader_id), study, self.at(self.now))
        if not ok:
            raise IneligibleAssignment(
                f"{self.policy}: study {study.uid} went to reader {reader_id}: "
                + ", ".join(reasons)
            )
        self.run.assignments += 1

    # -- ticks and samples

    def first_tick(self) -> None:
        """Schedule the first tick (policies without ticks leave it out)."""

    def _tick(self) -> None:
        self.tick()
        if self.now + TICK_SECONDS <= self.cap:
            self.schedule(self.now + TICK_SECONDS, _Kind.TICK)

    def _sample(self) -> None:
        self.run.queue.append((self.now / 60, self.waiting()))
        if self.progress is not None:
            self.progress(len(self.done), len(self.studies), self.now / 3600)
        self.schedule(self.now + SAMPLE_MINUTES * 60, _Kind.SAMPLE)

    def _finish(self) -> Run:
        for reader_id in list(self.reading):
            self.stop_read(reader_id)
        for reader_id, since in self.signed_since.items():
            self._account(self.run.on_duty, reader_id, since)
        run = self.run
        run.ended = self.now
        run.day_end = self.day_end
        run.readers = sorted(run.on_duty)
        for study in self.studies:
            done, reader = self.done.get(study.uid, (None, None))
            cover = self.cover(study)
            if cover is Cover.NOBODY:
                run.unreadable[need(study)] = run.unreadable.get(need(study), 0) + 1
            run.outcomes.append(
                Outcome(
                    study.uid,
                    study.priority,
                    self.seconds(study.ready_at),
                    self.seconds(study.deadline),
                    done,
                    reader,
                    cover,
                )
            )
        if self.progress is not None:
            self.progress(len(self.done), len(self.studies), self.now / 3600)
        return run

    def cover(self, study: ReadingStudy) -> Cover:
        """Whether a reader qualified for ``study`` was on shift before its deadline."""
        qualified = self.roster.qualified_for(study)
        if not qualified:
            return Cover.NOBODY
        for reader_id in qualified:
            for begin, end in self.duty.get(reader_id, ()):
                if begin < study.deadline and end > study.ready_at:
                    return Cover.ON_DUTY
        return Cover.OFF_DUTY

    # -- what a policy does

    def arrive(self, study: ReadingStudy) -> None:
        raise NotImplementedError

    def complete(self, reader_id: int, uid: str) -> None:
        raise NotImplementedError

    def free(self, reader_id: int) -> None:
        """The reader may take their next study."""
        raise NotImplementedError

    def sign_in(self, reader_id: int) -> None:
        raise NotImplementedError

    def sign_out(self, reader_id: int) -> None:
        raise NotImplementedError

    def tick(self) -> None:
        raise NotImplementedError

    def waiting(self) -> int:
        """Studies ready and not yet opened."""
        raise NotImplementedError


class _EngineReplay(_Replay):
    policy = Policy.ENGINE

    def setup(self) -> None:
        self.worklist = Worklist(self.rules, self.roster)
        self._draining = False
        self._checked = 0  # events[:_checked] are checked assignments

    def first_tick(self) -> None:
        self.schedule(TICK_SECONDS, _Kind.TICK)

    def _events(self) -> None:
        """Act on what the worklist did: check each assignment, start idle readers.

        Every worklist command here is followed by this call, so each assignment is
        checked as things stood when it was made, before any other command runs.
        Acting on the events runs more commands (a reader opens the next study, one
        whose read was moved away signs out): their events join the list this loop
        is working through (hence no re-entry).
        """
        events = self.worklist.events
        for event in events[self._checked :]:
            if isinstance(event, Assigned):
                self.check(event.reader_id, self.worklist.studies[event.uid])
        self._checked = len(events)
        if self._draining:
            return
        self._draining = True
        i = 0
        while i < len(events):
            event = events[i]
            i += 1
            if isinstance(event, Assigned):
                self.free(event.reader_id)
            elif isinstance(event, Reassigned):
                self.run.reassignments += 1
                current = self.reading.get(event.from_reader)
                if current is not None and current[0] == event.uid:
                    self.stop_read(event.from_reader)
                    self.run.abandoned += 1
                    if event.from_reader in self.leaving:
                        self._leave(event.from_reader)
                    else:
                        self.free(event.from_reader)
            elif isinstance(event, Escalated):
                self.run.supervisor_alerts += event.action is EscalationAction.ALERT_SUPERVISOR
        events.clear()  # published: the worklist keeps no history here
        self._checked = 0
        self._draining = False

    def arrive(self, study: ReadingStudy) -> None:
        self.worklist.add(study, self.at(self.now))
        self._events()

    def complete(self, reader_id: int, uid: str) -> None:
        self.worklist.complete(uid, reader_id, self.at(self.now))
        self._events()

    def free(self, reader_id: int) -> None:
        if reader_id in self.reading or reader_id not in self.available:
            return
        held = self.worklist.held_by.get(reader_id)
        if not held:
            return
        # The top of their queue, in the worklist's own order (what the worklist page shows).
        uid = min(held, key=self.worklist.order)
        self.worklist.claim(uid, reader_id, self.at(self.now))
        self.start_read(reader_id, self.worklist.studies[uid])
        self._events()

    def sign_in(self, reader_id: int) -> None:
        self.worklist.sign_in(reader_id, self.at(self.now))
        self._events()
        self.free(reader_id)

    def sign_out(self, reader_id: int) -> None:
        self.worklist.reassign_on_sign_out(reader_id, self.at(self.now))
        self._events()

    def tick(self) -> None:
        self.worklist.tick(self.at(self.now))
        self._events()

    def waiting(self) -> int:
        return len(self.worklist.studies) - len(self.reading)


class _FifoReplay(_Replay):
    policy = Policy.FIFO

    def setup(self) -> None:
        self.open: dict[str, ReadingStudy] = {}  # arrival order
        self.idle: dict[int, float] = {}  # reader → idle since

    def arrive(self, study: ReadingStudy) -> None:
        self.open[study.uid] = study
        now = self.at(self.now)
        candidates = [
            (since, uid)
            for uid in self.roster.qualified_for(study)
            if (since := self.idle.get(uid)) is not None
        ]
        for _, reader_id in sorted(candidates):
            if self.roster.eligible(self.roster.get(reader_id), study, now)[0]:
                self._take(reader_id, study)
                return

    def _take(self, reader_id: int, study: ReadingStudy) -> None:
        self.check(reader_id, study)
        del self.open[study.uid]
        self.idle.pop(reader_id, None)
        self.start_read(reader_id, study)

    def complete(self, reader_id: int, uid: str) -> None:
        pass

    def free(self, reader_id: int) -> None:
        if reader_id in self.reading or reader_id not in self.available:
            return
        reader = self.roster.get(reader_id)
        facilities = reader.facility_ids
        # A cheap first cut; fifo_next checks everything (this only skips its work).
        candidates = (s for s in self.open.values() if s.facility_id in facilities)
        study = fifo_next(reader, candidates, self.at(self.now))
        if study is None:
            self.idle[reader_id] = self.now
        else:
            self._take(reader_id, study)

    def sign_in(self, reader_id: int) -> None:
        self.roster.set_signed_in(reader_id, True)
        self.free(reader_id)

    def sign_out(self, reader_id: int) -> None:
        self.roster.set_signed_in(reader_id, False)
        self.idle.pop(reader_id, None)

    def tick(self) -> None:
        pass

    def waiting(self) -> int:
        return len(self.open)


def simulate(
    scenario: Scenario,
    rules: Rules,
    policy: Policy | str,
    *,
    drain_hours: float = DRAIN_HOURS,
    progress: Progress | None = None,
) -> Run:
    """Replay ``scenario`` under ``policy`` with ``rules`` (the scenario's contracts added)."""
    replay_class = _EngineReplay if Policy(policy) is Policy.ENGINE else _FifoReplay
    return replay_class(scenario, rules, drain_hours=drain_hours, progress=progress).replay()
