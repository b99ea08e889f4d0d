"""Reconciliation's reading states in memory (the real store:
storage.db.reconcile_repository.SqlReadingStates).

Like the SQL store it reads the archive index and the orders, here their fakes
(:class:`~tests.fakes.index.FakeIndex`, :class:`~tests.fakes.orders.FakeOrders`):
which studies to look at (new, grown, not yet ready, or unmatched while an order
for their patient or accession number changed), their series with instance
numbers and acquired images, and their performed procedure steps. States are
listed by their last change, joined with their study's facts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from tests.fakes.index import FakeIndex, StudyRow
from tests.fakes.orders import FakeOrders

from telerad.domain.modalities import is_acquired_image
from telerad.domain.readiness import (
    PerformedStep,
    Readiness,
    ReadingState,
    SeriesFacts,
    StudyFacts,
)
from telerad.storage.db.reconcile_repository import performed_series

_LOOKED_AT_AGAIN = (Readiness.ARRIVING, Readiness.INCOMPLETE)


class FakeReadingStates:
    def __init__(self, index: FakeIndex, orders: FakeOrders) -> None:
        self.index = index
        self.orders = orders
        #: study pk → the state as last put (its study's facts are joined on reading).
        self.rows: dict[int, ReadingState] = {}

    def _changed(self, study: StudyRow, orders_since: datetime | None) -> bool:
        state = self.rows.get(study.pk)
        if state is None or state.instances != study.num_instances:
            return True
        if state.state in _LOOKED_AT_AGAIN:
            return True
        if state.state is not Readiness.UNMATCHED:
            return False
        if orders_since is None:
            return True
        patient_id = self.index.patients[study.patient_pk].patient_id
        return any(
            o.facility_id == study.facility_id
            and (o.patient.patient_id == patient_id or o.accession_number == study.accession)
            and o.updated_at is not None
            and o.updated_at > orders_since
            for o in self.orders.orders.values()
        )

    def to_check(self, orders_since: datetime | None, limit: int) -> list[StudyFacts]:
        found = [
            StudyFacts(
                uid=s.uid,
                facility_id=s.facility_id,
                patient_id=self.index.patients[s.patient_pk].patient_id,
                accession_number=s.accession,
                study_date=s.date,
                modalities=frozenset(m for m in s.modalities.split("/") if m),
                last_change=s.updated_at,
                num_instances=s.num_instances,
                pk=s.pk,
            )
            for _, s in sorted(self.index.studies.items())
            if self._changed(s, orders_since)
        ]
        return found[:limit]

    def series_of(self, study_pks: Sequence[int]) -> dict[int, tuple[SeriesFacts, ...]]:
        out = {}
        for pk in set(study_pks):
            series: dict[str, Any] = {}
            for se, i in self.index.instances_of_study(pk):
                entry = series.setdefault(se.uid, (se.modality, se.number, [], [0]))
                entry[2].append(i.number)
                entry[3][0] += is_acquired_image(i.sop_class_uid, i.origin)
            if not series:
                continue
            ordered = sorted(
                series.items(), key=lambda kv: (kv[1][1] is None, kv[1][1] or 0, kv[0])
            )
            out[pk] = tuple(
                SeriesFacts(
                    uid,
                    modality,
                    number,
                    tuple(sorted(numbers, key=lambda n: (n is None, n or 0))),
                    acquired[0],
                )
                for uid, (modality, number, numbers, acquired) in ordered
            )
        return out

    def steps_of(self, study_uids: Sequence[str]) -> dict[str, list[PerformedStep]]:
        steps: dict[str, list[PerformedStep]] = {}
        for uid in set(study_uids):
            for step in self.orders.mpps_of_study(uid):
                found = PerformedStep(step["status"], performed_series(step["json"]))
                steps.setdefault(uid, []).append(found)
        return steps

    def _joined(self, state: ReadingState) -> ReadingState:
        """The state with its study's facts, as the SQL store's join reads them now."""
        study = self.index.studies[state.study_pk]
        return replace(
            state,
            study_uid=study.uid,
            patient_id=self.index.patients[study.patient_pk].patient_id,
            accession_number=study.accession,
            modalities=study.modalities,
            study_date=study.date,
            study_description=study.description,
        )

    def _listed(self, states: list[ReadingState], limit: int | None) -> list[ReadingState]:
        ordered = sorted(states, key=lambda s: s.last_change)
        return [self._joined(s) for s in ordered[:limit]]

    def states(self, study_pks: Sequence[int]) -> dict[int, ReadingState]:
        return {
            s.study_pk: s
            for s in self._listed([self.rows[pk] for pk in set(study_pks) if pk in self.rows], None)
        }

    def listing(
        self, states: frozenset[Readiness], facility_ids: frozenset[int] | None, limit: int = 200
    ) -> list[ReadingState]:
        wanted = [
            s
            for s in self.rows.values()
            if s.state in states and (facility_ids is None or s.facility_id in facility_ids)
        ]
        return self._listed(wanted, limit)

    def by_uid(self, study_uid: str) -> ReadingState | None:
        study = next((s for s in self.index.studies.values() if s.uid == study_uid), None)
        if study is None or study.pk not in self.rows:
            return None
        return self._joined(self.rows[study.pk])

    def put(self, state: ReadingState) -> None:
        self.put_all([state])

    def put_all(self, states: Sequence[ReadingState]) -> None:
        for state in states:  # the study's facts in it are read again from the index
            self.rows[state.study_pk] = state
