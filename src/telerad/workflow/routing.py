"""The routing engine: which reader gets this study now, and why.

:func:`assign` is a pure function of the study, the roster, the workload, the rules
and the clock. It is fast because nothing in it grows with the worklist:

* the :class:`Roster` indexes readers by facility privilege and keeps, per
  (facility, jurisdiction, modality, subspecialty, read kind), the readers
  qualified for it, so a decision looks at tens of readers, not the whole roster;
* whether a reader is on shift is cached per minute (shift boundaries are whole
  minutes, so the answer cannot change inside one);
* the :class:`Workload` is a running sum of RVU per reader and a count of open
  studies per (patient, reader), kept up to date as studies are assigned and
  completed, never recomputed from the open studies;
* when a study is due (its deadline, or earlier when everyone qualified for it goes
  off shift before it: :mod:`telerad.workflow.coverage`) comes from duty spans cached
  per group of qualified readers.

The choice: every eligible reader (:func:`~telerad.workflow.eligibility.eligible`)
under their queue cap — critical tiers bypass the cap, and so does a study whose
escalation has widened the pool — is scored, and the highest score wins; equal
scores go to the lowest user id, so the same inputs always give the same reader.

A reader's queue is read in :func:`reading_order`: the tiers that bypass the cap
first (stroke, then trauma), then everything else by when it is due. The score's
``wait`` is how long the reader would take to reach the study in that order — what
they are reading and what they hold ahead of it, not their whole queue: a stroke is
not held back by a reader's routine backlog, which it jumps.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from telerad.workflow.coverage import Coverage
from telerad.workflow.eligibility import eligible, qualified
from telerad.workflow.explain import explain
from telerad.workflow.model import Priority, Reader, ReadingStudy, minute_of
from telerad.workflow.rules import EscalationStep, Rules

QualificationKey = tuple[int, str, str, str, str]
#: A study's place in a reader's queue (:func:`reading_order`): smaller comes first.
OrderKey = tuple[int, datetime, str]
Order = Callable[[ReadingStudy], OrderKey]
#: Why a reader was left out of a decision about a study they just gave back or sat on.
GAVE_IT_BACK = "gave it back or sat on it"
#: Float sums of RVU drift by ~1e-15; the cap is compared with this slack.
EPSILON = 1e-9
#: Studies whose due time the roster remembers (more than a busy day's open studies).
DUE_CACHE = 50_000


class Roster:
    """The readers, indexed for routing. Replace a reader to change them."""

    def __init__(self, readers: Iterable[Reader] = ()) -> None:
        #: Changes whenever who is qualified for what may have changed.
        self.version = 0
        self._readers: dict[int, Reader] = {}
        for reader in readers:
            if reader.user_id in self._readers:
                raise ValueError(f"reader {reader.user_id} is on the roster twice")
            self._readers[reader.user_id] = reader
        self._reindex()

    def _reindex(self) -> None:
        self.version += 1
        self._by_facility: dict[int, list[int]] = defaultdict(list)
        for reader in sorted(self._readers.values(), key=lambda r: r.user_id):
            for facility_id in reader.facility_ids:
                self._by_facility[facility_id].append(reader.user_id)
        self._qualified: dict[QualificationKey, tuple[int, ...]] = {}
        self._shift_minute: datetime | None = None
        self._shift_now: datetime | None = None
        self._on_shift: dict[int, bool] = {}
        self._coverage = Coverage(self.get)
        self._due: dict[tuple[str, datetime, datetime], datetime] = {}

    def __iter__(self) -> Iterator[Reader]:
        return iter(self._readers.values())

    def __len__(self) -> int:
        return len(self._readers)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._readers

    def get(self, user_id: int) -> Reader:
        try:
            return self._readers[user_id]
        except KeyError:
            raise KeyError(f"reader {user_id} is not on the roster") from None

    def put(self, reader: Reader) -> None:
        """Add or replace a reader (new credentials, new shifts)."""
        old = self._readers.get(reader.user_id)
        self._readers[reader.user_id] = reader
        if old is None or _static(old) != _static(reader):
            self._reindex()
        elif old.shifts != reader.shifts:
            self._on_shift.pop(reader.user_id, None)
            self._coverage.forget()
            self._due.clear()

    def set_signed_in(self, user_id: int, signed_in: bool) -> Reader:
        reader = self.get(user_id)
        if reader.signed_in != signed_in:
            reader = replace(reader, signed_in=signed_in)
            self._readers[user_id] = reader
        return reader

    def qualified_for(self, study: ReadingStudy) -> tuple[int, ...]:
        """Readers whose credentials and competence fit the study (ids, ascending)."""
        key = qualification_key(study)
        found = self._qualified.get(key)
        if found is None:
            found = tuple(
                uid
                for uid in self._by_facility.get(study.facility_id, ())
                if not qualified(self._readers[uid], study)
            )
            self._qualified[key] = found
        return found

    def on_shift(self, reader: Reader, now: datetime) -> bool:
        minute = self._shift_minute
        if now != self._shift_now or minute is None:  # one decision asks at one instant
            self._shift_now = now
            minute = minute_of(now)
            if minute != self._shift_minute:
                self._shift_minute = minute
                self._on_shift = {}
        cached = self._on_shift.get(reader.user_id)
        if cached is None:
            cached = self._on_shift[reader.user_id] = reader.on_shift(minute)
        return cached

    def due(self, study: ReadingStudy) -> datetime:
        """When ``study`` is due: its deadline, or the end of the last shift before it of
        anyone qualified for it, when nobody qualified is on shift from then to the
        deadline (:meth:`Coverage.due <telerad.workflow.coverage.Coverage.due>`)."""
        key = (study.uid, study.ready_at, study.deadline)
        due = self._due.get(key)
        if due is None:
            if len(self._due) >= DUE_CACHE:  # studies come and go: start afresh
                self._due.clear()
            group = qualification_key(study)
            due = self._due[key] = self._coverage.due(study, group, self.qualified_for(study))
        return due

    def on_duty_until(self, reader: Reader, now: datetime) -> datetime | None:
        """When ``reader``'s shift ends, if they are on one at ``now``."""
        return self._coverage.on_duty_until(reader.user_id, now)

    def eligible(
        self, reader: Reader, study: ReadingStudy, now: datetime
    ) -> tuple[bool, list[str]]:
        """:func:`eligible` with the cached on-shift answer."""
        return eligible(reader, study, now, on_shift=self.on_shift(reader, now))


