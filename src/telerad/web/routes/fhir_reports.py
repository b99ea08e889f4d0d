"""FHIR R4 DiagnosticReport under ``/fhir/r4``: read and search the signed reports.

Thin: the resource is ``telerad.adapters.fhir.diagnostic_report``, the parameters
``report_search``, the work (scope, signed only, audit) the report publication
service. Answers as the ServiceRequest routes do: ``application/fhir+json``, every
error an OperationOutcome; a draft, another facility's report and an unknown id all
answer 404.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from telerad.adapters.fhir.diagnostic_report import diagnostic_report, report_id_of
from telerad.adapters.fhir.interactions import searchset
from telerad.adapters.fhir.report_search import parse_report_search
from telerad.adapters.fhir.service_request import FhirError
from telerad.domain.identity import Permission
from telerad.services.platform import Platform
from telerad.services.report_publication import Published
from telerad.services.reports import NotFound
from telerad.web.auth import authorise, client_address
from telerad.web.routes.fhir import FhirRoute, fhir_response


def router(platform: Platform) -> APIRouter:
    r = APIRouter(prefix="/fhir/r4", tags=["FHIR R4"], route_class=FhirRoute)
    publication = platform.publication

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/") + "/fhir/r4"

    def resource(request: Request, p: Published) -> dict[str, Any]:
        return diagnostic_report(
            p.report, p.facts, p.template, p.facility, base(request), p.order, p.pdf
        )

    @r.get("/DiagnosticReport/{dr_id}")
    def read(request: Request, dr_id: str) -> Response:
        """One signed report of a facility the caller serves (drafts are never shown)."""
        who = authorise(request, Permission.READ)
        report_id = report_id_of(dr_id)
        try:
            if report_id is None:
                raise NotFound(dr_id)
            published = publication.read(who, report_id, client_address(request))
        except NotFound:
            raise FhirError(
                f"DiagnosticReport/{dr_id[:64]} is not known", 404, "not-found"
            ) from None
        return fhir_response(resource(request, published))

    @r.get("/DiagnosticReport")
    def search(request: Request) -> Response:
        """Search: patient, subject:identifier, based-on, status, date, _count, _offset."""
        who = authorise(request, Permission.READ)
        parsed = parse_report_search(list(request.query_params.multi_items()))
        q = parsed.query
        page, more = publication.search(who, q, client_address(request))
        bundle = searchset(
            base(request),
            "DiagnosticReport",
            [resource(request, p) for p in page],
            parsed.used,
            q.count,
            q.offset,
            more=q.count > 0 and more,
        )
        return fhir_response(bundle)

    return r
