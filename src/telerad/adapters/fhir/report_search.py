"""DiagnosticReport search parameters → a :class:`ReportQuery` (pure).

``patient`` (``[Patient/]ID``: the patient's identifier at the facility — the
platform keeps no Patient resources, so a patient's id is that identifier),
``subject:identifier`` (also ``patient.identifier``, ``subject.identifier``:
``[system|]value``; the system ``urn:telerad:patient:<facility>`` names the
facility), ``based-on`` (``[ServiceRequest/]ID`` or the ServiceRequest's URL),
``status`` (comma separated; ``amended`` stands for its kinds ``appended`` and
``corrected``), ``date`` (the study date, with FHIR's prefixes ``eq ne lt le gt
ge`` and a year, month or day; repeated for a range), ``_count``, ``_offset``.
Other parameters are ignored (and left out of the Bundle's self link).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from urllib.parse import unquote

from telerad.adapters.fhir.service_request import PATIENT_PREFIX, FhirError, whole_number
from telerad.domain.reports import ReportStatus
from telerad.services.report_publication import DateBound, ReportQuery

MAX_COUNT = 500
#: DiagnosticReport.status codes → the report statuses they find (the others: none).
STATUS_CODES: dict[str, frozenset[ReportStatus]] = {
    "registered": frozenset(),
    "partial": frozenset(),
    "preliminary": frozenset({ReportStatus.PRELIMINARY}),
    "final": frozenset({ReportStatus.FINAL}),
    "amended": frozenset({ReportStatus.APPENDED, ReportStatus.CORRECTED}),
    "corrected": frozenset({ReportStatus.CORRECTED}),
    "appended": frozenset({ReportStatus.APPENDED}),
    "cancelled": frozenset(),
    "entered-in-error": frozenset(),
    "unknown": frozenset(),
}
#: Search parameters this server understands (CapabilityStatement).
SEARCH_PARAMS: tuple[tuple[str, str, str], ...] = (
    ("patient", "reference", "the patient's identifier at the facility ([Patient/]ID)"),
    ("subject:identifier", "token", "the patient's identifier: [system|]value"),
    ("based-on", "reference", "the order: [ServiceRequest/]ID"),
    ("status", "token", "preliminary, final, appended, corrected, amended (comma separated)"),
    ("date", "date", "the study date, with prefixes eq ne lt le gt ge"),
    ("_count", "number", "page size (at most 500)"),
    ("_offset", "number", "entries to skip"),
)
_DATE = re.compile(r"(eq|ne|lt|le|gt|ge)?(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
_PATIENT_PARAMS = ("subject:identifier", "patient.identifier", "subject.identifier")


@dataclass(frozen=True)
class ParsedSearch:
    query: ReportQuery
    used: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def parse_report_search(params: Sequence[tuple[str, str]]) -> ParsedSearch:
    """The query the parameters ask for, or FhirError (400) naming the bad one."""
    patient = facility = ""
    order_id: int | None = None
    statuses: frozenset[ReportStatus] | None = None
    dates: list[DateBound] = []
    count, offset, nothing = 50, 0, False
    used: list[tuple[str, str]] = []
    for name, value in params:
        if name == "patient":
            patient = value.rpartition("/")[2].strip()
        elif name in _PATIENT_PARAMS:
            system, bar, patient = value.rpartition("|")
            patient = patient.strip()
            if bar and system.startswith(PATIENT_PREFIX):
                facility = unquote(system[len(PATIENT_PREFIX) :])
            elif bar and system:
                nothing = True  # an identifier system this platform does not issue
        elif name == "based-on":
            ref = value.strip().rstrip("/")
            kind, _, ident = ref.rpartition("/")
            if (kind and not kind.endswith("ServiceRequest")) or not ident.isdigit():
                nothing = True
            else:
                order_id = int(ident) if len(ident) < 19 else None
                nothing = nothing or order_id is None
        elif name == "status":
            wanted = {s.strip() for s in value.split(",") if s.strip()}
            unknown = wanted - set(STATUS_CODES)
            if unknown:
                raise FhirError(f"unknown status {sorted(unknown)[0]!r}", 400, "value", "status")
            found = frozenset(s for code in wanted for s in STATUS_CODES[code])
            statuses = found if statuses is None else statuses & found
            nothing = nothing or not statuses
        elif name == "date":
            dates.append(_date_bound(value))
        elif name == "_count":
            count = min(whole_number(name, value), MAX_COUNT)
        elif name == "_offset":
            offset = whole_number(name, value)
        else:
            continue
        used.append((name, value))
    query = ReportQuery(
        patient_id=patient,
        facility=facility,
        order_id=order_id,
        statuses=statuses or frozenset(),
        dates=tuple(dates),
        count=count,
        offset=offset,
        nothing=nothing,
    )
    return ParsedSearch(query, tuple(used))


def _date_bound(value: str) -> DateBound:
    m = _DATE.fullmatch(value.strip())
    if m is None:
        raise FhirError(
            f"date {value[:40]!r} is not [prefix]YYYY[-MM[-DD]] (prefixes eq ne lt le gt ge)",
            400,
            "value",
            "date",
        )
    op, year, month, day = m[1] or "eq", int(m[2]), m[3], m[4]
    try:
        if day is not None:
            first = last = date(year, int(month), int(day))
        elif month is not None:
            first = date(year, int(month), 1)
            last = date(year, int(month), calendar.monthrange(year, int(month))[1])
        else:
            first, last = date(year, 1, 1), date(year, 12, 31)
    except ValueError:
        raise FhirError(f"date {value[:40]!r} is not a date", 400, "value", "date") from None
    return DateBound(op, first, last)
