"""What a signature queues for a facility over FHIR: the DiagnosticReport for its FHIR
endpoint, when it has one (``telerad facility results FACILITY --fhir URL``).

:func:`fhir_deliveries` is a ``services.reports.Deliveries``: called with the report
as signed, in the signature's transaction, it returns the outbox row to write (the
resource as JSON; the sender ``PUT``\\ s it under its id, so every later signature,
addendum and correction of the report updates the one resource the facility holds).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime

from telerad.adapters.fhir.diagnostic_report import FHIR_STATUS, diagnostic_report
from telerad.domain.outbox import Channel
from telerad.domain.reports import Report
from telerad.services.outbox import EndpointStore, new_message_id
from telerad.services.report_publication import Published
from telerad.services.reports import Deliveries, Outgoing, ReportFacts


def fhir_deliveries(
    endpoints: EndpointStore,
    published_of: Callable[[Report, ReportFacts], Published],
    base: str,
) -> Deliveries:
    """The FHIR deliveries of a signature: ``published_of`` gives what the resource is
    made of (template, order, facility name, PDF), ``base`` this platform's FHIR base
    URL (the ``basedOn`` ServiceRequests are on it)."""

    def deliveries(report: Report, facts: ReportFacts, now: datetime) -> Sequence[Outgoing]:
        if report.id is None or report.signed is None or report.status not in FHIR_STATUS:
            return ()
        if endpoints.endpoint(report.facility_id, Channel.FHIR) is None:
            return ()
        p = published_of(report, facts)
        resource = diagnostic_report(
            p.report, p.facts, p.template, p.facility, base, p.order, p.pdf
        )
        payload = json.dumps(resource, ensure_ascii=False, separators=(",", ":"))
        message_id = new_message_id(report.id, report.version)
        return [Outgoing(Channel.FHIR.value, message_id, payload, now)]

    return deliveries
