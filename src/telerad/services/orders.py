"""Order use cases: place, revise, cancel, schedule, patient updates and merges, steps.

Every protocol that carries orders (HL7 v2 over MLLP, FHIR ServiceRequest, the
REST API, DICOM MPPS) ends here, so an order behaves the same whichever way it
came. Each change is written with a history entry and its audit record (Order
Record / Patient Record / Procedure Record) in one unit of work: all, or nothing. Errors
are :class:`~telerad.domain.orders.OrderError` with a reason a person can act on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from pydicom.uid import generate_uid

from telerad.domain.audit import Action, EventID, Outcome
from telerad.domain.orders import (
    Order,
    OrderError,
    OrderEvent,
    OrderFilter,
    OrderHistoryEntry,
    OrderStatus,
    PatientDemographics,
    Slot,
    Station,
)
from telerad.domain.procedures import Catalogue
from telerad.domain.readiness import StudyFacts
from telerad.services.access_audit import AccessLog, Actor
from telerad.services.audit import AuditService
from telerad.services.ports import Immediate, UnitOfWork


class OrderStore(Protocol):
    """Where orders are kept (storage.db.order_repository.SqlOrders)."""

    def add(self, order: Order, now: datetime, source: str, detail: str = "") -> Order: ...

    def save(
        self, order: Order, now: datetime, event: str, source: str, detail: str = ""
    ) -> Order: ...

    def get(self, order_id: int) -> Order | None: ...

    def by_accession(self, facility_id: int, accession_number: str) -> Order | None: ...

    def find(self, f: OrderFilter) -> list[Order]: ...

    def history(self, order_id: int) -> list[OrderHistoryEntry]: ...

    def candidates(self, studies: Sequence[StudyFacts]) -> list[Order]: ...

    def update_patient(
        self, facility_id: int, patient: PatientDemographics, now: datetime, source: str
    ) -> int: ...

    def merge_patient(
        self,
        facility_id: int,
        prior_patient_id: str,
        patient: PatientDemographics,
        now: datetime,
        source: str,
    ) -> int: ...

    def add_station(
        self, facility_id: int, ae_title: str, modality: str, name: str = ""
    ) -> Station: ...

    def stations(self, facility_id: int | None = None) -> list[Station]: ...

    def by_requested(
        self, facility_id: int, requested_study_uid: str = "", requested_procedure_id: str = ""
    ) -> Order | None: ...

    def keep_requested_study_uid(
        self, order_id: int, uid: str, now: datetime, source: str, detail: str = ""
    ) -> str: ...

    def station_by_ae(self, ae_title: str) -> Station | None: ...

    def station_by_id(self, station_id: int) -> Station | None: ...

    def add_slots(self, station_id: int, spans: Sequence[tuple[datetime, datetime]]) -> int: ...

    def slot(self, slot_id: int) -> Slot | None: ...

    def slots(self, station_id: int, start: datetime, end: datetime) -> list[Slot]: ...

    def book(self, slot_id: int, order_id: int) -> Slot: ...

    def free_slot_of(self, order_id: int) -> None: ...


@dataclass(frozen=True)
class Origin:
    """Where a change came from: the protocol, who sent it, from which address."""

    source: str  # "HL7", "FHIR", "REST", "MPPS", "reconciliation"
    actor: str  # sending application, user name, AE title
    address: str = ""
    is_user: bool = False


def utcnow() -> datetime:
    return datetime.now(UTC)


class OrderService:
    def __init__(
        self,
        store: OrderStore,
        audit: AuditService,
        catalogue: Catalogue,
        facility_name: Callable[[int], str] = str,
        clock: Callable[[], datetime] = utcnow,
        access: AccessLog | None = None,
        unit_of_work: UnitOfWork | None = None,
    ) -> None:
        self.store = store
        self.audit = audit
        self.catalogue = catalogue
        self.facility_name = facility_name
        self.clock = clock
        #: Searches and lookups go into the trail through it (repeats folded).
        self.access = access or AccessLog(audit, facility_name)
        #: Each change is written with its history and audit record, or not at all.
        self.unit: UnitOfWork = unit_of_work or Immediate()

    # -- reading ----------------------------------------------------------------------
    def get(self, order_id: int, facility_ids: frozenset[int] | None = None) -> Order | None:
        """The order, or None when it does not exist or is outside ``facility_ids``."""
        order = self.store.get(order_id)
        if order is None or (facility_ids is not None and order.facility_id not in facility_ids):
            return None
        return order

    def by_accession(self, facility_id: int, accession_number: str) -> Order | None:
        return self.store.by_accession(facility_id, accession_number)

    def find(self, f: OrderFilter) -> list[Order]:
        return self.store.find(f)

    def by_requested(
        self, facility_id: int, requested_study_uid: str = "", requested_procedure_id: str = ""
    ) -> Order | None:
        """The facility's order asked for under this Study Instance UID or Requested Procedure ID
        (how a modality's performed procedure step names it besides the accession number)."""
        return self.store.by_requested(facility_id, requested_study_uid, requested_procedure_id)

    def candidates(self, studies: Sequence[StudyFacts]) -> list[Order]:
        """Open orders these studies may answer (their facility's, naming their accession
        number, UID or patient): what reconciliation matches them against."""
        return self.store.candidates(studies)

    def history(self, order: Order) -> list[OrderHistoryEntry]:
        assert order.id is not None
        return self.store.history(order.id)

    def lookup(
        self, actor: Actor, ref: str, facility_ids: frozenset[int] | None, source: str = "REST"
    ) -> Order | None:
        """The order ``ref`` (its id, as the caller wrote it) names within ``facility_ids``;
        None, audited as a failed query, when there is none there (another facility's
        answers like none at all)."""
        order = self.get(int(ref), facility_ids) if ref.isdigit() else None
        if order is None:
            asked = f"FHIR ServiceRequest/{ref[:64]}" if source == "FHIR" else f"order {ref}"
            self.access.query(actor, asked, Outcome.MINOR_FAILURE)
        return order

    def search(
        self,
        actor: Actor,
        f: OrderFilter,
        source: str = "REST",
        terms: str = "",
        *,
        shown: int | None = None,
        one: bool = False,
    ) -> list[Order]:
        """The orders ``f`` finds (its facility scope is the caller's), audited as a Query
        naming ``terms``, the request's query string: how many were found, or (``one``:
        the caller asked for the one order with an accession number) a failed query when
        that is not one. ``shown``: at most this many are answered (a page)."""
        found = self.store.find(f)
        if one and len(found) != 1:
            self.access.query(actor, f"order by accession: {terms}", Outcome.MINOR_FAILURE)
            return found
        count = len(found) if shown is None else min(len(found), shown)
        if source == "CLI":
            asked = f"orders ({count} found) from the command line"
        elif source == "FHIR":
            asked = f"FHIR ServiceRequest ({count} found): {terms or 'all'}"
        else:
            asked = f"orders ({count} found): {terms or 'all'}"
        self.access.query(actor, asked)
        return found

    def viewed(self, order: Order, origin: Origin) -> None:
        """Record that someone read the order (REST, FHIR): Order Record, action R."""
        self._audit(order, origin, Action.READ, "read")

    # -- changes ----------------------------------------------------------------------
    def place(self, order: Order, origin: Origin) -> Order:
        """A new order; OrderError when its facility already has the accession number."""
        if order.status not in (OrderStatus.ORDERED, OrderStatus.SCHEDULED):
            raise OrderError(f"a new order cannot start as {order.status.value}")
        with self.unit:
            stored = self.store.add(order, self.clock(), origin.source, self._says(origin))
            self._audit(stored, origin, Action.CREATE, "placed")
        return stored

    def place_or_revise(self, order: Order, origin: Origin) -> Order:
        """A new order, or the existing one with the same accession revised by it.

        HL7 senders resend a new order after a timeout; the second copy must not
        fail, nor create a twin.
        """
        known = self.store.by_accession(order.facility_id, order.accession_number)
        if known is None:
            try:
                return self.place(order, origin)
            except OrderError:  # placed concurrently by a resend: revise that one
                known = self.store.by_accession(order.facility_id, order.accession_number)
                if known is None:
                    raise
        return self.revise(known, order, origin)

    def revise(self, known: Order, newer: Order, origin: Origin) -> Order:
        """Apply an update (HL7 XO, a FHIR update, REST PUT) to a stored order."""
        revised = known.revised(newer)
        if newer.status == OrderStatus.SCHEDULED and known.status == OrderStatus.ORDERED:
            revised = revised.moved(OrderEvent.SCHEDULE)
        if revised == known:
            return known
        with self.unit:
            stored = self.store.save(
                revised, self.clock(), "revised", origin.source, self._says(origin)
            )
            self._audit(stored, origin, Action.UPDATE, "revised")
        return stored

    def cancel(self, order: Order, origin: Origin, reason: str = "") -> Order:
        """Cancel an order that has not been performed (its slot is freed)."""
        cancelled = order.moved(OrderEvent.CANCEL)
        assert order.id is not None
        detail = self._says(origin) + (f": {reason}" if reason else "")
        with self.unit:
            self.store.free_slot_of(order.id)
            stored = self.store.save(cancelled, self.clock(), "cancelled", origin.source, detail)
            self._audit(stored, origin, Action.DELETE, "cancelled")
        return stored

    def schedule(self, order: Order, slot_id: int, station: Station, origin: Origin) -> Order:
        """Book ``order`` into a free slot of ``station`` (same facility and modality)."""
        if station.facility_id != order.facility_id:
            raise OrderError(f"station {station.ae_title} belongs to another facility")
        if order.procedure.modality and station.modality != order.procedure.modality:
            raise OrderError(
                f"station {station.ae_title} is {station.modality}, "
                f"the procedure needs {order.procedure.modality}"
            )
        scheduled = order.moved(OrderEvent.SCHEDULE)  # refuses closed orders first
        assert order.id is not None
        with self.unit:
            slot = self.store.book(slot_id, order.id)
            if slot.station_id != station.id:
                self.store.free_slot_of(order.id)
                raise OrderError(f"slot {slot_id} is not on station {station.ae_title}")
            scheduled = replace(scheduled, scheduled_at=slot.start, station_ae=station.ae_title)
            detail = f"{station.ae_title} at {slot.start.isoformat()}"
            stored = self.store.save(scheduled, self.clock(), "scheduled", origin.source, detail)
            self._audit(stored, origin, Action.UPDATE, f"scheduled on {station.ae_title}")
        return stored

    def step(self, order: Order, event: OrderEvent, origin: Origin, mpps_status: str = "") -> Order:
        """The procedure started, completed, was discontinued or became ready to read."""
        moved = order.moved(event, mpps_status=mpps_status or order.mpps_status)
        if moved == order:
            return order
        with self.unit:
            stored = self.store.save(
                moved, self.clock(), event.value, origin.source, self._says(origin)
            )
            self.audit.record(
                EventID.PROCEDURE_RECORD,
                origin.actor,
                actor_is_user=origin.is_user,
                action=Action.UPDATE,
                source_address=origin.address,
                patient_id=order.patient.patient_id,
                study_uid=order.study_instance_uid,
                facility=self.facility_name(order.facility_id),
                detail=f"order {order.accession_number} {event.value} ({origin.source})",
            )
        return stored

    def with_requested_study_uid(self, order: Order, origin: Origin) -> Order:
        """The order with the Study Instance UID its modality is asked to use.

        Made on first need (the modality worklist offers it) and kept, so the
        images the modality makes carry the UID the order knows.
        """
        if order.requested_study_uid:
            return order
        assert order.id is not None
        uid = self.store.keep_requested_study_uid(
            order.id, generate_uid("2.25."), self.clock(), origin.source, self._says(origin)
        )
        return self.store.get(order.id) or replace(order, requested_study_uid=uid)

    def match(
        self, order: Order, study_instance_uid: str, matched_by: str, origin: Origin
    ) -> Order:
        """Record that ``study_instance_uid`` is the study this order asked for."""
        if order.study_instance_uid == study_instance_uid:
            return order
        if order.study_instance_uid:
            raise OrderError(f"order {order.accession_number} is already matched to another study")
        matched = replace(order, study_instance_uid=study_instance_uid)
        with self.unit:
            stored = self.store.save(
                matched, self.clock(), "matched", origin.source, f"study matched by {matched_by}"
            )
            self._audit(stored, origin, Action.UPDATE, f"matched to its study by {matched_by}")
        return stored

    def update_patient(self, facility_id: int, patient: PatientDemographics, origin: Origin) -> int:
        """ADT A01/A04/A08: the patient's details on their orders."""
        with self.unit:
            changed = self.store.update_patient(facility_id, patient, self.clock(), origin.source)
            what = f"updated {changed} order(s)"
            self._audit_patient(facility_id, patient.patient_id, origin, what)
        return changed

    def merge_patient(
        self,
        facility_id: int,
        prior_patient_ids: Sequence[str],
        patient: PatientDemographics,
        origin: Origin,
    ) -> int:
        """ADT A40: the orders of each prior identifier move to ``patient`` (all of them,
        or none)."""
        if patient.patient_id in prior_patient_ids:
            raise OrderError("a patient cannot be merged into itself")
        moved = 0
        with self.unit:
            for prior in prior_patient_ids:
                moved += self.store.merge_patient(
                    facility_id, prior, patient, self.clock(), origin.source
                )
            self._audit_patient(
                facility_id,
                patient.patient_id,
                origin,
                f"merged {len(prior_patient_ids)} identifier(s), {moved} order(s)",
            )
        return moved

    # -- audit ------------------------------------------------------------------------
    @staticmethod
    def _says(origin: Origin) -> str:
        return f"{origin.source} from {origin.actor}" if origin.actor else origin.source

    def _audit(self, order: Order, origin: Origin, action: Action, what: str) -> None:
        self.audit.record(
            EventID.ORDER_RECORD,
            origin.actor,
            actor_is_user=origin.is_user,
            action=action,
            source_address=origin.address,
            patient_id=order.patient.patient_id,
            study_uid=order.study_instance_uid,
            facility=self.facility_name(order.facility_id),
            detail=f"order {order.accession_number} {what} ({origin.source})",
        )

    def _audit_patient(self, facility_id: int, patient_id: str, origin: Origin, what: str) -> None:
        self.audit.record(
            EventID.PATIENT_RECORD,
            origin.actor,
            actor_is_user=origin.is_user,
            action=Action.UPDATE,
            source_address=origin.address,
            patient_id=patient_id,
            facility=self.facility_name(facility_id),
            detail=f"patient {what} ({origin.source})",
        )
