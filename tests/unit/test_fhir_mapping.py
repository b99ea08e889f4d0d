"""ServiceRequest ↔ order mapping, without a server: parse, serialise, search, slots."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.servicerequest import ServiceRequest

from telerad.adapters.fhir.interactions import operation_outcome, searchset
from telerad.adapters.fhir.service_request import (
    FHIR_STATUS,
    FhirError,
    from_pn,
    parse_search,
    parse_service_request,
    service_request,
    to_order,
    to_pn,
)
from telerad.domain.orders import Order, OrderStatus, PatientDemographics, Procedure
from telerad.domain.procedures import load_catalogue
from telerad.services.scheduling import slot_spans, working_hours, zone
from telerad.workflow.model import Priority

V2 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def request(**changes: Any) -> dict[str, Any]:
    sr: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "identifier": [{"type": {"coding": [{"system": V2, "code": "ACSN"}]}, "value": "ACC1"}],
        "subject": {"identifier": {"value": "PID-1"}, "display": "Doe, Jane"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "24627-2"}]},
    }
    sr.update(changes)
    return {k: v for k, v in sr.items() if v is not None}


def test_minimal_request_maps_to_an_order() -> None:
    req = parse_service_request(request())
    assert req.accession_number == "ACC1" and req.facility_hint == ""
    assert req.patient == PatientDemographics("PID-1", "Doe^Jane")
    assert (req.code, req.scheme) == ("24627-2", "LN")
    assert req.priority is Priority.ROUTINE and req.scheduled_at is None
    order = to_order(req, 7, load_catalogue())
    assert order.facility_id == 7 and order.procedure.code == "24627-2"


@pytest.mark.parametrize(
    ("priority", "reason", "tier"),
    [
        ("stat", "code stroke", Priority.STROKE),
        ("urgent", "MVC with polytrauma", Priority.TRAUMA),
        ("asap", "", Priority.URGENT),
        ("routine", "code stroke", Priority.ROUTINE),  # only urgent requests are lifted
        ("stat", "history of stroke, new weakness?", Priority.STAT),
        (None, "", Priority.ROUTINE),
    ],
)
def test_priority_and_reason_give_the_tier(
    priority: str | None, reason: str, tier: Priority
) -> None:
    sr = request(priority=priority, reasonCode=[{"text": reason}] if reason else None)
    assert parse_service_request(sr).priority is tier


def test_facility_from_accession_system_or_tag() -> None:
    system = [
        {
            "type": {"coding": [{"system": V2, "code": "ACSN"}]},
            "system": "urn:telerad:accession:St%20Mary%27s",
            "value": "A",
        }
    ]
    assert parse_service_request(request(identifier=system)).facility_hint == "St Mary's"
    tag = {"tag": [{"system": "urn:telerad:facility", "code": "Beta Clinic"}]}
    assert parse_service_request(request(meta=tag)).facility_hint == "Beta Clinic"


def test_occurrence_dates_and_periods() -> None:
    day = parse_service_request(request(occurrenceDateTime="2030-06-03"))
    assert day.scheduled_at == datetime(2030, 6, 3, tzinfo=UTC)
    period = parse_service_request(request(occurrencePeriod={"start": "2030-06-03T10:00:00+02:00"}))
    assert period.scheduled_at == datetime(2030, 6, 3, 8, tzinfo=UTC)
    with pytest.raises(FhirError) as month:
        parse_service_request(request(occurrenceDateTime="2030-06"))
    assert month.value.status == 422


@pytest.mark.parametrize(
    ("changes", "status", "expression"),
    [
        ({"resourceType": "Observation"}, 400, "resourceType"),
        ({"subject": None}, 400, "ServiceRequest.subject"),
        ({"priority": "soon"}, 400, "ServiceRequest.priority"),
        ({"code": None}, 422, "ServiceRequest.code"),
        ({"identifier": None}, 422, "ServiceRequest.identifier"),
        ({"subject": {"display": "nobody"}}, 422, "ServiceRequest.subject.identifier"),
        ({"intent": "plan"}, 422, "ServiceRequest.intent"),
        ({"code": {"coding": [{"code": "C" * 65}]}}, 422, "ServiceRequest.code.coding.code"),
    ],
)
def test_refusals_name_status_and_element(
    changes: dict[str, Any], status: int, expression: str
) -> None:
    sr = request()
    for key, value in changes.items():
        if value is None:
            sr.pop(key, None)
        else:
            sr[key] = value
    with pytest.raises(FhirError) as refused:
        parse_service_request(sr)
    assert refused.value.status == status
    assert refused.value.expression == expression


def test_an_unknown_contained_resource_type_is_400_not_a_crash() -> None:
    sr = request(contained=[{"resourceType": "Nonsense", "id": "p"}], subject={"reference": "#p"})
    with pytest.raises(FhirError) as refused:
        parse_service_request(sr)
    assert refused.value.status == 400


def order(**changes: Any) -> Order:
    base: dict[str, Any] = {
        "id": 42,
        "facility_id": 1,
        "accession_number": "ACC42",
        "patient": PatientDemographics("P42", "DOE^JOHN^Q", "19600229", "M"),
        "procedure": Procedure("70450", "CT head", "CPT", "CT", "HEAD", 0.85, "neuro"),
        "priority": Priority.STROKE,
        "reason": "code stroke",
        "ordering_physician": "HOUSE^GREGORY",
        "placer_order_number": "PL42",
        "requested_study_uid": "1.2.3.4",
        "study_instance_uid": "1.2.3.5",
        "scheduled_at": datetime(2030, 6, 3, 9, tzinfo=UTC),
        "station_ae": "CT1",
        "created_at": datetime(2030, 6, 1, tzinfo=UTC),
        "updated_at": datetime(2030, 6, 2, tzinfo=UTC),
    }
    base.update(changes)
    return Order(**base)


def test_order_serialises_as_valid_r4_and_reads_back() -> None:
    resource = service_request(order(), "Alpha Hospital")
    ServiceRequest.model_validate(resource)
    assert resource["priority"] == "stat"  # stroke is above stat: FHIR has no such code
    assert resource["status"] == "active"
    back = parse_service_request(resource)
    assert back.accession_number == "ACC42" and back.facility_hint == "Alpha Hospital"
    assert back.patient == PatientDemographics("P42", "DOE^JOHN^Q", "19600229", "M")
    assert back.ordering_physician == "HOUSE^GREGORY"
    assert back.placer_order_number == "PL42" and back.requested_study_uid == "1.2.3.4"
    assert back.scheduled_at == datetime(2030, 6, 3, 9, tzinfo=UTC)
    assert (back.code, back.scheme, back.modality) == ("70450", "CPT", "CT")
    assert back.priority is Priority.STROKE  # stat + the reason again
    extensions = {e["url"].rsplit("/", 1)[1]: e for e in resource["extension"]}
    assert extensions["study-instance-uid"]["valueOid"] == "urn:oid:1.2.3.5"


@pytest.mark.parametrize("status", list(OrderStatus))
def test_every_status_has_a_request_status(status: OrderStatus) -> None:
    resource = service_request(order(status=status), "A")
    ServiceRequest.model_validate(resource)
    assert resource["status"] == FHIR_STATUS[status]


def test_a_bare_order_serialises_too() -> None:
    bare = Order(1, "B1", PatientDemographics("P"), Procedure("X"), id=1)
    resource = service_request(bare, "A")
    ServiceRequest.model_validate(resource)
    assert "occurrenceDateTime" not in resource and "requester" not in resource


def test_names() -> None:
    assert to_pn("Doe, Jane") == "Doe^Jane"
    assert to_pn("Jane Doe") == "Jane Doe"
    assert to_pn("DOE^JANE") == "DOE^JANE"
    assert from_pn("DOE^JANE^Q") == "DOE, JANE Q"
    assert from_pn("DOE") == "DOE"


def test_search_parameters() -> None:
    s = parse_search(
        [
            ("identifier", "urn:telerad:accession:Alpha%20Hospital|ACC1"),
            ("patient.identifier", "urn:x|P1"),
            ("status", "active,revoked"),
            ("_count", "900"),
            ("_offset", "10"),
            ("_sort", "-date"),
        ]
    )
    assert (s.accession_number, s.facility_hint, s.patient_id) == ("ACC1", "Alpha Hospital", "P1")
    assert s.statuses is not None and OrderStatus.CANCELLED in s.statuses
    assert OrderStatus.READY not in s.statuses
    assert (s.count, s.offset) == (500, 10)
    assert "_sort" not in dict(s.used)
    for bad in (("status", "lost"), ("_count", "many"), ("_offset", "-1")):
        with pytest.raises(FhirError):
            parse_search([bad])


def test_bundle_and_outcome_are_valid_r4() -> None:
    resource = service_request(order(), "A")
    bundle = searchset("http://h/fhir/r4", "ServiceRequest", [resource], [], 1, 1, more=True)
    Bundle.model_validate(bundle)
    relations = {link["relation"] for link in bundle["link"]}
    assert relations == {"self", "next", "previous"}
    OperationOutcome.model_validate(operation_outcome("no", "not-found", "ServiceRequest.id"))


def test_slot_spans_and_working_hours() -> None:
    start = datetime(2030, 6, 3, 8, tzinfo=UTC)
    spans = slot_spans(start, datetime(2030, 6, 3, 9, 10, tzinfo=UTC), 20)
    assert [s.minute for s, _ in spans] == [0, 20, 40]  # the last whole slot ends by 09:10
    days = working_hours(
        date(2030, 3, 30), date(2030, 3, 31), time(8), time(9), zone("Europe/Berlin")
    )
    # Berlin moves to summer time overnight: 08:00 is 07:00 UTC, then 06:00 UTC.
    assert [d[0].hour for d in days] == [7, 6]
    for bad in (0, 2000):
        with pytest.raises(ValueError):
            slot_spans(start, start.replace(hour=9), bad)
    with pytest.raises(ValueError):
        zone("Nowhere/Town")
