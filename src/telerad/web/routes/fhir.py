"""FHIR R4 over HTTP under ``/fhir/r4``: ServiceRequest create, read, update, search.

Thin: the mapping is ``telerad.adapters.fhir``, the work is the order service.
Every answer is ``application/fhir+json``; every error, authentication included,
is an OperationOutcome (400 the resource is not valid FHIR, 401/403, 404, 409 a
duplicate accession or a closed order, 422 valid FHIR the server cannot take as an
order). Authentication and facility scoping are the REST API's: a ServiceRequest
of another facility answers exactly like one that does not exist. ``/metadata``
(the CapabilityStatement) needs no sign-in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.routing import APIRoute

from telerad import __version__
from telerad.adapters.fhir.interactions import (
    FHIR_JSON,
    capability_statement,
    operation_outcome,
    searchset,
)
from telerad.adapters.fhir.service_request import (
    FhirError,
    Requested,
    parse_search,
    parse_service_request,
    service_request,
    to_order,
)
from telerad.domain.identity import Permission, Principal
from telerad.domain.orders import Order, OrderError, OrderFilter
from telerad.services.access_audit import Actor
from telerad.services.platform import Platform
from telerad.web.auth import authorise, client_address
from telerad.web.routes.orders import origin_of

_ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    409: "conflict",
    413: "too-long",
    415: "not-supported",
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {FHIR_JSON: {"schema": {"type": "object", "title": "ServiceRequest"}}},
    }
}


def fhir_response(
    resource: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        json.dumps(resource, ensure_ascii=False), status, headers=headers, media_type=FHIR_JSON
    )


class FhirRoute(APIRoute):
    """Errors of these routes, authentication's included, become OperationOutcomes."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except FhirError as exc:
                body = operation_outcome(str(exc), exc.code, exc.expression)
                return fhir_response(body, exc.status)
            except HTTPException as exc:
                code = _ISSUE_CODES.get(exc.status_code, "processing")
                body = operation_outcome(str(exc.detail), code)
                return fhir_response(body, exc.status_code, dict(exc.headers or {}))

        return answer


async def fhir_body(request: Request) -> Any:
    """The request's JSON (application/fhir+json or application/json), or 400/415."""
    media = request.headers.get("content-type", FHIR_JSON).split(";")[0].strip().lower()
    if media not in (FHIR_JSON, "application/json"):
        raise FhirError(f"send {FHIR_JSON}, not {media}", 415, "not-supported")
    try:
        return json.loads(await request.body())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FhirError(f"the body is not JSON: {exc}", 400, "structure") from None


FhirBody = Annotated[Any, Depends(fhir_body)]


