"""What reporting needs to know about a study: the patient, the order and the priors.

From the archive (the study's own attributes, the patient's earlier studies at the
same facility) and the study's order (procedure code and description, reason). A
study the caller may not see has no facts.
"""

from __future__ import annotations

from telerad.domain.demographics import dicom_date, patient_age
from telerad.domain.identity import Principal
from telerad.domain.model import Level
from telerad.domain.orders import OrderFilter
from telerad.domain.query import Exact, Query, UidList
from telerad.domain.report_checks import Prior
from telerad.services.archive import Archive
from telerad.services.orders import OrderService
from telerad.services.ports import Index
from telerad.services.reports import ReportFacts
from telerad.services.study_list import listed_modalities

_STUDY = frozenset(
    {
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "AccessionNumber",
        "StudyDescription",
        "ModalitiesInStudy",
    }
)
#: At most this many earlier studies are offered as priors.
PRIORS = 50


def _text(value: object) -> str:
    return "" if value is None else str(value)


def age_years(birth_date: str, on: str) -> int | None:
    """Whole years on the study date ("" → None); under two years counts as 0 or 1."""
    age = patient_age(birth_date, on)
    if not age:
        return None
    number, unit = age.split()
    return int(number) if unit == "y" else int(number) // 12 if unit == "mo" else 0


class StudyReportFacts:
    def __init__(self, archive: Archive, index: Index, orders: OrderService) -> None:
        self.archive = archive
        self.index = index
        self.orders = orders

    def facts(self, who: Principal, study_uid: str) -> ReportFacts | None:
        found = self.archive.search(
            Query(
                Level.STUDY,
                matches={"StudyInstanceUID": UidList((study_uid,))},
                returns=set(_STUDY),
                facility_ids=who.facility_ids,
                granted_studies=who.break_glass,
                limit=1,
            )
        )
        if not found:
            return None
        study = found[0]
        facility_id = self.index.study_facilities([study_uid]).get(study_uid)
        if facility_id is None:
            return None
        orders = self.orders.find(
            OrderFilter(
                facility_ids=frozenset({facility_id}), study_instance_uids=(study_uid,), limit=1
            )
        )
        order = orders[0] if orders else None
        when = _text(study.get("StudyDate"))
        modalities = listed_modalities(study.get("ModalitiesInStudy"))
        patient_id = _text(study.get("PatientID"))
        return ReportFacts(
            study_instance_uid=study_uid,
            facility_id=facility_id,
            accession_number=_text(study.get("AccessionNumber"))
            or (order.accession_number if order else ""),
            patient_id=patient_id,
            patient_name=_text(study.get("PatientName")),
            sex=_text(study.get("PatientSex")).strip().upper()
            or (order.patient.sex if order else ""),
            age=age_years(_text(study.get("PatientBirthDate")), when),
            modality=(order.procedure.modality if order and order.procedure.modality else "")
            or (modalities[0] if modalities else ""),
            procedure_code=order.procedure.code if order else "",
            procedure=(order.procedure.description if order else "")
            or _text(study.get("StudyDescription")),
            reason=order.reason if order else "",
            study_date=dicom_date(when),
            priors=self._priors(facility_id, patient_id, study_uid, when),
        )

    def _priors(
        self, facility_id: int, patient_id: str, study_uid: str, when: str
    ) -> tuple[Prior, ...]:
        """The patient's other studies at the facility up to this one, newest first."""
        if not patient_id:
            return ()
        rows = self.archive.search(
            Query(
                Level.STUDY,
                matches={"PatientID": Exact(patient_id)},
                returns={"StudyDate", "ModalitiesInStudy", "StudyDescription"},
                facility_ids=frozenset({facility_id}),
                limit=PRIORS + 1,
                newest_first=True,
            )
        )
        priors = []
        for row in rows:
            if _text(row.get("StudyInstanceUID")) == study_uid:
                continue
            day = dicom_date(_text(row.get("StudyDate")))
            if day is None or (when and _text(row.get("StudyDate")) > when):
                continue
            modalities = listed_modalities(row.get("ModalitiesInStudy"))
            priors.append(
                Prior(
                    day,
                    modalities[0] if modalities else "",
                    _text(row.get("StudyDescription")),
                    _text(row.get("StudyInstanceUID")),
                )
            )
        return tuple(priors[:PRIORS])
