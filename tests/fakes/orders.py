"""In-memory orders, their history, stations, slots and performed procedure steps
(the real store: storage.db.order_repository.SqlOrders).

The same refusals as the tables and the SQL store: one order per facility and
accession number, one station per AE title (both ``OrderError`` with the SQL
store's words), one order per slot; listings in the same order (orders by id,
stations by AE title, slots by start). Patient updates and merges reach the
archive index when the fake is given one (``FakeIndex.repatient``), as the SQL
store's reach the index's tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from tests.fakes.common import ids
from tests.fakes.index import FakeIndex

from telerad.domain.orders import (
    OPEN,
    Order,
    OrderError,
    OrderFilter,
    OrderHistoryEntry,
    PatientDemographics,
    Slot,
    Station,
)
from telerad.domain.readiness import StudyFacts


@dataclass(frozen=True)
class _Event:
    order_id: int
    entry: OrderHistoryEntry


class FakeOrders:
    def __init__(self, index: FakeIndex | None = None) -> None:
        self.index = index
        self.orders: dict[int, Order] = {}
        self.events: list[_Event] = []
        self.stations_: dict[int, Station] = {}
        self.slots_: dict[int, Slot] = {}
        self.steps: dict[str, dict[str, Any]] = {}
        self._ids = {name: ids() for name in ("order", "station", "slot", "mpps")}

    # -- orders ---------------------------------------------------------------------
    def _event(self, order_id: int, now: datetime, event: str, source: str, detail: str) -> None:
        self.events.append(_Event(order_id, OrderHistoryEntry(now, event, source, detail[:255])))

    def add(self, order: Order, now: datetime, source: str, detail: str = "") -> Order:
        if self.by_accession(order.facility_id, order.accession_number) is not None:
            raise OrderError(
                f"accession number {order.accession_number!r} already has an order at this facility"
            )
        pk = next(self._ids["order"])
        self.orders[pk] = replace(order, id=pk, created_at=now, updated_at=now)
        self._event(pk, now, "placed", source, detail)
        return self.orders[pk]

    def save(self, order: Order, now: datetime, event: str, source: str, detail: str = "") -> Order:
        if order.id is None:
            raise ValueError("save() needs a stored order")
        known = self.orders[order.id]
        self.orders[order.id] = replace(order, created_at=known.created_at, updated_at=now)
        self._event(order.id, now, event, source, detail)
        return self.orders[order.id]

    def get(self, order_id: int) -> Order | None:
        return self.orders.get(order_id)

    def by_accession(self, facility_id: int, accession_number: str) -> Order | None:
        return next(
            (
                o
                for o in self.orders.values()
                if o.facility_id == facility_id and o.accession_number == accession_number
            ),
            None,
        )

    def find(self, f: OrderFilter) -> list[Order]:
        def wanted(o: Order) -> bool:
            at = o.scheduled_at
            return (
                (f.facility_ids is None or o.facility_id in f.facility_ids)
                and f.accession_number in (None, o.accession_number)
                and f.patient_id in (None, o.patient.patient_id)
                and (f.statuses is None or o.status in f.statuses)
                and f.modality in (None, o.procedure.modality)
                and f.station_ae in (None, o.station_ae)
                and (f.scheduled_from is None or (at is not None and at >= f.scheduled_from))
                and (f.scheduled_to is None or (at is not None and at < f.scheduled_to))
                and f.study_instance_uid in (None, o.study_instance_uid)
                and (f.study_instance_uids is None or o.study_instance_uid in f.study_instance_uids)
            )

        found = [o for _, o in sorted(self.orders.items()) if wanted(o)]
        return found[f.offset : f.offset + f.limit]

    def by_requested(
        self, facility_id: int, requested_study_uid: str = "", requested_procedure_id: str = ""
    ) -> Order | None:
        if not requested_study_uid and not requested_procedure_id:
            return None
        for _, o in sorted(self.orders.items()):
            if o.facility_id != facility_id:
                continue
            if requested_study_uid and o.requested_study_uid == requested_study_uid:
                return o
            if not requested_study_uid and o.requested_procedure_id == requested_procedure_id:
                return o
        return None

    def keep_requested_study_uid(
        self, order_id: int, uid: str, now: datetime, source: str, detail: str = ""
    ) -> str:
        order = self.orders[order_id]
        if order.requested_study_uid == "":
            self.orders[order_id] = replace(order, requested_study_uid=uid, updated_at=now)
            self._event(order_id, now, "study uid assigned", source, detail)
        return self.orders[order_id].requested_study_uid

    def candidates(self, studies: Sequence[StudyFacts]) -> list[Order]:
        """Open orders of the studies' facilities naming one of their patients, UIDs or
        accession numbers (across the studies, as the SQL store's one query per chunk)."""
        facilities = {s.facility_id for s in studies}
        patients = {s.patient_id for s in studies}
        uids = {s.uid for s in studies}
        accessions = {s.accession_number for s in studies if s.accession_number}
        return [
            o
            for _, o in sorted(self.orders.items())
            if o.facility_id in facilities
            and o.status in OPEN
            and (
                o.patient.patient_id in patients
                or o.requested_study_uid in uids
                or o.study_instance_uid in uids
                or o.accession_number in accessions
            )
        ]

    def history(self, order_id: int) -> list[OrderHistoryEntry]:
        return [e.entry for e in self.events if e.order_id == order_id]

    def count(self, facility_ids: frozenset[int] | None = None) -> int:
        return sum(
            1 for o in self.orders.values() if facility_ids is None or o.facility_id in facility_ids
        )

    # -- patients (ADT) -------------------------------------------------------------
    def update_patient(
        self, facility_id: int, patient: PatientDemographics, now: datetime, source: str
    ) -> int:
        return self._repatient(facility_id, patient.patient_id, patient, now, source, "updated")

    def merge_patient(
        self,
        facility_id: int,
        prior_patient_id: str,
        patient: PatientDemographics,
        now: datetime,
        source: str,
    ) -> int:
        return self._repatient(facility_id, prior_patient_id, patient, now, source, "merged")

    def _repatient(
        self,
        facility_id: int,
        patient_id: str,
        patient: PatientDemographics,
        now: datetime,
        source: str,
        how: str,
    ) -> int:
        changed = 0
        for pk, o in sorted(self.orders.items()):
            if o.facility_id != facility_id or o.patient.patient_id != patient_id:
                continue
            old = o.patient
            new = PatientDemographics(  # an ADT that leaves a field out does not erase it
                patient.patient_id,
                patient.name or old.name,
                patient.birth_date or old.birth_date,
                patient.sex or old.sex,
            )
            self.orders[pk] = replace(o, patient=new, updated_at=now)
            self._event(pk, now, f"patient {how}", source, "")
            changed += 1
        if self.index is not None:
            self.index.repatient(facility_id, patient_id, patient)
        return changed

    # -- stations and slots ---------------------------------------------------------
    def add_station(
        self, facility_id: int, ae_title: str, modality: str, name: str = ""
    ) -> Station:
        if self.station_by_ae(ae_title) is not None:
            raise OrderError(f"station AE title {ae_title!r} is already registered")
        station = Station(next(self._ids["station"]), facility_id, ae_title, modality, name)
        self.stations_[station.id] = station
        return station

    def stations(self, facility_id: int | None = None) -> list[Station]:
        return sorted(
            (s for s in self.stations_.values() if facility_id in (None, s.facility_id)),
            key=lambda s: s.ae_title,
        )

    def station_by_ae(self, ae_title: str) -> Station | None:
        return next((s for s in self.stations_.values() if s.ae_title == ae_title), None)

    def station_by_id(self, station_id: int) -> Station | None:
        return self.stations_.get(station_id)

    def slot(self, slot_id: int) -> Slot | None:
        return self.slots_.get(slot_id)

    def add_slots(self, station_id: int, spans: Sequence[tuple[datetime, datetime]]) -> int:
        taken = {s.start for s in self.slots_.values() if s.station_id == station_id}
        added = 0
        for start, end in spans:
            if start in taken:
                continue
            pk = next(self._ids["slot"])
            self.slots_[pk] = Slot(pk, station_id, start, end, None)
            taken.add(start)
            added += 1
        return added

    def slots(self, station_id: int, start: datetime, end: datetime) -> list[Slot]:
        return sorted(
            (
                s
                for s in self.slots_.values()
                if s.station_id == station_id and start <= s.start < end
            ),
            key=lambda s: s.start,
        )

    def book(self, slot_id: int, order_id: int) -> Slot:
        # One transaction in the SQL store: a refusal leaves the earlier slot booked.
        slot = self.slots_.get(slot_id)
        if slot is None:
            raise OrderError(f"slot {slot_id} does not exist")
        if slot.order_id is not None and slot.order_id != order_id:
            raise OrderError(f"slot {slot_id} is already booked")
        self.free_slot_of(order_id)
        self.slots_[slot_id] = replace(slot, order_id=order_id)
        return self.slots_[slot_id]

    def free_slot_of(self, order_id: int) -> None:
        for pk, s in self.slots_.items():
            if s.order_id == order_id:
                self.slots_[pk] = replace(s, order_id=None)

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
        known = self.steps.get(sop_instance_uid)
        pk = known["id"] if known is not None else next(self._ids["mpps"])
        self.steps[sop_instance_uid] = {
            "id": pk,
            "sop_instance_uid": sop_instance_uid,
            "facility_id": facility_id,
            "order_id": order_id,
            "status": status,
            "study_instance_uid": study_instance_uid,
            "json": json,
            "updated_at": now,
        }

    def mpps(self, sop_instance_uid: str) -> dict[str, Any] | None:
        found = self.steps.get(sop_instance_uid)
        return dict(found) if found is not None else None

    def mpps_of_study(self, study_instance_uid: str) -> list[dict[str, Any]]:
        return [
            dict(s) for s in self.steps.values() if s["study_instance_uid"] == study_instance_uid
        ]
