"""What a radiologist needs to see beside a study on the worklist and in the viewer.

For each study: the patient (name, age at the study, sex), the accession and
description, the reason for the exam and the ordering physician from its order
(the images' referring physician when there is no order), and the facility. One
archive search and one order query for a whole page, scoped to the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from telerad.domain.demographics import patient_age, sex_label
from telerad.domain.identity import Principal
from telerad.domain.model import Level
from telerad.domain.orders import OrderFilter
from telerad.domain.query import Query, UidList
from telerad.services.archive import Archive
from telerad.services.orders import OrderService
from telerad.services.ports import Index
from telerad.services.studies import Scope

_RETURNS = frozenset(
    {
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "AccessionNumber",
        "StudyDescription",
        "ReferringPhysicianName",
    }
)


@dataclass(frozen=True)
class StudyContext:
    uid: str
    patient_name: str  # DICOM PN
    patient_id: str
    age: str  # "47 y"
    sex: str  # F, M, other, ""
    accession: str
    description: str
    study_date: str  # DICOM DA
    reason: str  # the order's reason for the exam ("" without an order)
    ordering_physician: str  # DICOM PN
    facility_id: int
    facility: str
    has_order: bool


def _text(value: object) -> str:
    return "" if value is None else str(value)


class ReadingContext:
    def __init__(self, archive: Archive, index: Index, orders: OrderService) -> None:
        self.archive = archive
        self.index = index
        self.orders = orders

    def of(self, who: Principal, uids: Sequence[str]) -> dict[str, StudyContext]:
        """The context of each of ``uids`` that ``who`` may see (others are left out)."""
        if not uids:
            return {}
        wanted = tuple(dict.fromkeys(uids))
        query = Query(
            Level.STUDY,
            matches={"StudyInstanceUID": UidList(wanted)},
            returns=set(_RETURNS),
            limit=len(wanted),
        )
        found = self.archive.search(Scope.of(who).applied(query))
        owners = self.index.study_facilities(list(wanted))
        orders = {
            o.study_instance_uid: o
            for o in self.orders.find(
                OrderFilter(
                    facility_ids=who.facility_ids,
                    study_instance_uids=wanted,
                    limit=len(wanted) * 4,
                )
            )
        }
        names = {f.id: f.name for f in self.index.list_facilities()}
        out = {}
        for study in found:
            uid = _text(study.get("StudyInstanceUID"))
            order = orders.get(uid)
            date = _text(study.get("StudyDate"))
            owner = owners.get(uid, order.facility_id if order else 0)
            out[uid] = StudyContext(
                uid=uid,
                patient_name=_text(study.get("PatientName")),
                patient_id=_text(study.get("PatientID")),
                age=patient_age(_text(study.get("PatientBirthDate")), date),
                sex=sex_label(_text(study.get("PatientSex"))),
                accession=_text(study.get("AccessionNumber")),
                description=_text(study.get("StudyDescription"))
                or (order.procedure.description if order else ""),
                study_date=date,
                reason=order.reason if order else "",
                ordering_physician=(order.ordering_physician if order else "")
                or _text(study.get("ReferringPhysicianName")),
                facility_id=owner,
                facility=names.get(owner, ""),
                has_order=order is not None,
            )
        return out
