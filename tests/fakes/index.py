"""An in-memory archive index (the real one: storage.db.index_repository.SqlIndex).

Facilities, nodes, and the patient → study → series → instance rows that
:meth:`add_instance` brings, with the SQL writer's rules: a SOP Instance UID is
indexed once (a second is refused: False), a study belongs to one facility and
a series to one study (else :class:`ConflictingHierarchy`), a batch is kept
whole or not at all, and every stored instance stamps its study's ``updated_at``
(with the fake's clock where the database uses its own). Names of facilities
and AE titles are unique (``sqlalchemy.exc.IntegrityError``).

:meth:`search` answers a :class:`~telerad.domain.query.Query` with the matching
rules of the SQL index, built on the domain's own pieces (attributes and their
levels, person name normalisation, return keys): single values, wildcards,
ranges, UID lists, fuzzy person names, ModalitiesInStudy, facility scope with
break-glass grants, the index's order or newest first, limit and offset.
Wildcards match case-sensitively outside person names (as the index's
databases are set up to). Where the databases disagree the fake takes one
side: instances without a series or instance number come first (SQLite;
PostgreSQL puts NULLs last).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from tests.fakes.common import duplicate, ids

from telerad.domain.model import (
    ConflictingHierarchy,
    Facility,
    InstanceHeader,
    InstanceLocation,
    Level,
    Node,
    StoredObject,
)
from telerad.domain.orders import PatientDemographics
from telerad.domain.query import (
    ATTRIBUTES,
    LEVELS_UP_TO,
    Exact,
    Match,
    Query,
    QueryError,
    Range,
    UidList,
    Wildcard,
    normalise_person_name,
)


@dataclass
class PatientRow:
    pk: int
    facility_id: int
    patient_id: str
    name: str = ""
    name_norm: str = ""
    birth_date: str = ""
    sex: str = ""
    num_studies: int = 0


@dataclass
class StudyRow:
    pk: int
    facility_id: int
    patient_pk: int
    uid: str
    date: str
    time: str
    accession: str
    study_id: str
    description: str
    referring: str
    institution: str
    charset: str
    updated_at: datetime
    modalities: str = ""  # "/CT/SR/", as the SQL column
    num_series: int = 0
    num_instances: int = 0


@dataclass
class SeriesRow:
    pk: int
    study_pk: int
    uid: str
    modality: str
    number: int | None
    description: str
    date: str
    time: str
    body_part: str
    num_instances: int = 0


@dataclass
class InstanceRow:
    pk: int
    series_pk: int
    uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    number: int | None
    rows: int | None
    columns: int | None
    frames: int | None
    blob: StoredObject
    origin: str


def modalities_column(mods: Sequence[str]) -> str:
    return "/" + "/".join(sorted(set(mods))) + "/" if mods else ""


def _pattern(wildcard: str) -> re.Pattern[str]:
    """A DICOM wildcard (``*``, ``?``) as a regular expression matching the whole value."""
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in wildcard)
    return re.compile("".join(parts), re.DOTALL)


_INTEGER_KEYS = {k for k, a in ATTRIBUTES.items() if a.vr in ("IS", "US")}


def _matches(keyword: str, match: Match, fuzzy: bool, row: dict[str, Any]) -> bool:
    """Whether one row's value meets one matching key, as SqlIndex's condition does."""
    value = row[keyword]
    if keyword == "ModalitiesInStudy":  # the column is "/CT/SR/": LIKE '%/value/%'
        if isinstance(match, Wildcard):
            return _pattern("*/" + match.pattern + "/*").fullmatch(value) is not None
        wanted = match.uids if isinstance(match, UidList) else (getattr(match, "value", None),)
        return any(f"/{w}/" in value for w in wanted)
    if keyword in _INTEGER_KEYS:
        return value is not None and value in _numbers(keyword, match)
    if ATTRIBUTES[keyword].vr == "PN" and isinstance(match, (Exact, Wildcard)):
        norm = row["_name_norm"] if keyword == "PatientName" else value.upper()
        raw = match.value if isinstance(match, Exact) else match.pattern
        text = normalise_person_name(raw)
        if isinstance(match, Exact) and not fuzzy:
            return bool(norm == text)
        pattern = _pattern(text if isinstance(match, Wildcard) else text + "*")
        if fuzzy:  # the name, or any of its later parts, starts so
            return any(pattern.fullmatch(norm[i:]) for i in _word_starts(norm))
        return pattern.fullmatch(norm) is not None
    if isinstance(match, Exact):
        return bool(value == match.value)
    if isinstance(match, Wildcard):
        return _pattern(match.pattern).fullmatch(value) is not None
    if isinstance(match, UidList):
        return value in match.uids
    if isinstance(match, Range):
        if value == "":
            return False
        high = match.high
        if high and ATTRIBUTES[keyword].vr == "TM":
            high += "\uffff"  # the whole last second/minute
        return (not match.low or value >= match.low) and (not high or value <= high)
    raise QueryError(f"cannot match {keyword}")


def _numbers(keyword: str, match: Match) -> set[int]:
    """The values an integer attribute may have, or the SQL index's QueryError."""
    if isinstance(match, Exact):
        try:
            return {int(match.value)}
        except ValueError as exc:
            raise QueryError(f"{keyword} must be a number, not '{match.value}'") from exc
    if isinstance(match, UidList):
        try:
            return {int(v) for v in match.uids}
        except ValueError as exc:
            raise QueryError(f"{keyword} must be numbers") from exc
    raise QueryError(f"{keyword} does not support wildcard or range matching")


