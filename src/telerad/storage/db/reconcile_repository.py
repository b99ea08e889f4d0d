"""The reading state of studies: which need a look, their facts, their order and state."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, bindparam, exists, insert, or_, select, update

from telerad.domain.modalities import is_acquired_image
from telerad.domain.readiness import (
    PerformedStep,
    Readiness,
    ReadingState,
    SeriesFacts,
    StudyFacts,
)
from telerad.storage.db import tables as t
from telerad.storage.db.times import utc
from telerad.storage.db.unit_of_work import reading, writing
from telerad.storage.db.writer import modalities_from_db

_R, _S, _O = t.reading_study, t.study, t.imaging_order


class SqlReadingStates:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def to_check(self, orders_since: datetime | None, limit: int) -> list[StudyFacts]:
        """Studies whose state may have changed (without their series; see :meth:`series_of`).

        New studies, studies with new instances, studies not yet ready (arriving,
        incomplete) and — when orders changed since ``orders_since`` — unmatched
        studies of a patient or accession number an order names.
        """
        p = t.patient
        unmatched = _R.c.state == Readiness.UNMATCHED.value
        order_news = (
            exists().where(
                _O.c.facility_id == _S.c.facility_id,
                or_(
                    _O.c.patient_id == p.c.patient_id,
                    _O.c.accession_number == _S.c.accession_number,
                ),
                _O.c.updated_at > orders_since,
            )
            if orders_since is not None
            else None
        )
        changed = or_(
            _R.c.study_pk.is_(None),
            _S.c.num_instances != _R.c.instances,
            _R.c.state.in_([Readiness.ARRIVING.value, Readiness.INCOMPLETE.value]),
            and_(unmatched, order_news) if order_news is not None else unmatched,
        )
        query = (
            select(
                _S.c.id,
                _S.c.study_instance_uid,
                _S.c.facility_id,
                p.c.patient_id,
                _S.c.accession_number,
                _S.c.study_date,
                _S.c.modalities,
                _S.c.updated_at,
                _S.c.num_instances,
            )
            .select_from(
                _S.join(p, p.c.id == _S.c.patient_pk).outerjoin(_R, _R.c.study_pk == _S.c.id)
            )
            .where(changed)
            .order_by(_S.c.id)
            .limit(limit)
        )
        with reading(self.engine) as conn:
            rows = conn.execute(query).all()
        return [
            StudyFacts(
                uid=r.study_instance_uid,
                facility_id=r.facility_id,
                patient_id=r.patient_id,
                accession_number=r.accession_number,
                study_date=r.study_date,
                modalities=frozenset(modalities_from_db(r.modalities)),
                last_change=utc(r.updated_at),
                num_instances=r.num_instances,
                pk=r.id,
            )
            for r in rows
        ]

    def series_of(self, study_pks: Sequence[int]) -> dict[int, tuple[SeriesFacts, ...]]:
        """Each study's series with their instance numbers."""
        se, i = t.series, t.instance
        found: dict[int, dict[str, Any]] = defaultdict(dict)
        with reading(self.engine) as conn:
            rows = conn.execute(
                select(
                    se.c.study_pk,
                    se.c.series_instance_uid,
                    se.c.modality,
                    se.c.series_number,
                    i.c.instance_number,
                    i.c.sop_class_uid,
                    i.c.origin,
                )
                .select_from(se.join(i, i.c.series_pk == se.c.id))
                .where(se.c.study_pk.in_(list(study_pks)))
            ).all()
        for r in rows:
            entry = found[r.study_pk].setdefault(
                r.series_instance_uid, (r.modality, r.series_number, [], [0])
            )
            entry[2].append(r.instance_number)
            entry[3][0] += is_acquired_image(r.sop_class_uid, r.origin)
        return {
            pk: tuple(
                SeriesFacts(
                    uid,
                    modality,
                    number,
                    tuple(sorted(numbers, key=lambda n: (n is None, n or 0))),
                    acquired[0],
                )
                for uid, (modality, number, numbers, acquired) in sorted(
                    series.items(), key=lambda kv: (kv[1][1] is None, kv[1][1] or 0, kv[0])
                )
            )
            for pk, series in found.items()
        }

    def steps_of(self, study_uids: Sequence[str]) -> dict[str, list[PerformedStep]]:
        """The MPPS of each study, with the series and instance counts they performed."""
        with reading(self.engine) as conn:
            rows = conn.execute(
                select(t.mpps.c.study_instance_uid, t.mpps.c.status, t.mpps.c.json).where(
                    t.mpps.c.study_instance_uid.in_(list(study_uids))
                )
            ).all()
        steps: dict[str, list[PerformedStep]] = defaultdict(list)
        for r in rows:
            steps[r.study_instance_uid].append(PerformedStep(r.status, performed_series(r.json)))
        return steps

    def states(self, study_pks: Sequence[int]) -> dict[int, ReadingState]:
        return {s.study_pk: s for s in self._states(_R.c.study_pk.in_(list(study_pks)))}

    def listing(
        self, states: frozenset[Readiness], facility_ids: frozenset[int] | None, limit: int = 200
    ) -> list[ReadingState]:
        where: Any = _R.c.state.in_(sorted(s.value for s in states))
        if facility_ids is not None:
            where = and_(where, _R.c.facility_id.in_(sorted(facility_ids)))
        return self._states(where, limit)

    def by_uid(self, study_uid: str) -> ReadingState | None:
        found = self._states(_S.c.study_instance_uid == study_uid, 1)
        return found[0] if found else None

    def _states(self, where: Any, limit: int | None = None) -> list[ReadingState]:
        p = t.patient
        query = (
            select(
                _R,
                _S.c.study_instance_uid,
                _S.c.accession_number,
                _S.c.modalities,
                _S.c.study_date,
                _S.c.study_description,
                p.c.patient_id,
            )
            .select_from(_R.join(_S, _S.c.id == _R.c.study_pk).join(p, p.c.id == _S.c.patient_pk))
            .where(where)
            .order_by(_R.c.last_change)
        )
        if limit is not None:
            query = query.limit(limit)
        with reading(self.engine) as conn:
            rows = conn.execute(query).all()
        return [
            ReadingState(
                study_pk=r.study_pk,
                study_uid=r.study_instance_uid,
                facility_id=r.facility_id,
                order_id=r.order_id,
                matched_by=r.matched_by,
                state=Readiness(r.state),
                problems=tuple(json.loads(r.problems)),
                instances=r.instances,
                acquired=r.acquired,
                last_change=utc(r.last_change),
                ready_at=utc(r.ready_at),
                released_as=r.released_as,
                patient_id=r.patient_id,
                accession_number=r.accession_number,
                modalities=r.modalities,
                study_date=r.study_date,
                study_description=r.study_description,
            )
            for r in rows
        ]

    def put(self, state: ReadingState) -> None:
        self.put_all([state])

    def put_all(self, states: Sequence[ReadingState]) -> None:
        """Write the states in one transaction."""
        if not states:
            return
        with writing(self.engine) as conn:
            existing = set(
                conn.execute(
                    select(_R.c.study_pk).where(_R.c.study_pk.in_([s.study_pk for s in states]))
                ).scalars()
            )
            new = [
                {"study_pk": s.study_pk, **_row(s)} for s in states if s.study_pk not in existing
            ]
            # Bound names must differ from the columns they set.
            changed = [
                {"pk": s.study_pk, **{f"v_{k}": v for k, v in _row(s).items()}}
                for s in states
                if s.study_pk in existing
            ]
            if new:
                conn.execute(insert(_R), new)
            if changed:
                values: dict[str, Any] = {k: bindparam(f"v_{k}") for k in _row(states[0])}
                where = _R.c.study_pk == bindparam("pk")
                conn.execute(update(_R).where(where).values(values), changed)


def performed_series(dicom_json: str) -> dict[str, int]:
    """Series UID → referenced image count, from an MPPS kept as DICOM JSON."""
    try:
        data = json.loads(dicom_json)
    except ValueError:
        return {}
    out: dict[str, int] = {}
    for item in data.get("00400340", {}).get("Value", []):  # Performed Series Sequence
        uid = (item.get("0020000E", {}).get("Value") or [""])[0]
        images = item.get("00081140", {}).get("Value", [])  # Referenced Image Sequence
        if uid:
            out[uid] = len(images)
    return out


def _row(state: ReadingState) -> dict[str, object]:
    return {
        "facility_id": state.facility_id,
        "order_id": state.order_id,
        "matched_by": state.matched_by,
        "state": state.state.value,
        "problems": json.dumps(list(state.problems)),
        "instances": state.instances,
        "acquired": state.acquired,
        "last_change": state.last_change,
        "ready_at": state.ready_at,
        "released_as": state.released_as,
    }
