"""Orders, stations and slots over REST: ``/api/orders`` and ``/api/stations``.

Thin: bodies are checked by the schemas (422 with the field), the order service
does the work and the auditing, and :class:`OrderError` becomes 409 (the order's
state or another order refuses it) or 422 (the request names something that does
not exist or breaks a rule). Everything is scoped to the caller's facilities: an
order, station or slot of another facility answers exactly like one that does not
exist. Reading needs ``orders:read``; writing ``orders:write`` (facility staff of
that facility, service accounts such as a RIS, network admins).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from telerad.domain.identity import Permission, Principal
from telerad.domain.orders import (
    Order,
    OrderError,
    OrderFilter,
    OrderStatus,
    PatientDemographics,
    Station,
    triage_priority,
)
from telerad.services.access_audit import Actor
from telerad.services.orders import Origin
from telerad.services.platform import Platform
from telerad.services.scheduling import NoSuchSlot, Scheduling, StationTaken, working_hours, zone
from telerad.web.auth import authorise, client_address
from telerad.web.schemas.orders import (
    CancelIn,
    HistoryOut,
    OrderDetail,
    OrderIn,
    OrderOut,
    ScheduleIn,
    SlotOut,
    SlotsIn,
    SlotsOpened,
    StationIn,
    StationOut,
)

MAX_LIMIT = 1000
_NOT_FOUND = "no such order"


@contextmanager
def refused(status: int = 409) -> Iterator[None]:
    """OrderError → ``status`` with its reason; NoSuchSlot is always 422."""
    try:
        yield
    except NoSuchSlot as exc:
        raise HTTPException(422, str(exc)) from exc
    except StationTaken as exc:
        raise HTTPException(409, str(exc)) from exc
    except OrderError as exc:
        raise HTTPException(status, str(exc)) from exc


def origin_of(request: Request, who: Principal, source: str = "REST") -> Origin:
    return Origin(source, who.username, client_address(request), who.is_user)


def facility_for_write(platform: Platform, who: Principal, name: str | None) -> int:
    """The facility a new order or station belongs to: named, or the caller's only one."""
    if name:
        found = platform.index.facility_by_name(name.strip())
        if found is None or not who.sees(found.id):  # another's answers like none at all
            raise HTTPException(422, f"no facility named {name!r}")
        return found.id
    if who.facility_ids is not None and len(who.facility_ids) == 1:
        return next(iter(who.facility_ids))
    raise HTTPException(422, "name the facility ('facility'): this account serves several")