def qualification_key(study: ReadingStudy) -> QualificationKey:
    """What decides who is qualified for a study: studies with one key share their readers."""
    return (
        study.facility_id,
        study.jurisdiction,
        study.modality,
        study.subspecialty,
        study.read_kind,  # a str: the member, not its slower .value
    )


def _static(reader: Reader) -> tuple[object, ...]:
    return (
        reader.licences,
        reader.facility_ids,
        reader.modalities,
        reader.subspecialties,
        reader.read_kinds,
    )


def tier_order(study: ReadingStudy) -> OrderKey:
    """Tier, then deadline: the order of a queue that knows nothing of the roster."""
    return (study.priority.rank, study.deadline, study.uid)


@dataclass
class Workload:
    """Running sums per reader: RVU held, RVU opened, and open studies per patient; and
    each reader's unopened studies with their place in the queue (``order``, taken
    when the study is added), for how much of the queue is ahead of a study."""

    rvu: dict[int, float] = field(default_factory=dict)
    order: Order = tier_order
    _patients: dict[str, Counter[int]] = field(default_factory=dict)
    _unopened: dict[int, dict[str, tuple[OrderKey, float]]] = field(default_factory=dict)
    _opened: dict[int, dict[str, float]] = field(default_factory=dict)

    def load(self, user_id: int) -> float:
        return self.rvu.get(user_id, 0.0)

    def reading(self, user_id: int) -> bool:
        """Whether the reader has opened a study they hold (they are working on it)."""
        return bool(self._opened.get(user_id))

    def ahead(self, user_id: int, study: ReadingStudy) -> float:
        """RVU the reader reads before reaching ``study``: what they have opened, and what
        they hold unopened that comes before it in the queue's order."""
        before = sum(self._opened.get(user_id, {}).values())
        held = self._unopened.get(user_id)
        if held:
            place = self.order(study)
            before += sum(rvu for key, rvu in held.values() if key < place)
        return before

    def add(self, user_id: int, study: ReadingStudy) -> None:
        self.rvu[user_id] = self.rvu.get(user_id, 0.0) + study.rvu
        self._unopened.setdefault(user_id, {})[study.uid] = (self.order(study), study.rvu)
        if study.patient_key:
            self._patients.setdefault(study.patient_key, Counter())[user_id] += 1

    def open(self, user_id: int, study: ReadingStudy) -> None:
        """The reader opened ``study``, which they hold: it is no longer waiting in their queue."""
        held = self._unopened.get(user_id, {}).pop(study.uid, None)
        if held is not None:
            self._opened.setdefault(user_id, {})[study.uid] = held[1]

    def remove(self, user_id: int, study: ReadingStudy) -> None:
        left = self.rvu.get(user_id, 0.0) - study.rvu
        self.rvu[user_id] = 0.0 if left < EPSILON else left
        self._unopened.get(user_id, {}).pop(study.uid, None)
        self._opened.get(user_id, {}).pop(study.uid, None)
        if study.patient_key:
            holders = self._patients.get(study.patient_key)
            if holders is not None:
                holders[user_id] -= 1
                if holders[user_id] <= 0:
                    del holders[user_id]
                if not holders:
                    del self._patients[study.patient_key]

    def holds_patient(self, user_id: int, key: str) -> bool:
        holders = self._patients.get(key)
        return holders is not None and user_id in holders


@dataclass(frozen=True)
class Score:
    """One reader's score for one study, term by term."""

    user_id: int
    terms: dict[str, float]
    load: float
    cap: float
    wait_minutes: float
    #: Their shift ends before they would open it.
    leaves_first: bool = False

    @property
    def total(self) -> float:
        return sum(self.terms.values())


