"""Reconciliation and readiness: each study finds its order and, once complete, its reader.

:meth:`Reconciler.run` looks at the studies whose state may have changed (new
instances, still arriving or held, or unmatched while orders came in), matches
them to orders (:mod:`telerad.domain.reconciliation`), judges readiness
(:mod:`telerad.domain.readiness`) and keeps the result in the reading state table.
A study that becomes ready moves its order to READY and goes to the reading
queue; one that receives more images of the examination after that is withdrawn
until it is stable again (and comes back with its deadline and history). Objects
made while reading — reports, key objects, presentation states, AI results, or
anything the reading network's own accounts store — never withdraw it. A person
resolves what the rules cannot: :meth:`assign` matches a study to an order by
hand, :meth:`release` sends it to reading as it is.

A pass is one unit of work (:class:`~telerad.services.ports.UnitOfWork`): the
orders it matches and moves, their audit records, the worklist entries of the
studies it sends to reading and the reading states are written together or not
at all, and so are a person's match and release with theirs.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from telerad.domain.audit import Action, EventID
from telerad.domain.modalities import modality_problem, primary_modality
from telerad.domain.model import Facility
from telerad.domain.orders import Order, OrderError, OrderEvent
from telerad.domain.readiness import (
    PerformedStep,
    Readiness,
    ReadingState,
    SeriesFacts,
    StudyFacts,
    assess,
)
from telerad.domain.reconciliation import MatchedBy, match
from telerad.services.access_audit import Actor
from telerad.services.audit import AuditService
from telerad.services.orders import OrderService, Origin, utcnow
from telerad.services.ports import Immediate, UnitOfWork
from telerad.workflow.model import Priority, ReadingStudy, patient_key

log = logging.getLogger(__name__)

RECONCILIATION = Origin("reconciliation", "telerad")


class StateStore(Protocol):
    """Where reading states are kept (storage.db.reconcile_repository.SqlReadingStates)."""

    def to_check(self, orders_since: datetime | None, limit: int) -> list[StudyFacts]: ...

    def series_of(self, study_pks: Sequence[int]) -> dict[int, tuple[SeriesFacts, ...]]: ...

    def steps_of(self, study_uids: Sequence[str]) -> dict[str, list[PerformedStep]]: ...

    def states(self, study_pks: Sequence[int]) -> dict[int, ReadingState]: ...

    def by_uid(self, study_uid: str) -> ReadingState | None: ...

    def put(self, state: ReadingState) -> None: ...

    def put_all(self, states: Sequence[ReadingState]) -> None: ...

    def listing(
        self, states: frozenset[Readiness], facility_ids: frozenset[int] | None, limit: int = 200
    ) -> list[ReadingState]: ...


class ReadingQueue(Protocol):
    """The reading worklist as reconciliation feeds it."""

    def enqueue(self, study: ReadingStudy, now: datetime) -> None: ...

    def withdraw(self, study_uid: str, now: datetime) -> None: ...

    def held(self) -> AbstractContextManager[object]:
        """The worklist kept to this thread, taken before a unit of work that feeds it
        begins (the lock order of :class:`~telerad.services.ports.UnitOfWork`)."""
        ...


@dataclass(frozen=True)
class ReadinessPolicy:
    stable_for: timedelta = timedelta(minutes=2)
    hold_limit: timedelta = timedelta(minutes=30)
    batch: int = 500


@dataclass(frozen=True)
class Found:
    """The order a study answers (or why none), and how it was found."""

    order: Order | None
    matched_by: str = ""
    reason: str = ""


Deadline = Callable[[int, Priority, datetime], datetime]


class Reconciler:
    def __init__(
        self,
        states: StateStore,
        orders: OrderService,
        facility: Callable[[int], Facility | None],
        deadline: Deadline,
        policy: ReadinessPolicy | None = None,
        queue: ReadingQueue | None = None,
        clock: Callable[[], datetime] = utcnow,
        audit: AuditService | None = None,
        unit_of_work: UnitOfWork | None = None,
    ) -> None:
        self.states = states
        self.orders = orders
        self.facility = facility
        self.deadline = deadline
        self.policy = policy or ReadinessPolicy()
        self.queue = queue
        self.clock = clock
        self.audit = audit or orders.audit
        #: A pass, a match by hand, a release: each all written, or nothing.
        self.unit: UnitOfWork = unit_of_work or Immediate()
        self._lock = threading.Lock()
        self._orders_seen: datetime | None = None

    # -- the periodic pass ------------------------------------------------------------
    def run(self) -> Counter[str]:
        """One pass over the studies that may have changed; how many ended in each state."""
        with self._lock:
            now = self.clock()
            facts = self.states.to_check(self._orders_seen, self.policy.batch)
            # Orders changed from here on are looked at next time (a little overlap is fine).
            seen = now - timedelta(seconds=1)
            if not facts:
                self._orders_seen = seen
                return Counter()
            # The orders matched and moved, the worklist's entries and the states are one
            # unit: a pass that fails leaves nothing of itself, and the next one starts
            # over from the same orders (the worklist's lock first: the lock order).
            with self._queue_held(), self.unit:
                counts = self._pass(facts, now)
            self._orders_seen = seen
            return counts

    def _queue_held(self) -> AbstractContextManager[object]:
        return self.queue.held() if self.queue is not None else nullcontext()

    def _pass(self, facts: list[StudyFacts], now: datetime) -> Counter[str]:
        counts: Counter[str] = Counter()
        known = self.states.states([f.pk for f in facts if f.pk is not None])
        candidates = self.orders.candidates(facts)
        found = {f.uid: self._order_of(f, known.get(f.pk or 0), candidates) for f in facts}
        matched = [f for f in facts if found[f.uid].order or _released(known.get(f.pk or 0))]
        series = self.states.series_of([f.pk for f in matched if f.pk is not None])
        steps = self.states.steps_of([f.uid for f in matched])
        settled = []
        for study in facts:
            full = replace(study, series=series.get(study.pk or 0, ()))
            prior = known.get(study.pk or 0)
            state = self._settle(full, prior, found[study.uid], steps.get(study.uid, []), now)
            settled.append(state)
            counts[state.state.value] += 1
        self.states.put_all(settled)
        return counts

    def _order_of(
        self, study: StudyFacts, prior: ReadingState | None, candidates: Sequence[Order]
    ) -> Found:
        if prior is not None and prior.order_id is not None:
            order = self.orders.get(prior.order_id)
            if order is not None:
                return Found(order, prior.matched_by)
        result = match(study, candidates)  # it keeps the study's own facility's orders
        if result.order is None:
            return Found(None, reason=result.reason)
        if result.by is None:  # the order already names this study
            return Found(result.order, prior.matched_by if prior else MatchedBy.STUDY_UID.value)
        try:
            order = self.orders.match(result.order, study.uid, result.by.value, RECONCILIATION)
        except OrderError as exc:  # matched to another study meanwhile
            return Found(None, reason=str(exc))
        return Found(order, result.by.value)

    def _settle(
        self,
        study: StudyFacts,
        prior: ReadingState | None,
        found: Found,
        steps: list[PerformedStep],
        now: datetime,
    ) -> ReadingState:
        released = _released(prior)
        order = found.order
        was_ready = prior is not None and prior.state == Readiness.READY
        if was_ready and prior is not None:
            if study.acquired <= prior.acquired:
                # Only what reading made (a report, key images, AI results): still ready.
                return replace(
                    prior,
                    instances=study.num_instances,
                    last_change=study.last_change,
                    order_id=order.id if order is not None else prior.order_id,
                )
            self._withdraw(study, order, now)  # more images of the examination
            was_ready = False
        assessment = assess(
            study,
            steps,
            matched=order is not None or released,
            now=now,
            stable_for=self.policy.stable_for,
            # A person who released it has seen what is missing.
            hold_limit=timedelta(0) if released else self.policy.hold_limit,
        )
        ready_at = prior.ready_at if was_ready and prior is not None else None
        if assessment.state == Readiness.READY and not was_ready:
            ready_at = now
            tier = Priority(prior.released_as) if released and prior else Priority.ROUTINE
            self._become_ready(study, order, now, tier)
        waiting = (found.reason,) if found.reason and order is None and not released else ()
        return ReadingState(
            study_pk=study.pk or 0,
            study_uid=study.uid,
            facility_id=study.facility_id,
            state=assessment.state,
            last_change=study.last_change,
            instances=study.num_instances,
            acquired=study.acquired,
            order_id=order.id if order is not None else None,
            matched_by=found.matched_by if order is not None else _by(prior, released),
            problems=waiting + assessment.problems,
            ready_at=ready_at,
            released_as=prior.released_as if prior is not None else "",
        )

    def _withdraw(self, study: StudyFacts, order: Order | None, now: datetime) -> None:
        if self.queue is not None:
            self.queue.withdraw(study.uid, now)
        if order is not None:
            try:
                self.orders.step(order, OrderEvent.REOPEN, RECONCILIATION)
            except OrderError:
                log.info("order %s not reopened: its status does not allow it", order.id)

    def _become_ready(
        self, study: StudyFacts, order: Order | None, now: datetime, tier: Priority
    ) -> None:
        if order is not None:
            try:
                self.orders.step(order, OrderEvent.READY, RECONCILIATION)
            except OrderError:
                log.info("order %s not moved to ready: its status does not allow it", order.id)
        if self.queue is not None:
            self.queue.enqueue(self.reading_study(study, order, now, tier), now)

    def reading_study(
        self, study: StudyFacts, order: Order | None, now: datetime, tier: Priority
    ) -> ReadingStudy:
        """The study as the reading worklist routes it: the order's facts, else the images'."""
        facility = self.facility(study.facility_id)
        proc = order.procedure if order is not None else None
        priority = order.priority if order is not None else tier
        return ReadingStudy(
            uid=study.uid,
            facility_id=study.facility_id,
            jurisdiction=facility.jurisdiction if facility is not None else "",
            modality=_modality(proc.modality if proc else "", study.modalities),
            priority=priority,
            ready_at=now,
            deadline=self.deadline(study.facility_id, priority, now),
            rvu=proc.rvu if proc else 1.0,
            body_part=proc.body_part if proc else "",
            subspecialty=proc.subspecialty if proc else "",
            patient_key=patient_key(study.facility_id, study.patient_id),
        )

    # -- what people decide -----------------------------------------------------------
    def waiting(
        self, facility_ids: frozenset[int] | None, by: Actor | None = None
    ) -> list[ReadingState]:
        """The reconciliation queue: unmatched and held studies, oldest first; a person
        (``by``) listing it is audited."""
        wanted = frozenset({Readiness.UNMATCHED, Readiness.INCOMPLETE})
        found = self.states.listing(wanted, facility_ids)
        if by is not None:
            detail = f"reconciliation queue listed ({len(found)} studies)"
            self._audit(by, EventID.QUERY, Action.EXECUTE, detail)
        return found

    def assign(self, study_uid: str, order: Order, origin: Origin) -> ReadingState:
        """A person matched the study to ``order``; readiness is judged at the next pass."""
        with self._lock:
            state = self._state(study_uid)
            if order.facility_id != state.facility_id:
                raise OrderError("the order belongs to another facility than the study")
            if state.order_id is not None and state.order_id != order.id:
                raise OrderError("the study is already matched to another order")
            if not order.is_open:
                raise OrderError(f"an order that is {order.status.value} cannot take a study")
            with self.unit:  # the order matched and the study's state, together
                order = self.orders.match(order, study_uid, MatchedBy.PERSON.value, origin)
                updated = replace(
                    state,
                    order_id=order.id,
                    matched_by=MatchedBy.PERSON.value,
                    state=Readiness.ARRIVING,
                    problems=(),
                )
                self.states.put(updated)
            return updated

    def release(self, study_uid: str, tier: Priority, by: Actor | None = None) -> ReadingState:
        """A person (``by``, audited) sends an unmatched or held study to reading as it
        is, at ``tier``."""
        with self._lock:
            state = self._state(study_uid)
            if state.state == Readiness.READY:
                raise OrderError("the study is already on the reading worklist")
            updated = replace(
                state,
                matched_by=state.matched_by or MatchedBy.PERSON.value,
                released_as=tier.value,
                state=Readiness.ARRIVING,
            )
            with self.unit:  # the state and its audit record, together
                self.states.put(updated)
                if by is not None:
                    detail = f"released to reading as {tier.value}"
                    self._audit(by, EventID.PROCEDURE_RECORD, Action.UPDATE, detail, study_uid)
            return updated

    def _audit(
        self, by: Actor, event: EventID, action: Action, detail: str, study_uid: str = ""
    ) -> None:
        self.audit.record(
            event,
            by.id,
            actor_role=by.role,
            actor_is_user=by.is_user,
            action=action,
            source_address=by.source,
            study_uid=study_uid,
            detail=detail,
        )

    def _state(self, study_uid: str) -> ReadingState:
        state = self.states.by_uid(study_uid)
        if state is None:
            raise LookupError(f"study {study_uid} is not known to reconciliation yet")
        return state


def _modality(ordered: str, found: frozenset[str]) -> str:
    """The order's modality when it is a DICOM one (a RIS may send its own codes, such as
    "RAD"), else the one the images are read as: always a value readers' profiles name."""
    return ordered if modality_problem(ordered) is None else primary_modality(found)


def _released(prior: ReadingState | None) -> bool:
    return prior is not None and bool(prior.released_as)


def _by(prior: ReadingState | None, released: bool) -> str:
    if released and prior is not None:
        return prior.matched_by or MatchedBy.PERSON.value
    return ""