def _word_starts(text: str) -> list[int]:
    return [0] + [i + 1 for i, c in enumerate(text) if c == " "]


class FakeIndex:
    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.clock = clock
        self.facilities: dict[int, Facility] = {}
        self.nodes: dict[int, Node] = {}
        self.patients: dict[int, PatientRow] = {}
        self.studies: dict[int, StudyRow] = {}
        self.series: dict[int, SeriesRow] = {}
        self.instances_: dict[int, InstanceRow] = {}
        self.metadata: dict[str, str] = {}
        self._ids = {name: ids() for name in ("facility", "node", "patient", "study", "series")}
        self._instance_ids = ids()

    # -- facilities and nodes -------------------------------------------------
    def _unique_facility(self, name: str, ae_title: str | None, pk: int = 0) -> None:
        for f in self.facilities.values():
            if f.id != pk and f.name == name:
                raise duplicate("facility.name")
            if f.id != pk and ae_title is not None and f.ae_title == ae_title:
                raise duplicate("facility.ae_title")

    def add_facility(self, name: str, ae_title: str | None = None, **details: str) -> Facility:
        self._unique_facility(name, ae_title)
        facility = Facility(next(self._ids["facility"]), name, ae_title, **details)
        self.facilities[facility.id] = facility
        return facility

    def update_facility(self, facility_id: int, **values: str | None) -> Facility:
        updated = replace(self.facilities[facility_id], **values)  # type: ignore[arg-type]
        self._unique_facility(updated.name, updated.ae_title, facility_id)
        self.facilities[facility_id] = updated
        return updated

    def facility_by_name(self, name: str) -> Facility | None:
        return next((f for f in self.facilities.values() if f.name == name), None)

    def facility_by_ae(self, ae_title: str) -> Facility | None:
        return next((f for f in self.facilities.values() if f.ae_title == ae_title), None)

    def facility_by_id(self, facility_id: int) -> Facility | None:
        return self.facilities.get(facility_id)

    def list_facilities(self) -> list[Facility]:
        return sorted(self.facilities.values(), key=lambda f: f.name)

    def add_node(self, node: Node) -> Node:
        known = self.node_by_ae(node.ae_title)
        pk = known.id if known is not None and known.id is not None else next(self._ids["node"])
        stored = replace(node, id=pk)
        self.nodes[pk] = stored
        return stored

    def node_by_ae(self, ae_title: str) -> Node | None:
        return next((n for n in self.nodes.values() if n.ae_title == ae_title), None)

    def list_nodes(self) -> list[Node]:
        return sorted(self.nodes.values(), key=lambda n: n.ae_title)

    # -- instances ---------------------------------------------------------------
    def _study_by_uid(self, uid: str) -> StudyRow | None:
        return next((s for s in self.studies.values() if s.uid == uid), None)

    def _series_by_uid(self, uid: str) -> SeriesRow | None:
        return next((s for s in self.series.values() if s.uid == uid), None)

    def _instance_by_uid(self, uid: str) -> InstanceRow | None:
        return next((i for i in self.instances_.values() if i.uid == uid), None)

    def _location(self, i: InstanceRow) -> InstanceLocation:
        se = self.series[i.series_pk]
        st = self.studies[se.study_pk]
        return InstanceLocation(
            facility_id=st.facility_id,
            study_instance_uid=st.uid,
            series_instance_uid=se.uid,
            sop_instance_uid=i.uid,
            sop_class_uid=i.sop_class_uid,
            transfer_syntax_uid=i.transfer_syntax_uid,
            blob_key=i.blob.key,
            sha256=i.blob.sha256,
            size=i.blob.size,
            number_of_frames=i.frames,
            instance_number=i.number,
        )

    def find_instance(self, sop_instance_uid: str) -> InstanceLocation | None:
        found = self._instance_by_uid(sop_instance_uid)
        return self._location(found) if found else None

    def study_facility(self, study_instance_uid: str) -> int | None:
        found = self._study_by_uid(study_instance_uid)
        return found.facility_id if found else None

    def study_facilities(self, study_instance_uids: Sequence[str]) -> dict[str, int]:
        wanted = set(study_instance_uids)
        return {s.uid: s.facility_id for s in self.studies.values() if s.uid in wanted}

    def _refused(
        self, facility_id: int, items: Sequence[tuple[InstanceHeader, StoredObject]]
    ) -> str | None:
        """Why the writer would refuse these items together ("sop" or "hierarchy"), or None."""
        sops: set[str] = set()
        study_owner = {s.uid: s.facility_id for s in self.studies.values()}
        series_owner = {se.uid: self.studies[se.study_pk].uid for se in self.series.values()}
        for h, _ in items:
            if h.StudyInstanceUID in study_owner and study_owner[h.StudyInstanceUID] != facility_id:
                return "hierarchy"
            study_owner[h.StudyInstanceUID] = facility_id
            owner = series_owner.setdefault(h.SeriesInstanceUID, h.StudyInstanceUID)
            if owner != h.StudyInstanceUID:
                return "hierarchy"
            if h.SOPInstanceUID in sops or self._instance_by_uid(h.SOPInstanceUID) is not None:
                return "sop"
            sops.add(h.SOPInstanceUID)
        return None

    def add_instance(
        self,
        facility_id: int,
        header: InstanceHeader,
        blob: StoredObject,
        before_commit: Callable[[], None] | None = None,
    ) -> bool:
        why = self._refused(facility_id, [(header, blob)])
        if why == "hierarchy":
            study = self._study_by_uid(header.StudyInstanceUID)
            if study is not None and study.facility_id != facility_id:
                raise ConflictingHierarchy("the StudyInstanceUID is already in use elsewhere")
            raise ConflictingHierarchy("the SeriesInstanceUID already belongs to another study")
        if why == "sop":
            return False
        if before_commit is not None:
            before_commit()  # raising here keeps nothing, as a rolled-back transaction
        self._write(facility_id, header, blob)
        return True

    def add_instances(
        self, facility_id: int, items: Sequence[tuple[InstanceHeader, StoredObject]]
    ) -> bool:
        if self._refused(facility_id, items) is not None:
            return False
        for header, blob in items:
            self._write(facility_id, header, blob)
        return True

    def _write(self, facility_id: int, h: InstanceHeader, blob: StoredObject) -> None:
        study = self._study_by_uid(h.StudyInstanceUID) or self._new_study(facility_id, h)
        series = self._series_by_uid(h.SeriesInstanceUID) or self._new_series(study, h)
        pk = next(self._instance_ids)
        self.instances_[pk] = InstanceRow(
            pk, series.pk, h.SOPInstanceUID, h.SOPClassUID, h.TransferSyntaxUID,
            h.InstanceNumber, h.Rows, h.Columns, h.NumberOfFrames, blob, h.origin,
        )  # fmt: skip
        series.num_instances += 1
        study.num_instances += 1
        study.updated_at = self.clock()

    def _new_study(self, facility_id: int, h: InstanceHeader) -> StudyRow:
        patient = self._patient(facility_id, h.PatientID)
        if patient is None:
            patient = PatientRow(
                next(self._ids["patient"]), facility_id, h.PatientID, h.PatientName,
                normalise_person_name(h.PatientName), h.PatientBirthDate, h.PatientSex,
            )  # fmt: skip
            self.patients[patient.pk] = patient
        study = StudyRow(
            next(self._ids["study"]), facility_id, patient.pk, h.StudyInstanceUID, h.StudyDate,
            h.StudyTime, h.AccessionNumber, h.StudyID, h.StudyDescription,
            h.ReferringPhysicianName, h.InstitutionName, h.SpecificCharacterSet, self.clock(),
        )  # fmt: skip
        self.studies[study.pk] = study
        patient.num_studies += 1
        return study

    def _new_series(self, study: StudyRow, h: InstanceHeader) -> SeriesRow:
        series = SeriesRow(
            next(self._ids["series"]), study.pk, h.SeriesInstanceUID, h.Modality,
            h.SeriesNumber, h.SeriesDescription, h.SeriesDate, h.SeriesTime, h.BodyPartExamined,
        )  # fmt: skip
        self.series[series.pk] = series
        study.num_series += 1
        study.modalities = modalities_column(
            [s.modality for s in self.series.values() if s.study_pk == study.pk and s.modality]
        )
        return series

    def _patient(self, facility_id: int, patient_id: str) -> PatientRow | None:
        return next(
            (
                p
                for p in self.patients.values()
                if p.facility_id == facility_id and p.patient_id == patient_id
            ),
            None,
        )

    # -- what other fakes read and write of the index ----------------------------------
    def instances_of_study(self, study_pk: int) -> Iterator[tuple[SeriesRow, InstanceRow]]:
        for i in self.instances_.values():
            se = self.series[i.series_pk]
            if se.study_pk == study_pk:
                yield se, i

    def repatient(self, facility_id: int, patient_id: str, patient: PatientDemographics) -> None:
        """An ADT update or merge reaches the index (SqlOrders' ``_repatient_studies``)."""
        details: dict[str, Any] = {}
        if patient.name:
            details.update(name=patient.name, name_norm=normalise_person_name(patient.name))
        if patient.birth_date:
            details["birth_date"] = patient.birth_date
        if patient.sex:
            details["sex"] = patient.sex
        prior = self._patient(facility_id, patient_id)
        if prior is None:
            return
        if patient_id == patient.patient_id:
            self.patients[prior.pk] = replace(prior, **details)
            return
        surviving = self._patient(facility_id, patient.patient_id)
        if surviving is None:
            surviving = PatientRow(next(self._ids["patient"]), facility_id, patient.patient_id)
        surviving = replace(surviving, **details)
        self.patients[surviving.pk] = surviving
        moved = [s for s in self.studies.values() if s.patient_pk == prior.pk]
        for study in moved:
            study.patient_pk = surviving.pk
        prior.num_studies = 0
        surviving.num_studies += len(moved)

    # -- queries -----------------------------------------------------------------
    def _rows(self, level: Level) -> Iterator[tuple[int, dict[str, Any]]]:
        """(the level's primary key, every attribute by keyword) of each row at ``level``."""
        for p in self.patients.values():
            patient = {
                "PatientName": p.name, "PatientID": p.patient_id,
                "PatientBirthDate": p.birth_date, "PatientSex": p.sex,
                "NumberOfPatientRelatedStudies": p.num_studies,
                "_name_norm": p.name_norm, "_facility": p.facility_id, "_study": "",
            }  # fmt: skip
            if level is Level.PATIENT:
                yield p.pk, patient
                continue
            for st in self.studies.values():
                if st.patient_pk != p.pk:
                    continue
                study = patient | {
                    "StudyInstanceUID": st.uid, "StudyDate": st.date, "StudyTime": st.time,
                    "AccessionNumber": st.accession, "StudyID": st.study_id,
                    "StudyDescription": st.description, "ReferringPhysicianName": st.referring,
                    "InstitutionName": st.institution, "ModalitiesInStudy": st.modalities,
                    "NumberOfStudyRelatedSeries": st.num_series,
                    "NumberOfStudyRelatedInstances": st.num_instances,
                    "_facility": st.facility_id, "_study": st.uid,
                }  # fmt: skip
                if level is Level.STUDY:
                    yield st.pk, study
                    continue
                yield from self._series_rows(level, st.pk, study)

    def _series_rows(
        self, level: Level, study_pk: int, study: dict[str, Any]
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        for se in self.series.values():
            if se.study_pk != study_pk:
                continue
            series = study | {
                "SeriesInstanceUID": se.uid, "Modality": se.modality,
                "SeriesNumber": se.number, "SeriesDescription": se.description,
                "SeriesDate": se.date, "SeriesTime": se.time, "BodyPartExamined": se.body_part,
                "NumberOfSeriesRelatedInstances": se.num_instances,
            }  # fmt: skip
            if level is Level.SERIES:
                yield se.pk, series
                continue
            for i in self.instances_.values():
                if i.series_pk == se.pk:
                    yield i.pk, series | {
                        "SOPInstanceUID": i.uid, "SOPClassUID": i.sop_class_uid,
                        "InstanceNumber": i.number, "Rows": i.rows, "Columns": i.columns,
                        "NumberOfFrames": i.frames,
                        "AvailableTransferSyntaxUID": i.transfer_syntax_uid,
                    }  # fmt: skip

    def search(self, query: Query) -> list[dict[str, object]]:
        allowed = set(LEVELS_UP_TO[query.level])
        for keyword in query.matches:
            if ATTRIBUTES[keyword].level not in allowed:
                raise QueryError(f"{keyword} cannot be matched at the {query.level} level")
            if keyword in _INTEGER_KEYS:
                _numbers(keyword, query.matches[keyword])  # refused before any row is read
        found = []
        for pk, row in self._rows(query.level):
            if not all(_matches(k, m, query.fuzzy, row) for k, m in query.matches.items()):
                continue
            if query.facility_ids is not None and row["_facility"] not in query.facility_ids:
                granted = query.level is not Level.PATIENT and row["_study"] in (
                    query.granted_studies
                )
                if not granted:
                    continue
            found.append((pk, row))
        if query.newest_first and query.level is Level.STUDY:
            found.sort(key=lambda r: (r[1]["StudyDate"], r[1]["StudyTime"], r[0]), reverse=True)
        else:
            found.sort(key=lambda r: r[0])
        rows = found[query.offset :]
        if query.limit is not None:
            rows = rows[: query.limit]
        keys = query.return_keys()
        out: list[dict[str, object]] = []
        for _, row in rows:
            item = {k: row[k] for k in keys}
            if "ModalitiesInStudy" in item:
                item["ModalitiesInStudy"] = [
                    m for m in str(item["ModalitiesInStudy"]).split("/") if m
                ]
            out.append(item)
        return out

    def instances(
        self,
        level: Level,
        uids: Sequence[str],
        facility_ids: frozenset[int] | None = None,
    ) -> list[InstanceLocation]:
        wanted = set(uids)
        picked = []
        for i in self.instances_.values():
            se = self.series[i.series_pk]
            st = self.studies[se.study_pk]
            key = {
                Level.PATIENT: self.patients[st.patient_pk].patient_id,
                Level.STUDY: st.uid,
                Level.SERIES: se.uid,
                Level.IMAGE: i.uid,
            }[level]
            if key in wanted and (facility_ids is None or st.facility_id in facility_ids):
                picked.append((se, i))

        def order(pair: tuple[SeriesRow, InstanceRow]) -> tuple[Any, ...]:
            se, i = pair
            return (se.number is not None, se.number or 0, se.pk, i.number is not None,
                    i.number or 0, i.pk)  # fmt: skip

        return [self._location(i) for _, i in sorted(picked, key=order)]

    def get_metadata(self, sop_instance_uids: Sequence[str]) -> dict[str, str]:
        return {u: self.metadata[u] for u in sop_instance_uids if u in self.metadata}

    def put_metadata(self, items: dict[str, str]) -> None:
        for uid, js in items.items():  # the first kept: a later one changes nothing
            if uid not in self.metadata and self._instance_by_uid(uid) is not None:
                self.metadata[uid] = js

    def iter_studies(self) -> Iterator[dict[str, object]]:
        yield from self.search(Query(Level.STUDY))

    def counts(self) -> dict[str, int]:
        return {
            "patients": len(self.patients),
            "studies": len(self.studies),
            "series": len(self.series),
            "instances": len(self.instances_),
        }
