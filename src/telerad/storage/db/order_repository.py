"""Orders, their history, stations and slots, performed procedure steps (SQLAlchemy Core)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from telerad.domain.orders import (
    OPEN,
    Order,
    OrderError,
    OrderFilter,
    OrderHistoryEntry,
    OrderStatus,
    PatientDemographics,
    Procedure,
    Slot,
    Station,
)
from telerad.domain.query import normalise_person_name
from telerad.domain.readiness import StudyFacts as StudyKeys
from telerad.storage.db import tables as t
from telerad.storage.db.times import utc
from telerad.storage.db.unit_of_work import reading, writing
from telerad.workflow.model import Priority

_O = t.imaging_order


def _order_from(row: Any) -> Order:
    return Order(
        id=row.id,
        facility_id=row.facility_id,
        accession_number=row.accession_number,
        patient=PatientDemographics(row.patient_id, row.patient_name, row.birth_date, row.sex),
        procedure=Procedure(
            code=row.procedure_code,
            description=row.procedure_description,
            coding_scheme=row.coding_scheme,
            modality=row.modality,
            body_part=row.body_part,
            rvu=row.rvu,
            subspecialty=row.subspecialty,
        ),
        priority=Priority(row.priority),
        status=OrderStatus(row.status),
        placer_order_number=row.placer_order_number,
        filler_order_number=row.filler_order_number,
        reason=row.reason,
        ordering_physician=row.ordering_physician,
        scheduled_at=utc(row.scheduled_at),
        station_ae=row.station_ae,
        requested_procedure_id=row.requested_procedure_id,
        requested_study_uid=row.requested_study_uid,
        study_instance_uid=row.study_instance_uid,
        mpps_status=row.mpps_status,
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at),
    )


def _columns(order: Order) -> dict[str, object]:
    p, proc = order.patient, order.procedure
    return {
        "facility_id": order.facility_id,
        "accession_number": order.accession_number,
        "patient_id": p.patient_id,
        "patient_name": p.name,
        "birth_date": p.birth_date,
        "sex": p.sex,
        "procedure_code": proc.code,
        "procedure_description": proc.description,
        "coding_scheme": proc.coding_scheme,
        "modality": proc.modality,
        "body_part": proc.body_part,
        "rvu": proc.rvu,
        "subspecialty": proc.subspecialty,
        "priority": order.priority.value,
        "status": order.status.value,
        "placer_order_number": order.placer_order_number,
        "filler_order_number": order.filler_order_number,
        "reason": order.reason,
        "ordering_physician": order.ordering_physician,
        "scheduled_at": order.scheduled_at,
        "station_ae": order.station_ae,
        "requested_procedure_id": order.requested_procedure_id,
        "requested_study_uid": order.requested_study_uid,
        "study_instance_uid": order.study_instance_uid,
        "mpps_status": order.mpps_status,
    }


class SqlOrders:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- orders ---------------------------------------------------------------------
    def add(self, order: Order, now: datetime, source: str, detail: str = "") -> Order:
        """Store a new order; OrderError when its facility already has the accession."""
        try:
            with writing(self.engine) as conn:
                pk = conn.execute(
                    insert(_O)
                    .values(**_columns(order), created_at=now, updated_at=now)
                    .returning(_O.c.id)
                ).scalar_one()
                self._event(conn, pk, now, "placed", source, detail)
        except IntegrityError:
            raise OrderError(
                f"accession number {order.accession_number!r} already has an order at this facility"
            ) from None
        stored = self.get(pk)
        assert stored is not None
        return stored

    def save(self, order: Order, now: datetime, event: str, source: str, detail: str = "") -> Order:
        """Write the order's new state and a history entry, in one transaction."""
        if order.id is None:
            raise ValueError("save() needs a stored order")
        with writing(self.engine) as conn:
            conn.execute(
                update(_O).where(_O.c.id == order.id).values(**_columns(order), updated_at=now)
            )
            self._event(conn, order.id, now, event, source, detail)
        stored = self.get(order.id)
        assert stored is not None
        return stored

    @staticmethod
    def _event(
        conn: Connection, order_id: int, now: datetime, event: str, source: str, detail: str
    ) -> None:
        conn.execute(
            insert(t.order_event).values(
                order_id=order_id, time=now, event=event, source=source, detail=detail[:255]
            )
        )

    def get(self, order_id: int) -> Order | None:
        with reading(self.engine) as conn:
            row = conn.execute(select(_O).where(_O.c.id == order_id)).first()
        return _order_from(row) if row else None

    def by_accession(self, facility_id: int, accession_number: str) -> Order | None:
        with reading(self.engine) as conn:
            row = conn.execute(
                select(_O).where(
                    _O.c.facility_id == facility_id, _O.c.accession_number == accession_number
                )
            ).first()
        return _order_from(row) if row else None

    def find(self, f: OrderFilter) -> list[Order]:
        query = select(_O)
        if f.facility_ids is not None:
            query = query.where(_O.c.facility_id.in_(sorted(f.facility_ids)))
        if f.accession_number is not None:
            query = query.where(_O.c.accession_number == f.accession_number)
        if f.patient_id is not None:
            query = query.where(_O.c.patient_id == f.patient_id)
        if f.statuses is not None:
            query = query.where(_O.c.status.in_(sorted(s.value for s in f.statuses)))
        if f.modality is not None:
            query = query.where(_O.c.modality == f.modality)
        if f.station_ae is not None:
            query = query.where(_O.c.station_ae == f.station_ae)
        if f.scheduled_from is not None:
            query = query.where(_O.c.scheduled_at >= f.scheduled_from)
        if f.scheduled_to is not None:
            query = query.where(_O.c.scheduled_at < f.scheduled_to)
        if f.study_instance_uid is not None:
            query = query.where(_O.c.study_instance_uid == f.study_instance_uid)
        if f.study_instance_uids is not None:
            query = query.where(_O.c.study_instance_uid.in_(sorted(set(f.study_instance_uids))))
        query = query.order_by(_O.c.id).limit(f.limit).offset(f.offset)
        with reading(self.engine) as conn:
            return [_order_from(r) for r in conn.execute(query)]

    def by_requested(
        self, facility_id: int, requested_study_uid: str = "", requested_procedure_id: str = ""
    ) -> Order | None:
        """The facility's order asked for under this Study UID or Requested Procedure ID."""
        if requested_study_uid:
            where = _O.c.requested_study_uid == requested_study_uid
        elif requested_procedure_id:
            where = _O.c.requested_procedure_id == requested_procedure_id
        else:
            return None
        with reading(self.engine) as conn:
            row = conn.execute(
                select(_O).where(_O.c.facility_id == facility_id, where).order_by(_O.c.id)
            ).first()
        return _order_from(row) if row else None

    def keep_requested_study_uid(
        self, order_id: int, uid: str, now: datetime, source: str, detail: str = ""
    ) -> str:
        """Give the order ``uid`` unless it already has one; the UID it keeps.

        One conditional update: two worklist queries racing for a new order
        agree on the first UID written.
        """
        with writing(self.engine) as conn:
            done = conn.execute(
                update(_O)
                .where(_O.c.id == order_id, _O.c.requested_study_uid == "")
                .values(requested_study_uid=uid, updated_at=now)
            ).rowcount
            if done:
                self._event(conn, order_id, now, "study uid assigned", source, detail)
            kept = conn.execute(
                select(_O.c.requested_study_uid).where(_O.c.id == order_id)
            ).scalar_one()
        return str(kept)

    def candidates(self, studies: Sequence[StudyKeys]) -> list[Order]:
        """Open orders some of ``studies`` may answer: same facility, and the study's
        accession number, UID or patient. One query per few hundred studies."""
        found: dict[int, Order] = {}
        for start in range(0, len(studies), 300):
            chunk = studies[start : start + 300]
            facilities = sorted({s.facility_id for s in chunk})
            patients = sorted({s.patient_id for s in chunk})
            uids = sorted({s.uid for s in chunk})
            accessions = sorted({s.accession_number for s in chunk if s.accession_number})
            keys = [
                _O.c.patient_id.in_(patients),
                _O.c.requested_study_uid.in_(uids),
                _O.c.study_instance_uid.in_(uids),
            ]
            if accessions:
                keys.append(_O.c.accession_number.in_(accessions))
            query = select(_O).where(
                _O.c.facility_id.in_(facilities),
                _O.c.status.in_(sorted(s.value for s in OPEN)),
                or_(*keys),
            )
            with reading(self.engine) as conn:
                for row in conn.execute(query):
                    found[row.id] = _order_from(row)
        return [found[k] for k in sorted(found)]

    def history(self, order_id: int) -> list[OrderHistoryEntry]:
        e = t.order_event
        with reading(self.engine) as conn:
            rows = conn.execute(
                select(e.c.time, e.c.event, e.c.source, e.c.detail)
                .where(e.c.order_id == order_id)
                .order_by(e.c.id)
            ).all()
        return [OrderHistoryEntry(utc(r.time), r.event, r.source, r.detail) for r in rows]

    # -- patients (ADT) -------------------------------------------------------------
    def update_patient(
        self, facility_id: int, patient: PatientDemographics, now: datetime, source: str
    ) -> int:
        """New demographics on the patient's open orders; how many changed."""
        return self._repatient(
            facility_id, patient.patient_id, patient, now, source, "patient updated"
        )

    def merge_patient(
        self,
        facility_id: int,
        prior_patient_id: str,
        patient: PatientDemographics,
        now: datetime,
        source: str,
    ) -> int:
        """Every order of ``prior_patient_id`` now belongs to ``patient`` (ADT A40)."""
        return self._repatient(
            facility_id, prior_patient_id, patient, now, source, "patient merged"
        )

    def _repatient(
        self,
        facility_id: int,
        patient_id: str,
        patient: PatientDemographics,
        now: datetime,
        source: str,
        event: str,
    ) -> int:
        where = and_(_O.c.facility_id == facility_id, _O.c.patient_id == patient_id)
        values: dict[str, object] = {"patient_id": patient.patient_id, "updated_at": now}
        for column, value in (
            ("patient_name", patient.name),
            ("birth_date", patient.birth_date),
            ("sex", patient.sex),
        ):
            if value:  # an ADT that leaves a field out does not erase it
                values[column] = value
        with writing(self.engine) as conn:
            ids = conn.execute(select(_O.c.id).where(where)).scalars().all()
            if ids:
                conn.execute(update(_O).where(_O.c.id.in_(ids)).values(**values))
                for order_id in ids:
                    self._event(conn, order_id, now, event, source, "")
            _repatient_studies(conn, facility_id, patient_id, patient)
        return len(ids)

    # -- stations and slots ---------------------------------------------------------
    def add_station(
        self, facility_id: int, ae_title: str, modality: str, name: str = ""
    ) -> Station:
        try:
            with writing(self.engine) as conn:
                pk = conn.execute(
                    insert(t.station)
                    .values(
                        facility_id=facility_id, ae_title=ae_title, modality=modality, name=name
                    )
                    .returning(t.station.c.id)
                ).scalar_one()
        except IntegrityError:
            raise OrderError(f"station AE title {ae_title!r} is already registered") from None
        return Station(pk, facility_id, ae_title, modality, name)

    def stations(self, facility_id: int | None = None) -> list[Station]:
        query = select(t.station).order_by(t.station.c.ae_title)
        if facility_id is not None:
            query = query.where(t.station.c.facility_id == facility_id)
        with reading(self.engine) as conn:
            return [
                Station(r.id, r.facility_id, r.ae_title, r.modality, r.name)
                for r in conn.execute(query)
            ]

    def station_by_ae(self, ae_title: str) -> Station | None:
        with reading(self.engine) as conn:
            r = conn.execute(select(t.station).where(t.station.c.ae_title == ae_title)).first()
        return Station(r.id, r.facility_id, r.ae_title, r.modality, r.name) if r else None

    def station_by_id(self, station_id: int) -> Station | None:
        with reading(self.engine) as conn:
            r = conn.execute(select(t.station).where(t.station.c.id == station_id)).first()
        return Station(r.id, r.facility_id, r.ae_title, r.modality, r.name) if r else None

    def slot(self, slot_id: int) -> Slot | None:
        with reading(self.engine) as conn:
            r = conn.execute(select(t.slot).where(t.slot.c.id == slot_id)).first()
        if r is None:
            return None
        return Slot(r.id, r.station_id, utc(r.start), utc(r.end), r.order_id)

    def add_slots(self, station_id: int, spans: Sequence[tuple[datetime, datetime]]) -> int:
        """Open slots (start, end) on a station; ones that exist already are kept."""
        added = 0
        with writing(self.engine) as conn:
            taken = set(
                utc(s)
                for s in conn.execute(
                    select(t.slot.c.start).where(t.slot.c.station_id == station_id)
                ).scalars()
            )
            for start, end in spans:
                if start in taken:
                    continue
                conn.execute(insert(t.slot).values(station_id=station_id, start=start, end=end))
                added += 1
        return added

    def slots(self, station_id: int, start: datetime, end: datetime) -> list[Slot]:
        s = t.slot
        with reading(self.engine) as conn:
            rows = conn.execute(
                select(s)
                .where(s.c.station_id == station_id, s.c.start >= start, s.c.start < end)
                .order_by(s.c.start)
            ).all()
        return [Slot(r.id, r.station_id, utc(r.start), utc(r.end), r.order_id) for r in rows]

    def book(self, slot_id: int, order_id: int) -> Slot:
        """Book a free slot for an order (its earlier slot, if any, is freed)."""
        s = t.slot
        with writing(self.engine) as conn:
            conn.execute(update(s).where(s.c.order_id == order_id).values(order_id=None))
            done = conn.execute(
                update(s).where(s.c.id == slot_id, s.c.order_id.is_(None)).values(order_id=order_id)
            ).rowcount
            row = conn.execute(select(s).where(s.c.id == slot_id)).first()
            if row is None:
                raise OrderError(f"slot {slot_id} does not exist")
            if not done:
                raise OrderError(f"slot {slot_id} is already booked")
        return Slot(
            row.id,
            row.station_id,
            utc(row.start),
            utc(row.end),
            row.order_id,
        )

    def free_slot_of(self, order_id: int) -> None:
        with writing(self.engine) as conn:
            conn.execute(update(t.slot).where(t.slot.c.order_id == order_id).values(order_id=None))

    # -- performed procedure steps --------------------------------------------------
    def put_mpps(
        self,
        sop_instance_uid: str,
        facility_id: int,
        order_id: int | None,
        status: str,
        study_instance_uid: str,
        json: str,
        now: datetime,
    ) -> None:
        values = {
            "facility_id": facility_id,
            "order_id": order_id,
            "status": status,
            "study_instance_uid": study_instance_uid,
            "json": json,
            "updated_at": now,
        }
        with writing(self.engine) as conn:
            done = conn.execute(
                update(t.mpps).where(t.mpps.c.sop_instance_uid == sop_instance_uid).values(**values)
            ).rowcount
            if not done:
                conn.execute(insert(t.mpps).values(sop_instance_uid=sop_instance_uid, **values))

    def mpps(self, sop_instance_uid: str) -> dict[str, Any] | None:
        with reading(self.engine) as conn:
            row = conn.execute(
                select(t.mpps).where(t.mpps.c.sop_instance_uid == sop_instance_uid)
            ).first()
        return dict(row._mapping) if row else None

    def mpps_of_study(self, study_instance_uid: str) -> list[dict[str, Any]]:
        with reading(self.engine) as conn:
            rows = conn.execute(
                select(t.mpps).where(t.mpps.c.study_instance_uid == study_instance_uid)
            ).all()
        return [dict(r._mapping) for r in rows]

    def count(self, facility_ids: frozenset[int] | None = None) -> int:
        query = select(func.count()).select_from(_O)
        if facility_ids is not None:
            query = query.where(_O.c.facility_id.in_(sorted(facility_ids)))
        with reading(self.engine) as conn:
            return int(conn.execute(query).scalar_one())


