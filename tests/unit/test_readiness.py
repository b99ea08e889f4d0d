"""Readiness and matching: pure rules, known answers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from telerad.domain.orders import Order, OrderStatus, PatientDemographics, Procedure
from telerad.domain.readiness import (
    PerformedStep,
    Readiness,
    SeriesFacts,
    StudyFacts,
    assess,
    missing_numbers,
    problems_of,
)
from telerad.domain.reconciliation import MatchedBy, match

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
STABLE, HOLD = timedelta(minutes=2), timedelta(minutes=30)


def study(**kw: object) -> StudyFacts:
    values: dict[str, object] = {
        "uid": "1.2.3",
        "facility_id": 1,
        "patient_id": "P1",
        "accession_number": "ACC1",
        "study_date": "20261123",
        "modalities": frozenset({"CT"}),
        "last_change": NOW - timedelta(minutes=5),
        "series": (SeriesFacts("1.2.3.1", "CT", 1, tuple(range(1, 11))),),
    }
    values.update(kw)
    return StudyFacts(**values)  # type: ignore[arg-type]


def order(accession: str = "ACC1", **kw: object) -> Order:
    values: dict[str, object] = {
        "facility_id": 1,
        "accession_number": accession,
        "patient": PatientDemographics("P1"),
        "procedure": Procedure("70450", modality="CT"),
        "id": 1,
    }
    values.update(kw)
    return Order(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("numbers", "missing"),
    [
        ((1, 2, 3, 5, 6), [4]),
        ((1, 2, 3), []),
        ((1, 2), []),  # too short to judge
        ((1, 1, 2, 4), []),  # repeated numbers: two acquisitions, not a run
        ((1, None, 3, 5), []),  # unnumbered instances: not a run
        ((1, 100, 200), []),  # sparse numbering is a scheme, not a gap
        (tuple(n for n in range(1, 101) if n not in (57, 58)), [57, 58]),
    ],
)
def test_missing_instance_numbers(numbers: tuple[int | None, ...], missing: list[int]) -> None:
    assert missing_numbers(numbers) == missing


def test_problems_name_the_series_and_what_is_missing() -> None:
    gap = SeriesFacts("s2", "CT", 2, tuple(n for n in range(1, 31) if n not in range(5, 15)))
    many = problems_of(study(series=(gap,)))
    assert many == ["series 2 (CT): instances 5, 6, 7, 8, 9, 10, 11, 12 and 2 more missing"]


def test_mpps_in_progress_and_series_it_listed() -> None:
    running = [PerformedStep("IN PROGRESS")]
    assert problems_of(study(), running) == [
        "the modality has not completed the procedure (MPPS in progress)"
    ]
    done = [PerformedStep("COMPLETED", {"1.2.3.1": 12, "1.2.3.9": 3})]
    assert problems_of(study(), done) == [
        "series 1 (CT): 10 of 12 instances listed by MPPS received",
        "a series of 3 instance(s) listed by MPPS not received",
    ]
    assert problems_of(study(), [PerformedStep("COMPLETED", {"1.2.3.1": 10})]) == []


def test_assess_arriving_unmatched_held_ready() -> None:
    def state(
        s: StudyFacts, matched: bool = True, steps: list[PerformedStep] | None = None
    ) -> Readiness:
        return assess(
            s, steps or [], matched=matched, now=NOW, stable_for=STABLE, hold_limit=HOLD
        ).state

    assert state(study(last_change=NOW - timedelta(seconds=30))) == Readiness.ARRIVING
    assert state(study(), matched=False) == Readiness.UNMATCHED
    assert state(study()) == Readiness.READY
    assert state(study(), steps=[PerformedStep("IN PROGRESS")]) == Readiness.INCOMPLETE
    # Held no longer than the hold limit: then read, with the problem shown.
    late = study(last_change=NOW - HOLD)
    result = assess(
        late,
        [PerformedStep("IN PROGRESS")],
        matched=True,
        now=NOW,
        stable_for=STABLE,
        hold_limit=HOLD,
    )
    assert result.state == Readiness.READY and result.problems


def test_match_by_accession_then_uid_then_patient_and_procedure() -> None:
    assert match(study(), [order("OTHER"), order()]) == match(study(), [order()])
    found = match(study(), [order("OTHER"), order(id=2)])
    assert (found.order and found.order.id, found.by) == (2, MatchedBy.ACCESSION)
    by_uid = match(study(accession_number=""), [order("X", requested_study_uid="1.2.3")])
    assert by_uid.by == MatchedBy.STUDY_UID
    by_patient = match(study(accession_number="UNKNOWN"), [order("X")])
    assert by_patient.by == MatchedBy.PATIENT_PROCEDURE


def test_match_never_guesses() -> None:
    two = match(study(accession_number=""), [order("X1"), order("X2", id=2)])
    assert two.order is None and "2 open orders fit" in two.reason and "X1, X2" in two.reason
    other_facility = match(study(), [order(facility_id=2)])
    assert other_facility.order is None and "ACC1" in other_facility.reason
    closed = match(study(), [order(status=OrderStatus.CANCELLED)])
    assert closed.order is None
    taken = match(study(), [order(study_instance_uid="9.9.9")])
    assert taken.order is None
    wrong_modality = match(
        study(accession_number=""), [order("X", procedure=Procedure("1", modality="MR"))]
    )
    assert wrong_modality.order is None
    far = order("X", scheduled_at=NOW + timedelta(days=5))
    assert match(study(accession_number=""), [far]).order is None
    assert match(study(accession_number=""), [replace(far, scheduled_at=NOW)]).order is not None