def router(platform: Platform) -> APIRouter:  # noqa: C901 - one closure per interaction
    r = APIRouter(prefix="/fhir/r4", tags=["FHIR R4"], route_class=FhirRoute)
    orders = platform.orders

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/") + "/fhir/r4"

    def resource(order: Order) -> dict[str, Any]:
        return service_request(order, orders.facility_name(order.facility_id))

    def facility_for(who: Principal, hint: str) -> int:
        if hint:
            found = platform.index.facility_by_name(hint)
            if found is None or not who.sees(found.id):  # another's answers like none at all
                raise FhirError(f"no facility named {hint!r}", 422, "not-found", "meta.tag")
            return found.id
        if who.facility_ids is not None and len(who.facility_ids) == 1:
            return next(iter(who.facility_ids))
        raise FhirError(
            "this account serves several facilities: name one with a meta.tag "
            "(system urn:telerad:facility, code the facility name) or the accession "
            "identifier's system (urn:telerad:accession:<facility>)",
            422,
            "required",
            "ServiceRequest.meta.tag",
        )

    def visible(request: Request, who: Principal, sr_id: str) -> Order:
        actor = Actor.of(who, client_address(request))
        order = orders.lookup(actor, sr_id, who.facility_ids, "FHIR")
        if order is None:
            raise FhirError(f"ServiceRequest/{sr_id[:64]} is not known", 404, "not-found")
        return order

    @r.get("/metadata")
    def metadata(request: Request) -> Response:
        """The CapabilityStatement: what this FHIR server offers (no sign-in needed)."""
        return fhir_response(capability_statement(base(request), __version__, datetime.now(UTC)))

    @r.post("/ServiceRequest", status_code=201, openapi_extra=_BODY)
    def create(request: Request, body: FhirBody) -> Response:
        """Create an order from a ServiceRequest; 201 with Location and the stored resource."""
        who = authorise(request, Permission.ORDERS_WRITE)
        req = parse_service_request(body)
        if req.status != "active":
            raise FhirError("a new request must be active", 422, "business-rule", "status")
        order = to_order(req, facility_for(who, req.facility_hint), orders.catalogue)
        try:
            stored = orders.place(order, origin_of(request, who, "FHIR"))
        except OrderError as exc:
            raise FhirError(str(exc), 409, "duplicate", "ServiceRequest.identifier") from None
        location = f"{base(request)}/ServiceRequest/{stored.id}"
        return fhir_response(resource(stored), 201, {"Location": location})

    @r.get("/ServiceRequest/{sr_id}")
    def read(request: Request, sr_id: str) -> Response:
        """One ServiceRequest (an order of a facility the caller serves)."""
        who = authorise(request, Permission.ORDERS_READ)
        order = visible(request, who, sr_id)
        orders.viewed(order, origin_of(request, who, "FHIR"))
        return fhir_response(resource(order))

    @r.put("/ServiceRequest/{sr_id}", openapi_extra=_BODY)
    def update(request: Request, sr_id: str, body: FhirBody) -> Response:
        """A new version of the order (status revoked cancels it); 409 once it is closed."""
        who = authorise(request, Permission.ORDERS_WRITE)
        if not isinstance(body, dict) or body.get("id") != sr_id:
            raise FhirError("the resource's id must be the one in the URL", 400, "invalid", "id")
        known = visible(request, who, sr_id)
        req: Requested = parse_service_request(body)
        if req.accession_number != known.accession_number:
            raise FhirError(
                "an update cannot change the accession number", 422, "business-rule", "identifier"
            )
        if req.facility_hint and facility_for(who, req.facility_hint) != known.facility_id:
            raise FhirError(
                "an update cannot move an order to another facility", 422, "business-rule"
            )
        origin = origin_of(request, who, "FHIR")
        try:
            if req.status == "revoked":
                changed = orders.cancel(known, origin, "revoked")
            else:
                changed = orders.revise(
                    known, to_order(req, known.facility_id, orders.catalogue), origin
                )
        except OrderError as exc:
            raise FhirError(str(exc), 409, "conflict") from None
        return fhir_response(resource(changed))

    @r.get("/ServiceRequest")
    def search(request: Request) -> Response:
        """Search: identifier, patient.identifier, status, _count, _offset → a Bundle."""
        who = authorise(request, Permission.ORDERS_READ)
        query = parse_search(list(request.query_params.multi_items()))
        facilities = who.facility_ids
        if query.facility_hint:
            found = platform.index.facility_by_name(query.facility_hint)
            wanted = frozenset({found.id}) if found is not None else frozenset()
            facilities = wanted if facilities is None else facilities & wanted
        found_orders = orders.search(
            Actor.of(who, client_address(request)),
            OrderFilter(
                facility_ids=facilities,
                accession_number=query.accession_number,
                patient_id=query.patient_id,
                statuses=query.statuses,
                limit=query.count + 1,  # one more: is there a next page?
                offset=query.offset,
            ),
            "FHIR",
            request.url.query,
            shown=query.count,
        )
        page = found_orders[: query.count]
        bundle = searchset(
            base(request),
            "ServiceRequest",
            [resource(o) for o in page],
            query.used,
            query.count,
            query.offset,
            more=query.count > 0 and len(found_orders) > query.count,
        )
        return fhir_response(bundle)

    return r
