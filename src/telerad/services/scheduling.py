"""Scheduling: a facility's modalities (stations), their procedure slots, appointments.

A station is a modality a facility books procedures on, named by its AE title
(the Scheduled Station AE Title the modality worklist offers). Slots are opened
on a station for a day or a range at a fixed length; booking an order into a
slot is :meth:`OrderService.schedule`, which checks the facility and modality and
refuses a slot that is already taken (the repository books with one conditional
UPDATE, so two bookings of one slot cannot both win).

Every lookup takes the caller's facilities: a station or slot of another
facility is answered exactly like one that does not exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from telerad.domain.audit import EventID
from telerad.domain.orders import Order, OrderError, Slot, Station
from telerad.services.orders import OrderService, Origin
from telerad.services.people import AdminError, check_ae_title

MIN_SLOT_MINUTES = 5
MAX_SLOT_MINUTES = 24 * 60
#: The longest span one request may open slots over.
MAX_SLOT_SPAN = timedelta(days=31)
_MODALITY = re.compile(r"^[A-Z0-9]{2,16}$")


def slot_spans(start: datetime, end: datetime, minutes: int) -> list[tuple[datetime, datetime]]:
    """Back-to-back slots of ``minutes`` from ``start``; the last one ends by ``end``."""
    if not MIN_SLOT_MINUTES <= minutes <= MAX_SLOT_MINUTES:
        raise OrderError(
            f"a slot lasts {MIN_SLOT_MINUTES} to {MAX_SLOT_MINUTES} minutes, got {minutes}"
        )
    if start.tzinfo is None or end.tzinfo is None:
        raise OrderError("slot times need a time zone")
    if end <= start:
        raise OrderError("the slots' end must come after their start")
    if end - start > MAX_SLOT_SPAN:
        raise OrderError(f"slots are opened for at most {MAX_SLOT_SPAN.days} days at a time")
    step = timedelta(minutes=minutes)
    spans: list[tuple[datetime, datetime]] = []
    at = start
    while at + step <= end:
        spans.append((at, at + step))
        at += step
    return spans


def zone(name: str) -> ZoneInfo:
    """An IANA time zone ("Europe/Berlin", "UTC"), or OrderError."""
    try:
        return ZoneInfo(name.strip() or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise OrderError(f"unknown time zone {name!r} (use an IANA name: Europe/Berlin)") from None


def working_hours(
    first: date, last: date, start: time, end: time, tz: ZoneInfo
) -> list[tuple[datetime, datetime]]:
    """(start, end) in UTC of each day from ``first`` to ``last``, in the zone's local time."""
    if last < first:
        raise OrderError("the last day comes before the first")
    if end <= start:
        raise OrderError("the working day must end after it starts")
    if last - first >= MAX_SLOT_SPAN:
        raise OrderError(f"slots are opened for at most {MAX_SLOT_SPAN.days} days at a time")
    days = []
    for n in range((last - first).days + 1):
        day = first + timedelta(days=n)
        days.append(
            (
                datetime.combine(day, start, tz).astimezone(UTC),
                datetime.combine(day, end, tz).astimezone(UTC),
            )
        )
    return days


@dataclass(frozen=True)
class Opened:
    station: Station
    added: int
    requested: int  # slots that exist already are kept, not doubled


class Scheduling:
    def __init__(self, orders: OrderService) -> None:
        self.orders = orders
        self.store = orders.store

    # -- stations ---------------------------------------------------------------------
    def add_station(
        self, facility_id: int, ae_title: str, modality: str, name: str, origin: Origin
    ) -> Station:
        try:
            ae = check_ae_title(ae_title)
        except AdminError as exc:
            raise OrderError(str(exc)) from None
        modality = modality.strip().upper()
        if not _MODALITY.match(modality):
            raise OrderError(f"'{modality}' is not a DICOM modality (CT, MR, US, DX…)")
        if len(name) > 64:
            raise OrderError("a station name has at most 64 characters")
        try:
            station = self.store.add_station(facility_id, ae, modality, name.strip())
        except OrderError as exc:  # the only refusal left: the AE title is taken
            raise StationTaken(str(exc)) from None
        self.orders.audit.record(
            EventID.SECURITY_ALERT,  # a configuration change, like a node or facility
            origin.actor,
            actor_is_user=origin.is_user,
            source_address=origin.address,
            facility=self.orders.facility_name(facility_id),
            detail=f"station added: {ae} ({modality}) ({origin.source})",
        )
        return station

    def stations(self, facility_ids: frozenset[int] | None) -> list[Station]:
        """The stations of ``facility_ids`` (None: every facility), by AE title."""
        return [
            s
            for s in self.store.stations()
            if facility_ids is None or s.facility_id in facility_ids
        ]

    def station(self, ae_title: str, facility_ids: frozenset[int] | None) -> Station | None:
        """The station, or None when it does not exist or is outside ``facility_ids``."""
        found = self.store.station_by_ae(ae_title.strip())
        if found is None or (facility_ids is not None and found.facility_id not in facility_ids):
            return None
        return found

    # -- slots ------------------------------------------------------------------------
    def open_slots(
        self, station: Station, periods: list[tuple[datetime, datetime]], minutes: int
    ) -> Opened:
        """Open slots of ``minutes`` over each (start, end) period (a day's hours…)."""
        spans = [span for start, end in periods for span in slot_spans(start, end, minutes)]
        if not spans:
            raise OrderError(f"no {minutes}-minute slot fits between the start and the end")
        if len(spans) > 10_000:
            raise OrderError("at most 10,000 slots may be opened at once")
        return Opened(station, self.store.add_slots(station.id, spans), len(spans))

    def slots(self, station: Station, start: datetime, end: datetime) -> list[Slot]:
        return self.store.slots(station.id, start, end)

    # -- appointments -----------------------------------------------------------------
    def book(
        self, order: Order, slot_id: int, origin: Origin, facility_ids: frozenset[int] | None
    ) -> Order:
        """Book ``order`` into slot ``slot_id``; a slot the caller cannot see does not exist."""
        slot = self.store.slot(slot_id)
        station = self.store.station_by_id(slot.station_id) if slot is not None else None
        if (
            station is None
            or station.facility_id != order.facility_id
            or (facility_ids is not None and station.facility_id not in facility_ids)
        ):
            raise NoSuchSlot(f"slot {slot_id} does not exist")
        return self.orders.schedule(order, slot_id, station, origin)


class NoSuchSlot(OrderError):
    """The slot does not exist, or belongs to a station the order cannot use."""


class StationTaken(OrderError):
    """The AE title already names a station (AE titles are unique across the network)."""
