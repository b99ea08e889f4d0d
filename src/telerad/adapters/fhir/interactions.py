"""The FHIR server's own resources: OperationOutcome, searchset Bundle, CapabilityStatement."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from telerad.adapters.fhir.report_search import SEARCH_PARAMS as REPORT_SEARCH_PARAMS
from telerad.adapters.fhir.service_request import FHIR_VERSION

FHIR_JSON = "application/fhir+json"

#: ServiceRequest search parameters this server understands (CapabilityStatement).
SEARCH_PARAMS: tuple[tuple[str, str, str], ...] = (
    ("identifier", "token", "the accession number: [system|]value"),
    ("patient.identifier", "token", "the patient's identifier at the facility"),
    ("status", "token", "active, completed, revoked (comma separated)"),
    ("_count", "number", "page size (at most 500)"),
    ("_offset", "number", "entries to skip"),
)


def operation_outcome(
    diagnostics: str, code: str = "invalid", expression: str = "", severity: str = "error"
) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def searchset(
    base: str,
    resource_type: str,
    resources: Sequence[dict[str, Any]],
    used: Sequence[tuple[str, str]],
    count: int,
    offset: int,
    more: bool,
) -> dict[str, Any]:
    """A searchset Bundle of ``resources``; ``more``: a next page may exist."""
    kept = [(n, v) for n, v in used if n not in ("_count", "_offset")]

    def page(at: int) -> str:
        return f"{base}/{resource_type}?" + urlencode([*kept, ("_count", count), ("_offset", at)])

    links = [{"relation": "self", "url": page(offset)}]
    if more:
        links.append({"relation": "next", "url": page(offset + count)})
    if offset > 0:
        links.append({"relation": "previous", "url": page(max(0, offset - count))})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [
            {
                "fullUrl": f"{base}/{resource_type}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def capability_statement(base: str, version: str, date: datetime) -> dict[str, Any]:
    """What this server offers: ServiceRequest read, create, update and search;
    DiagnosticReport read and search."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date.isoformat(timespec="seconds"),
        "publisher": "telerad",
        "kind": "instance",
        "software": {"name": "telerad", "version": version},
        "implementation": {"description": "telerad orders and reports (FHIR R4)", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": [FHIR_JSON, "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/"
                                    "restful-security-service",
                                    "code": "OAuth",
                                }
                            ],
                            "text": "Bearer tokens (telerad token create, POST /api/auth/token)",
                        }
                    ],
                    "description": "Scopes orders:read and orders:write (ServiceRequest), "
                    "dicomweb:read (DiagnosticReport); every request is limited to the "
                    "facilities the account serves.",
                },
                "resource": [
                    {
                        "type": "ServiceRequest",
                        "versioning": "no-version",
                        "readHistory": False,
                        "updateCreate": False,
                        "interaction": [
                            {"code": "read"},
                            {"code": "create"},
                            {"code": "update"},
                            {"code": "search-type"},
                        ],
                        "searchParam": [
                            {"name": name, "type": kind, "documentation": doc}
                            for name, kind, doc in SEARCH_PARAMS
                        ],
                    },
                    {
                        "type": "DiagnosticReport",
                        "versioning": "no-version",
                        "readHistory": False,
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            {"name": name, "type": kind, "documentation": doc}
                            for name, kind, doc in REPORT_SEARCH_PARAMS
                        ],
                    },
                ],
            }
        ],
    }
