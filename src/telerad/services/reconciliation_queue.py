"""The reconciliation queue as the person resolving it sees it.

Each waiting study (:meth:`Reconciler.waiting`) with what identifies it to a
person — the patient's name and birth date, its modalities and date — and the
orders it may be matched to: open orders of its facility for its accession
number, UID or patient (:func:`~telerad.domain.reconciliation.orders_to_pick`).
A page is three queries whatever its length: the states, the studies' patient
facts, the candidate orders.
"""

from __future__ import annotations

from dataclasses import dataclass

from telerad.domain.identity import Principal
from telerad.domain.model import Level
from telerad.domain.orders import Order
from telerad.domain.query import Query, UidList
from telerad.domain.readiness import Readiness, ReadingState, StudyFacts
from telerad.domain.reconciliation import orders_to_pick
from telerad.services.access_audit import Actor
from telerad.services.archive import Archive
from telerad.services.orders import OrderService
from telerad.services.reconcile import Reconciler
from telerad.services.studies import Scope
from telerad.services.study_list import listed_modalities

#: Arriving studies are counted up to this many ("500 or more").
ARRIVING_SHOWN = 500


@dataclass(frozen=True)
class QueueRow:
    state: ReadingState
    patient_name: str  # DICOM PN
    birth_date: str  # DICOM DA
    modalities: tuple[str, ...]
    #: Orders it may be matched to, those with its accession number first.
    candidates: tuple[Order, ...]


def _facts(state: ReadingState) -> StudyFacts:
    return StudyFacts(
        uid=state.study_uid,
        facility_id=state.facility_id,
        patient_id=state.patient_id,
        accession_number=state.accession_number,
        study_date=state.study_date,
        modalities=frozenset(),
        last_change=state.last_change,
    )


class ReconciliationQueue:
    def __init__(self, reconciler: Reconciler, orders: OrderService, archive: Archive) -> None:
        self.reconciler = reconciler
        self.orders = orders
        self.archive = archive

    def rows(self, who: Principal, by: Actor | None = None) -> list[QueueRow]:
        """The studies waiting for a person at the facilities ``who`` sees, oldest first
        (``by``: the person listing them, audited)."""
        return self._rows(who, self.reconciler.waiting(who.facility_ids, by))

    def state(self, who: Principal, study_uid: str) -> ReadingState | None:
        """Where one study stands (None when ``who`` does not see it)."""
        state = self.reconciler.states.by_uid(study_uid)
        if state is None or not who.sees(state.facility_id, study_uid):
            return None
        return state

    def arriving(self, who: Principal) -> int:
        """How many of ``who``'s facilities' studies are still arriving (not yet stable):
        they may come here if they stay without an order."""
        wanted = frozenset({Readiness.ARRIVING})
        return len(self.reconciler.states.listing(wanted, who.facility_ids, limit=ARRIVING_SHOWN))

    def row(self, who: Principal, study_uid: str) -> QueueRow | None:
        """One study as the queue shows it (None when ``who`` does not see it)."""
        state = self.state(who, study_uid)
        return self._rows(who, [state])[0] if state is not None else None

    def _rows(self, who: Principal, states: list[ReadingState]) -> list[QueueRow]:
        if not states:
            return []
        wanted = UidList(tuple(s.study_uid for s in states))
        found = self.archive.search(
            Scope.of(who).applied(Query(Level.STUDY, matches={"StudyInstanceUID": wanted}))
        )
        studies = {str(s["StudyInstanceUID"]): s for s in found}
        facts = [_facts(s) for s in states]
        orders = self.orders.candidates(facts)
        rows = []
        for state, study_facts in zip(states, facts, strict=True):
            study = studies.get(state.study_uid, {})
            rows.append(
                QueueRow(
                    state=state,
                    patient_name=str(study.get("PatientName") or ""),
                    birth_date=str(study.get("PatientBirthDate") or ""),
                    modalities=listed_modalities(study.get("ModalitiesInStudy")),
                    candidates=tuple(orders_to_pick(study_facts, orders)),
                )
            )
        return rows
