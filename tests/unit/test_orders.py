"""The order's rules: status transitions, revisions, accession numbers, priorities, catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest

from telerad.domain.orders import (
    OPEN,
    TRANSITIONS,
    Order,
    OrderError,
    OrderEvent,
    OrderStatus,
    PatientDemographics,
    Procedure,
    fhir_priority,
    hl7_priority,
    next_status,
    triage_priority,
)
from telerad.domain.procedures import load_catalogue, parse_catalogue
from telerad.workflow.model import Priority

DATA = Path(__file__).parents[1] / "data"
CT_HEAD = Procedure("70450", "CT head", "CPT", "CT", "HEAD", 0.85, "neuro")


def order(**changes: object) -> Order:
    values: dict[str, object] = {
        "facility_id": 1,
        "accession_number": "A1",
        "patient": PatientDemographics("P1", "Doe^Jane", "19800101", "F"),
        "procedure": CT_HEAD,
    }
    values.update(changes)
    return Order(**values)  # type: ignore[arg-type]


def test_the_happy_path_of_an_order() -> None:
    o = order()
    for event, status in [
        (OrderEvent.SCHEDULE, OrderStatus.SCHEDULED),
        (OrderEvent.START, OrderStatus.IN_PROGRESS),
        (OrderEvent.COMPLETE, OrderStatus.PERFORMED),
        (OrderEvent.READY, OrderStatus.READY),
    ]:
        o = o.moved(event)
        assert o.status == status


@pytest.mark.parametrize("status", list(OrderStatus))
@pytest.mark.parametrize("event", list(OrderEvent))
def test_every_move_is_in_the_table_or_refused_with_a_reason(
    status: OrderStatus, event: OrderEvent
) -> None:
    if (status, event) in TRANSITIONS:
        assert next_status(status, event) == TRANSITIONS[(status, event)]
    else:
        with pytest.raises(OrderError, match=f"{status.value} cannot {event.value}"):
            next_status(status, event)


def test_closed_orders_stay_closed() -> None:
    for closed in set(OrderStatus) - OPEN - {OrderStatus.READY}:
        assert not any(s == closed for (s, _e) in TRANSITIONS), closed
    # Only more images reopen a ready order; it cannot be cancelled or rescheduled.
    assert {e for (s, e) in TRANSITIONS if s == OrderStatus.READY} == {OrderEvent.REOPEN}


def test_a_performed_order_cannot_be_cancelled() -> None:
    performed = order(status=OrderStatus.PERFORMED)
    with pytest.raises(OrderError):
        performed.moved(OrderEvent.CANCEL)
    assert order().moved(OrderEvent.CANCEL).status == OrderStatus.CANCELLED


@pytest.mark.parametrize("bad", ["", "   ", "A" * 17, "A\\B", "A\x01"])
def test_accession_numbers_are_dicom_sh(bad: str) -> None:
    with pytest.raises(OrderError, match="accession number"):
        order(accession_number=bad)


def test_an_order_needs_a_patient_and_a_procedure() -> None:
    with pytest.raises(OrderError, match="patient"):
        order(patient=PatientDemographics(" "))
    with pytest.raises(OrderError, match="procedure"):
        order(procedure=Procedure(""))


def test_a_revision_keeps_identity_and_refuses_to_move_the_order() -> None:
    known = order(placer_order_number="PL1", id=7)
    newer = order(reason="worse headache", priority=Priority.STAT)
    revised = known.revised(newer)
    assert (revised.id, revised.placer_order_number) == (7, "PL1")
    assert (revised.reason, revised.priority) == ("worse headache", Priority.STAT)
    with pytest.raises(OrderError, match="facility or accession"):
        known.revised(order(accession_number="A2"))
    with pytest.raises(OrderError, match="cancelled"):
        order(status=OrderStatus.CANCELLED).revised(newer)


def test_priorities_from_hl7_and_fhir_codes() -> None:
    assert hl7_priority("S") == Priority.STAT
    assert hl7_priority(" a ") == Priority.URGENT
    assert hl7_priority("") == hl7_priority("?") == Priority.ROUTINE
    assert fhir_priority("STAT") == Priority.STAT
    assert fhir_priority("asap") == Priority.URGENT


@pytest.mark.parametrize(
    ("ordered", "reason", "tier"),
    [
        (Priority.STAT, "code stroke, left arm weakness", Priority.STROKE),
        (Priority.URGENT, "acute aphasia", Priority.STROKE),
        (Priority.STAT, "MVC, polytrauma", Priority.TRAUMA),
        (Priority.STAT, "history of stroke, new headache", Priority.STAT),
        (Priority.ROUTINE, "stroke follow-up", Priority.ROUTINE),
        (Priority.STAT, "chest pain", Priority.STAT),
    ],
)
def test_stroke_and_trauma_are_urgent_orders_that_say_so(
    ordered: Priority, reason: str, tier: Priority
) -> None:
    assert triage_priority(ordered, reason) == tier


def test_the_default_catalogue_knows_common_codes_and_falls_back_by_modality() -> None:
    catalogue = load_catalogue()
    head = catalogue.resolve("70450", "CT HEAD WO", "CPT", "")
    assert (head.modality, head.subspecialty, head.rvu) == ("CT", "neuro", 0.85)
    assert head.description == "CT HEAD WO"  # the order's words are kept for display
    unknown = catalogue.resolve("LOCAL123", "Some MR", "L", "mr")
    assert (unknown.modality, unknown.rvu, unknown.subspecialty) == ("MR", 1.5, "")


def test_catalogue_errors_name_the_entry() -> None:
    with pytest.raises(OrderError, match="procedure 'X1': rvu"):
        parse_catalogue({"procedure": {"X1": {"rvu": -1}}})
    with pytest.raises(OrderError, match="unknown field"):
        parse_catalogue({"procedure": {"X1": {"rvus": 1}}})
    bad = DATA / "catalogues" / "bad.toml"  # "[procedure" and nothing more
    with pytest.raises(OrderError, match="bad.toml: not valid TOML"):
        load_catalogue(bad)
