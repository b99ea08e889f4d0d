"""Which order a study answers: by accession number, by the UID the RIS asked for,
or by patient and procedure — and nothing when it is not clear.

Matching never guesses between two plausible orders: a study that fits more than
one waits for a person, with the reason. Only open orders of the study's own
facility are candidates, and an order already matched to another study is not.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from telerad.domain.orders import Order
from telerad.domain.readiness import StudyFacts

#: How far the study's date may be from the order's appointment (patient-procedure match).
DAYS_APART = 1


class MatchedBy(enum.StrEnum):
    ACCESSION = "accession number"
    STUDY_UID = "requested study UID"
    PATIENT_PROCEDURE = "patient and procedure"
    PERSON = "a person"


@dataclass(frozen=True)
class Match:
    order: Order | None
    by: MatchedBy | None = None
    reason: str = ""  # why there is no match


def _free_for(order: Order, study: StudyFacts) -> bool:
    return (
        order.facility_id == study.facility_id
        and order.is_open
        and order.study_instance_uid in ("", study.uid)
    )


def _study_day(study: StudyFacts) -> date | None:
    try:
        return datetime.strptime(study.study_date, "%Y%m%d").date()
    except ValueError:
        return None


def _near(order: Order, day: date | None) -> bool:
    if order.scheduled_at is None or day is None:
        return True
    return abs((order.scheduled_at.date() - day).days) <= DAYS_APART


def orders_to_pick(study: StudyFacts, candidates: Sequence[Order]) -> list[Order]:
    """The orders a person may match ``study`` to: open, of its facility, not taken by
    another study, and naming its accession number, its UID or its patient. Those
    with its accession number come first, then by appointment."""
    fitting = [
        o
        for o in candidates
        if _free_for(o, study)
        and (
            (study.accession_number and o.accession_number == study.accession_number)
            or o.requested_study_uid == study.uid
            or o.study_instance_uid == study.uid
            or o.patient.patient_id == study.patient_id
        )
    ]
    return sorted(
        fitting,
        key=lambda o: (
            o.accession_number != study.accession_number,
            o.scheduled_at is None,
            o.scheduled_at or datetime.min,
            o.accession_number,
        ),
    )


def match(study: StudyFacts, candidates: Sequence[Order]) -> Match:
    """The order ``study`` answers, or why there is none."""
    orders = [o for o in candidates if _free_for(o, study)]
    already = [o for o in orders if o.study_instance_uid == study.uid]
    if already:
        return Match(already[0], None)
    if study.accession_number:
        by_accession = [o for o in orders if o.accession_number == study.accession_number]
        if by_accession:
            return Match(by_accession[0], MatchedBy.ACCESSION)
    by_uid = [o for o in orders if o.requested_study_uid and o.requested_study_uid == study.uid]
    if by_uid:
        return Match(by_uid[0], MatchedBy.STUDY_UID)
    day = _study_day(study)
    fitting = [
        o
        for o in orders
        if o.patient.patient_id == study.patient_id
        and (not o.procedure.modality or o.procedure.modality in study.modalities)
        and _near(o, day)
    ]
    if len(fitting) == 1:
        return Match(fitting[0], MatchedBy.PATIENT_PROCEDURE)
    if len(fitting) > 1:
        numbers = ", ".join(sorted(o.accession_number for o in fitting))
        return Match(
            None, reason=f"{len(fitting)} open orders fit this patient and modality ({numbers})"
        )
    if study.accession_number:
        return Match(None, reason=f"no open order with accession number {study.accession_number}")
    return Match(None, reason="no accession number and no open order for this patient and modality")