def _repatient_studies(
    conn: Connection, facility_id: int, patient_id: str, patient: PatientDemographics
) -> None:
    """The archive's index follows: new details on the patient, merged studies moved.

    The stored objects keep the identifiers they arrived with; searches answer with
    the surviving patient. The prior patient's row stays (empty), because instances
    may still arrive under its identifier.
    """
    p = t.patient

    def pk_of(pid: str) -> int | None:
        found = conn.execute(
            select(p.c.id).where(p.c.facility_id == facility_id, p.c.patient_id == pid)
        ).scalar()
        return int(found) if found is not None else None

    details: dict[str, object] = {}
    if patient.name:
        details.update(
            patient_name=patient.name, patient_name_norm=normalise_person_name(patient.name)
        )
    if patient.birth_date:
        details["birth_date"] = patient.birth_date
    if patient.sex:
        details["sex"] = patient.sex
    prior = pk_of(patient_id)
    if prior is None:
        return
    if patient_id == patient.patient_id:  # an update
        if details:
            conn.execute(update(p).where(p.c.id == prior).values(**details))
        return
    surviving = pk_of(patient.patient_id)
    if surviving is None:
        surviving = conn.execute(
            insert(p)
            .values(
                facility_id=facility_id,
                patient_id=patient.patient_id,
                patient_name="",
                patient_name_norm="",
                birth_date="",
                sex="",
                num_studies=0,
            )
            .returning(p.c.id)
        ).scalar_one()
    if details:
        conn.execute(update(p).where(p.c.id == surviving).values(**details))
    moved = conn.execute(
        update(t.study).where(t.study.c.patient_pk == prior).values(patient_pk=surviving)
    ).rowcount
    conn.execute(update(p).where(p.c.id == prior).values(num_studies=0))
    conn.execute(update(p).where(p.c.id == surviving).values(num_studies=p.c.num_studies + moved))
