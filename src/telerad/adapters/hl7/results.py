"""What a signature queues for a facility over HL7 v2: an ORU^R01 for its results
endpoint, when it has one (``telerad facility results FACILITY --hl7 HOST:PORT``).

:func:`hl7_deliveries` is a ``services.reports.Deliveries``: called with the report
as signed, in the signature's transaction, it returns the outbox row to write (the
whole ER7 message as the payload, its MSH-10 the row's message id) or nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from telerad.adapters.hl7.oru import RESULT_STATUS, Parties, build_oru
from telerad.domain.orders import Order
from telerad.domain.outbox import Channel
from telerad.domain.reports import Report
from telerad.domain.templates import Template
from telerad.services.outbox import EndpointStore, new_message_id
from telerad.services.reports import Deliveries, Outgoing, ReportFacts


def hl7_deliveries(
    endpoints: EndpointStore,
    template_of: Callable[[str], Template | None],
    parties_of: Callable[[int], Parties],
    order_of: Callable[[int, str], Order | None] | None = None,
) -> Deliveries:
    """The HL7 deliveries of a signature: ``template_of`` names a report's sections,
    ``parties_of`` gives a facility's MSH names, ``order_of`` (facility id, accession)
    its order when there is one (placer and filler numbers, birth date)."""

    def deliveries(report: Report, facts: ReportFacts, now: datetime) -> Sequence[Outgoing]:
        if report.id is None or report.status not in RESULT_STATUS:
            return ()
        if endpoints.endpoint(report.facility_id, Channel.HL7) is None:
            return ()
        order = None
        if order_of is not None and report.accession_number:
            order = order_of(report.facility_id, report.accession_number)
        message_id = new_message_id(report.id, report.version)
        payload = build_oru(
            report,
            facts,
            template_of(report.content.template_id),
            message_id,
            now,
            parties_of(report.facility_id),
            order,
        )
        return [Outgoing(Channel.HL7.value, message_id, payload, now)]

    return deliveries