def order_from(platform: Platform, body: OrderIn, facility_id: int) -> Order:
    """The domain order a body describes (procedure from the catalogue, triaged tier)."""
    proc = body.procedure
    with refused(422):
        return Order(
            facility_id=facility_id,
            accession_number=body.accession_number.strip(),
            patient=PatientDemographics(
                body.patient.patient_id.strip(),
                body.patient.name,
                body.patient.birth_date,
                body.patient.sex,
            ),
            procedure=platform.orders.catalogue.resolve(
                proc.code, proc.description, proc.coding_scheme, proc.modality
            ),
            priority=triage_priority(body.priority, body.reason),
            reason=body.reason,
            ordering_physician=body.ordering_physician,
            placer_order_number=body.placer_order_number,
            filler_order_number=body.filler_order_number,
            requested_procedure_id=body.requested_procedure_id,
            requested_study_uid=body.requested_study_uid,
            scheduled_at=body.scheduled_at,
        )


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def router(platform: Platform) -> APIRouter:  # noqa: C901 - one closure per route
    r = APIRouter(prefix="/api", tags=["orders"])
    orders = platform.orders
    scheduling = Scheduling(orders)

    def out(order: Order) -> OrderOut:
        return OrderOut.of(order, orders.facility_name(order.facility_id))

    def visible(request: Request, who: Principal, order_id: int) -> Order:
        actor = Actor.of(who, client_address(request))
        order = orders.lookup(actor, str(order_id), who.facility_ids)
        if order is None:
            raise HTTPException(404, _NOT_FOUND)
        return order

    # -- orders -----------------------------------------------------------------------
    @r.get(
        "/orders",
        response_model=OrderOut | list[OrderOut],
        responses={404: {"description": "accession given: no such order"}},
    )
    def list_orders(
        request: Request,
        accession: Annotated[str | None, Query(max_length=16)] = None,
        patient_id: Annotated[str | None, Query(max_length=64)] = None,
        status: Annotated[list[OrderStatus] | None, Query(description="repeatable")] = None,
        modality: Annotated[str | None, Query(max_length=16)] = None,
        station: Annotated[str | None, Query(max_length=16, description="AE title")] = None,
        facility: Annotated[str | None, Query(max_length=128)] = None,
        scheduled_from: Annotated[datetime | None, Query(description="ISO date or time")] = None,
        scheduled_to: Annotated[datetime | None, Query(description="exclusive")] = None,
        study_instance_uid: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> OrderOut | list[OrderOut]:
        """Orders of the caller's facilities, oldest first (an array).

        With ``accession`` it is a lookup: the one order with that accession number
        (an object; 404 when there is none, 409 when the caller sees it at several
        facilities and ``facility`` does not say which).
        """
        who = authorise(request, Permission.ORDERS_READ)
        facilities = who.facility_ids
        if facility is not None:
            found = platform.index.facility_by_name(facility)
            wanted = frozenset({found.id}) if found is not None else frozenset()
            facilities = wanted if facilities is None else facilities & wanted
        found_orders = orders.search(
            Actor.of(who, client_address(request)),
            OrderFilter(
                facility_ids=facilities,
                accession_number=accession,
                patient_id=patient_id,
                statuses=frozenset(status) if status else None,
                modality=modality.upper() if modality else None,
                station_ae=station,
                scheduled_from=_utc(scheduled_from),
                scheduled_to=_utc(scheduled_to),
                study_instance_uid=study_instance_uid,
                limit=limit,
                offset=offset,
            ),
            "REST",
            request.url.query,
            one=accession is not None,
        )
        if accession is not None and len(found_orders) != 1:
            if not found_orders:
                raise HTTPException(404, _NOT_FOUND)
            raise HTTPException(
                409,
                f"accession number {accession} is at {len(found_orders)} facilities: "
                "say which with facility=NAME",
            )
        if accession is not None:
            return out(found_orders[0])
        return [out(o) for o in found_orders]

    @r.get("/orders/{order_id}", response_model=OrderDetail)
    def get_order(request: Request, order_id: int) -> OrderDetail:
        """One order with its history (placed, revised, scheduled, started…)."""
        who = authorise(request, Permission.ORDERS_READ)
        order = visible(request, who, order_id)
        orders.viewed(order, origin_of(request, who))
        history = [HistoryOut.of(e) for e in orders.history(order)]
        return OrderDetail(**out(order).model_dump(), history=history)

    @r.post("/orders", status_code=201, response_model=OrderOut)
    def create_order(request: Request, body: OrderIn) -> JSONResponse:
        """Place an order: 409 when the facility already has the accession number."""
        who = authorise(request, Permission.ORDERS_WRITE)
        order = order_from(platform, body, facility_for_write(platform, who, body.facility))
        with refused(409):
            stored = orders.place(order, origin_of(request, who))
        assert stored.id is not None
        return JSONResponse(
            out(stored).model_dump(mode="json"),
            status_code=201,
            headers={"Location": f"/api/orders/{stored.id}"},
        )

    @r.put("/orders/{order_id}", response_model=OrderOut)
    def revise_order(request: Request, order_id: int, body: OrderIn) -> OrderOut:
        """A new version of the order (same facility and accession); 409 once closed."""
        who = authorise(request, Permission.ORDERS_WRITE)
        known = visible(request, who, order_id)
        if body.accession_number.strip() != known.accession_number:
            raise HTTPException(422, "an update cannot change the accession number")
        if body.facility and facility_for_write(platform, who, body.facility) != known.facility_id:
            raise HTTPException(422, "an update cannot move an order to another facility")
        newer = order_from(platform, body, known.facility_id)
        with refused(409):
            return out(orders.revise(known, newer, origin_of(request, who)))

    @r.post("/orders/{order_id}/cancel", response_model=OrderOut)
    def cancel_order(request: Request, order_id: int, body: CancelIn | None = None) -> OrderOut:
        """Cancel an order not yet performed; its slot is freed."""
        who = authorise(request, Permission.ORDERS_WRITE)
        order = visible(request, who, order_id)
        with refused(409):
            return out(orders.cancel(order, origin_of(request, who), body.reason if body else ""))

    @r.post("/orders/{order_id}/schedule", response_model=OrderOut)
    def schedule_order(request: Request, order_id: int, body: ScheduleIn) -> OrderOut:
        """Book the order into a free slot of a station of its facility and modality."""
        who = authorise(request, Permission.ORDERS_WRITE)
        order = visible(request, who, order_id)
        with refused(409):
            booked = scheduling.book(order, body.slot_id, origin_of(request, who), who.facility_ids)
        return out(booked)

    # -- stations and slots -----------------------------------------------------------
    @r.get("/stations", response_model=list[StationOut])
    def list_stations(request: Request) -> list[StationOut]:
        """The modalities of the caller's facilities."""
        who = authorise(request, Permission.ORDERS_READ)
        return [
            StationOut.of(s, orders.facility_name(s.facility_id))
            for s in scheduling.stations(who.facility_ids)
        ]

    @r.post("/stations", status_code=201, response_model=StationOut)
    def add_station(request: Request, body: StationIn) -> StationOut:
        """Register a modality (its AE title is unique across the network: 409 if taken)."""
        who = authorise(request, Permission.ORDERS_WRITE)
        facility_id = facility_for_write(platform, who, body.facility)
        with refused(422):
            station = scheduling.add_station(
                facility_id, body.ae_title, body.modality, body.name, origin_of(request, who)
            )
        return StationOut.of(station, orders.facility_name(facility_id))

    def station_of(who: Principal, ae: str) -> Station:
        station = scheduling.station(ae, who.facility_ids)
        if station is None:
            raise HTTPException(404, "no such station")
        return station

    @r.post("/stations/{ae}/slots", status_code=201, response_model=SlotsOpened)
    def open_slots(request: Request, ae: str, body: SlotsIn) -> SlotsOpened:
        """Open slots of ``minutes`` on each day from ``date`` to ``until`` (local hours)."""
        who = authorise(request, Permission.ORDERS_WRITE)
        station = station_of(who, ae)
        with refused(422):
            periods = working_hours(
                body.date, body.until or body.date, body.start, body.end, zone(body.timezone)
            )
            opened = scheduling.open_slots(station, periods, body.minutes)
        return SlotsOpened(station=station.ae_title, added=opened.added, requested=opened.requested)

    @r.get("/stations/{ae}/slots", response_model=list[SlotOut])
    def list_slots(
        request: Request,
        ae: str,
        day: Annotated[date, Query(alias="date", description="YYYY-MM-DD")],
        days: Annotated[int, Query(ge=1, le=31)] = 1,
        timezone: Annotated[str, Query(max_length=64)] = "UTC",
    ) -> list[SlotOut]:
        """The slots of a day (or ``days`` days) in ``timezone``, free and booked."""
        who = authorise(request, Permission.ORDERS_READ)
        station = station_of(who, ae)
        with refused(422):
            tz = zone(timezone)
        start = datetime.combine(day, datetime.min.time(), tz).astimezone(UTC)
        end = datetime.combine(day + timedelta(days=days), datetime.min.time(), tz).astimezone(UTC)
        return [SlotOut.of(s) for s in scheduling.slots(station, start, end)]

    return r