@dataclass(frozen=True)
class Decision:
    """The outcome of one routing decision and what it was based on."""

    study: ReadingStudy
    now: datetime
    reader: Reader | None
    score: Score | None = None
    runner_up: Score | None = None
    #: Eligible readers scored (after the cap).
    considered: int = 0
    #: Why the qualified readers who were not scored were left out, with counts.
    left_out: dict[str, int] = field(default_factory=dict)
    bypassed_cap: bool = False
    widened: bool = False
    step: EscalationStep | None = None
    trigger: str = "pushed on arrival"
    #: When the study is due (:meth:`Roster.due`); None: at its deadline.
    due: datetime | None = None

    @property
    def time_left(self) -> timedelta:
        return self.study.deadline - self.now

    @property
    def time_to_due(self) -> timedelta:
        return (self.due or self.study.deadline) - self.now

    def explain(self) -> str:
        """Why this reader (why me) and why at this moment (why now), in words."""
        return explain(self)


def reading_order(study: ReadingStudy, roster: Roster, rules: Rules) -> OrderKey:
    """Where ``study`` stands in a reader's queue: the tiers that bypass the cap first,
    in tier order, then every other study by when it is due (:meth:`Roster.due`), so
    that an urgent study about to breach goes before a STAT with an hour left, and a
    routine study nobody else may read after tonight's shift goes before both."""
    rank = study.priority.rank if study.priority in rules.bypass_cap else len(Priority)
    return (rank, roster.due(study), study.uid)


def start_in(reader: Reader, study: ReadingStudy, workload: Workload) -> float:
    """Minutes until ``reader`` would open ``study``: what they are reading and what they
    hold ahead of it in their queue, at their reading speed."""
    return workload.ahead(reader.user_id, study) / reader.rvu_per_hour * 60


def score_reader(
    reader: Reader,
    study: ReadingStudy,
    workload: Workload,
    rules: Rules,
    now: datetime,
    roster: Roster | None = None,
) -> Score:
    """The reader's score for the study, term by term. With the ``roster``, the time left
    runs to when the study is due (not only its deadline), and a reader who would not
    open it before their shift ends is scored as if it would wait all the time left."""
    w = rules.weights
    load = workload.load(reader.user_id)
    cap = rules.cap_of(reader.queue_cap_rvu)
    due = study.deadline if roster is None else roster.due(study)
    minutes_left = max((due - now).total_seconds() / 60, 1.0)
    wait = start_in(reader, study, workload)
    share = wait / minutes_left
    until = None if roster is None else roster.on_duty_until(reader, now)
    leaves_first = until is not None and now + timedelta(minutes=wait) >= until
    if leaves_first:
        share = max(share, 1.0)  # as bad as waiting all the time left
    terms = {
        "wait": -w.wait * share,
        "load": -w.load * load / cap,
        "same_patient": w.same_patient
        if workload.holds_patient(reader.user_id, study.patient_key)
        else 0.0,
        "priors": w.priors if reader.user_id in study.prior_readers else 0.0,
    }
    return Score(reader.user_id, terms, load, cap, wait, leaves_first)


def assign(
    study: ReadingStudy,
    readers: Roster,
    workload: Workload,
    rules: Rules,
    now: datetime,
    *,
    exclude: frozenset[int] = frozenset(),
    trigger: str = "pushed on arrival",
) -> Decision:
    """Choose the reader for ``study`` at ``now`` (``reader`` is None when nobody fits).

    ``exclude`` leaves out readers who just gave the study back or sat on it.
    """
    fraction = study.elapsed_fraction(now)
    bypass = study.priority in rules.bypass_cap
    widened = rules.widened(fraction)
    left_out: Counter[str] = Counter()
    best: Score | None = None
    second: Score | None = None
    best_key = second_key = (float("-inf"), 0)
    considered = 0
    for uid in readers.qualified_for(study):
        if uid in exclude:
            left_out[GAVE_IT_BACK] += 1
            continue
        reader = readers.get(uid)
        # Qualified already: signed in and on shift is all that is left to check (in the
        # order eligible() gives its reasons).
        if not reader.signed_in:
            left_out["signed out"] += 1
            continue
        if not readers.on_shift(reader, now):
            left_out["not on shift"] += 1
            continue
        cap = rules.cap_of(reader.queue_cap_rvu)
        if not (bypass or widened) and workload.load(uid) + study.rvu > cap + EPSILON:
            left_out["queue over the cap"] += 1
            continue
        considered += 1
        score = score_reader(reader, study, workload, rules, now, readers)
        key = (score.total, -uid)  # ties: the lowest user id
        if key > best_key:
            second, second_key = best, best_key
            best, best_key = score, key
        elif key > second_key:
            second, second_key = score, key
    return Decision(
        study=study,
        now=now,
        reader=readers.get(best.user_id) if best else None,
        score=best,
        runner_up=second,
        considered=considered,
        left_out=dict(left_out),
        bypassed_cap=bypass,
        widened=widened and not bypass,
        step=rules.step_at(fraction),
        trigger=trigger,
        due=readers.due(study),
    )
