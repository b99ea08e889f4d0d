"""The study list as people browse it: newest first, with facility, age, sex and read status.

One page is a handful of queries whatever its length: the studies (the same
search use case as C-FIND and QIDO-RS, scoped to the caller and audited), their
facilities in one batch, and their latest reads on the worklist. Search terms are
never logged (they are PHI); the audit trail names them, as it does a QIDO-RS query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from telerad.domain.demographics import patient_age, sex_label
from telerad.domain.identity import Principal
from telerad.domain.model import Facility, Level
from telerad.domain.query import (
    Match,
    Query,
    QueryError,
    Range,
    UidList,
    Wildcard,
    parse_match,
    typed_person_name,
)
from telerad.domain.read_status import read_status
from telerad.services.access_audit import Actor
from telerad.services.ports import Index, ReadingStore
from telerad.services.studies import Scope, Studies

_ISO_DATE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")


@dataclass(frozen=True)
class StudySearch:
    """The study list's search form, as typed by the user."""

    patient_name: str = ""
    patient_id: str = ""
    accession: str = ""
    date_from: str = ""
    date_to: str = ""
    modality: str = ""
    facility: str = ""  # a facility id, for those who see several

    def matches(self) -> dict[str, Match]:
        """The form as DICOM matching keys; raises QueryError on a value that makes no sense."""
        out: dict[str, Match] = {}
        if self.patient_name.strip():
            # As the list shows names ("DOE, JANE"), or as DICOM has them ("DOE^JANE").
            out["PatientName"] = Wildcard(_prefix(typed_person_name(self.patient_name.strip())))
        for keyword, raw in (("PatientID", self.patient_id), ("AccessionNumber", self.accession)):
            match = parse_match(keyword, _prefix(raw.strip()) if raw.strip() else None)
            if match is not None:
                out[keyword] = match
        low, high = _dicom_date(self.date_from), _dicom_date(self.date_to)
        if low and high and low > high:
            raise QueryError("the 'from' date is after the 'to' date")
        if low or high:
            out["StudyDate"] = Range(low, high)
        if self.modality.strip():
            out["ModalitiesInStudy"] = UidList((self.modality.strip().upper(),))
        return out

    def facility_id(self) -> int | None:
        if not self.facility.strip():
            return None
        if not self.facility.strip().isdigit():
            raise QueryError(f"'{self.facility}' is not a facility")
        return int(self.facility)


def _prefix(value: str) -> str:
    """What a person types in a search box means 'starts with', unless it has wildcards."""
    return value if ("*" in value or "?" in value) else value + "*"


def _dicom_date(value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    found = _ISO_DATE.match(value)
    if not found:
        raise QueryError(f"'{value}' is not a date (YYYY-MM-DD)")
    return "".join(found.groups())


@dataclass(frozen=True)
class StudyRow:
    uid: str
    patient_name: str  # DICOM PN
    patient_id: str
    study_date: str  # DICOM DA
    study_time: str  # DICOM TM
    modalities: tuple[str, ...]
    description: str
    accession: str
    series: int
    instances: int
    facility: str
    age: str  # at the study: "47 y", "3 mo", "12 d"
    sex: str
    read_status: str


@dataclass(frozen=True)
class StudyPage:
    rows: list[StudyRow]
    has_next: bool
    #: The facilities the caller sees, by name (the facility filter offers them).
    facilities: list[Facility]
    #: Why the search could not run ("" when it did).
    error: str = ""


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _number(value: object) -> int:
    return value if isinstance(value, int) else 0


def listed_modalities(value: object) -> tuple[str, ...]:
    """ModalitiesInStudy as a search returns it (a list), as a tuple; () when absent."""
    return tuple(str(m) for m in value) if isinstance(value, list | tuple) else ()


class StudyList:
    def __init__(self, studies: Studies, index: Index, reads: ReadingStore) -> None:
        self.studies = studies
        self.index = index
        self.reads = reads

    def page(
        self, who: Principal, search: StudySearch, page: int = 1, size: int = 25, *, by: Actor
    ) -> StudyPage:
        """One page of the studies ``who`` sees that match ``search``, newest first; a
        search that makes no sense gives no rows and the reason. The search is audited
        (a Query by ``by``) like any other."""
        facilities = self.index.list_facilities()
        visible = [f for f in facilities if who.sees(f.id)]
        try:
            matches, facility_id = search.matches(), search.facility_id()
        except QueryError as exc:
            return StudyPage([], False, visible, str(exc))
        scope = Scope.of(who)
        if facility_id is not None:
            scope = scope.only(facility_id)
        query = Query(
            Level.STUDY,
            matches=matches,
            fuzzy=True,
            limit=size + 1,  # one more tells whether there is a next page
            offset=(page - 1) * size,
            newest_first=True,
        )
        terms = ", ".join(f"{k}={v}" for k, v in vars(search).items() if v) or "all"
        try:
            found = self.studies.search(by, scope, query, f"study list: {terms} (page {page})")
        except QueryError as exc:
            return StudyPage([], False, visible, str(exc))
        shown = found[:size]
        uids = [str(s["StudyInstanceUID"]) for s in shown]
        owners = self.index.study_facilities(uids)
        reads = self.reads.read_states(uids)
        names = {f.id: f.name for f in facilities}
        rows = []
        for uid, study in zip(uids, shown, strict=True):
            owner = owners.get(uid)
            date = _text(study.get("StudyDate"))
            rows.append(
                StudyRow(
                    uid=uid,
                    patient_name=_text(study.get("PatientName")),
                    patient_id=_text(study.get("PatientID")),
                    study_date=date,
                    study_time=_text(study.get("StudyTime")),
                    modalities=listed_modalities(study.get("ModalitiesInStudy")),
                    description=_text(study.get("StudyDescription")),
                    accession=_text(study.get("AccessionNumber")),
                    series=_number(study.get("NumberOfStudyRelatedSeries")),
                    instances=_number(study.get("NumberOfStudyRelatedInstances")),
                    facility=names.get(owner, "") if owner is not None else "",
                    age=patient_age(_text(study.get("PatientBirthDate")), date),
                    sex=sex_label(_text(study.get("PatientSex"))),
                    read_status=read_status(reads.get(uid)),
                )
            )
        return StudyPage(rows, len(found) > size, visible)
