"""The index: SQL over the tables, behind the ``Index`` port."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    and_,
    func,
    insert,
    or_,
    select,
    update,
)

from telerad.domain.model import (
    Facility,
    InstanceHeader,
    InstanceLocation,
    Level,
    Node,
    StoredObject,
)
from telerad.domain.query import (
    ATTRIBUTES,
    Exact,
    Match,
    Query,
    QueryError,
    Range,
    UidList,
    Wildcard,
    like_pattern,
    normalise_person_name,
)
from telerad.storage.db import tables as t
from telerad.storage.db.writer import InstanceWriter, modalities_from_db

# keyword -> column holding it
COLUMNS: dict[str, ColumnElement[Any]] = {
    "PatientName": t.patient.c.patient_name,
    "PatientID": t.patient.c.patient_id,
    "PatientBirthDate": t.patient.c.birth_date,
    "PatientSex": t.patient.c.sex,
    "NumberOfPatientRelatedStudies": t.patient.c.num_studies,
    "StudyInstanceUID": t.study.c.study_instance_uid,
    "StudyDate": t.study.c.study_date,
    "StudyTime": t.study.c.study_time,
    "AccessionNumber": t.study.c.accession_number,
    "StudyID": t.study.c.study_id,
    "StudyDescription": t.study.c.study_description,
    "ReferringPhysicianName": t.study.c.referring_physician_name,
    "InstitutionName": t.study.c.institution_name,
    "ModalitiesInStudy": t.study.c.modalities,
    "NumberOfStudyRelatedSeries": t.study.c.num_series,
    "NumberOfStudyRelatedInstances": t.study.c.num_instances,
    "SeriesInstanceUID": t.series.c.series_instance_uid,
    "Modality": t.series.c.modality,
    "SeriesNumber": t.series.c.series_number,
    "SeriesDescription": t.series.c.series_description,
    "SeriesDate": t.series.c.series_date,
    "SeriesTime": t.series.c.series_time,
    "BodyPartExamined": t.series.c.body_part,
    "NumberOfSeriesRelatedInstances": t.series.c.num_instances,
    "SOPInstanceUID": t.instance.c.sop_instance_uid,
    "SOPClassUID": t.instance.c.sop_class_uid,
    "InstanceNumber": t.instance.c.instance_number,
    "Rows": t.instance.c.rows,
    "Columns": t.instance.c.columns,
    "NumberOfFrames": t.instance.c.number_of_frames,
    "AvailableTransferSyntaxUID": t.instance.c.transfer_syntax_uid,
}
INTEGER_KEYS = {k for k, a in ATTRIBUTES.items() if a.vr in ("IS", "US")}


def _condition(keyword: str, match: Match, fuzzy: bool) -> ColumnElement[bool]:
    col = COLUMNS[keyword]
    if keyword == "ModalitiesInStudy":
        values = match.uids if isinstance(match, UidList) else (getattr(match, "value", None),)
        if isinstance(match, Wildcard):
            return col.like("%/" + like_pattern(match.pattern) + "/%", escape="\\")
        return or_(*(col.like("%/" + like_pattern(str(v)) + "/%", escape="\\") for v in values))
    if keyword in INTEGER_KEYS:
        if isinstance(match, Exact):
            try:
                return col == int(match.value)
            except ValueError as exc:
                raise QueryError(f"{keyword} must be a number, not '{match.value}'") from exc
        if isinstance(match, UidList):
            try:
                return col.in_([int(v) for v in match.uids])
            except ValueError as exc:
                raise QueryError(f"{keyword} must be numbers") from exc
        raise QueryError(f"{keyword} does not support wildcard or range matching")
    if ATTRIBUTES[keyword].vr == "PN":
        norm = t.patient.c.patient_name_norm if keyword == "PatientName" else func.upper(col)
        if isinstance(match, (Exact, Wildcard)):
            raw = match.value if isinstance(match, Exact) else match.pattern
            text = normalise_person_name(raw)
            if isinstance(match, Exact) and not fuzzy:
                return norm == text
            pattern = like_pattern(text if isinstance(match, Wildcard) else text + "*")
            if fuzzy:
                return or_(norm.like(pattern, escape="\\"), norm.like("% " + pattern, escape="\\"))
            return norm.like(pattern, escape="\\")
    if isinstance(match, Exact):
        return col == match.value
    if isinstance(match, Wildcard):
        return col.like(like_pattern(match.pattern), escape="\\")
    if isinstance(match, UidList):
        return col.in_(match.uids)
    if isinstance(match, Range):
        parts = [col != ""]
        if match.low:
            parts.append(col >= match.low)
        if match.high:
            # A time range's upper bound includes its whole last second/minute.
            high = match.high if ATTRIBUTES[keyword].vr != "TM" else match.high + "\uffff"
            parts.append(col <= high)
        return and_(*parts)
    raise QueryError(f"cannot match {keyword}")


def _row_to_location(row: Any) -> InstanceLocation:
    return InstanceLocation(
        facility_id=row.facility_id,
        study_instance_uid=row.study_instance_uid,
        series_instance_uid=row.series_instance_uid,
        sop_instance_uid=row.sop_instance_uid,
        sop_class_uid=row.sop_class_uid,
        transfer_syntax_uid=row.transfer_syntax_uid,
        blob_key=row.blob_key,
        sha256=row.sha256,
        size=row.size,
        number_of_frames=row.number_of_frames,
        instance_number=row.instance_number,
    )


_LOCATION_COLUMNS = (
    t.study.c.facility_id,
    t.study.c.study_instance_uid,
    t.series.c.series_instance_uid,
    t.instance.c.sop_instance_uid,
    t.instance.c.sop_class_uid,
    t.instance.c.transfer_syntax_uid,
    t.instance.c.blob_key,
    t.instance.c.sha256,
    t.instance.c.size,
    t.instance.c.number_of_frames,
    t.instance.c.instance_number,
)
_LOCATION_FROM = t.instance.join(t.series, t.instance.c.series_pk == t.series.c.id).join(
    t.study, t.series.c.study_pk == t.study.c.id
)


def _scope(owner: Any, facility_ids: frozenset[int], granted: frozenset[str]) -> Any:
    """Rows of these facilities, plus the studies granted by break-glass."""
    within = owner.in_(sorted(facility_ids))
    if not granted:
        return within
    return or_(within, t.study.c.study_instance_uid.in_(sorted(granted)))


def _facility_from(row: Any) -> Facility:
    return Facility(
        row.id,
        row.name,
        row.ae_title,
        row.host,
        row.country,
        row.state,
        row.region,
        row.cert_sha256,
    )


def _node_from(row: Any) -> Node:
    return Node(row.ae_title, row.host, row.port, row.facility_id, row.id, row.cert_sha256)


class SqlIndex:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.writer = InstanceWriter(engine)

    # -- facilities and nodes -------------------------------------------------
    def add_facility(self, name: str, ae_title: str | None = None, **details: str) -> Facility:
        """A new facility; ``details`` are host, country, state, region, cert_sha256."""
        with self.engine.begin() as conn:
            pk = conn.execute(
                insert(t.facility)
                .values(name=name, ae_title=ae_title, **details)
                .returning(t.facility.c.id)
            ).scalar_one()
        return Facility(pk, name, ae_title, **details)

    def update_facility(self, facility_id: int, **values: str | None) -> Facility:
        with self.engine.begin() as conn:
            conn.execute(update(t.facility).where(t.facility.c.id == facility_id).values(**values))
        found = self.facility_by_id(facility_id)
        assert found is not None
        return found

    def _facility(self, where: ColumnElement[bool]) -> Facility | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.facility).where(where)).first()
        return _facility_from(row) if row else None

    def facility_by_name(self, name: str) -> Facility | None:
        return self._facility(t.facility.c.name == name)

    def facility_by_ae(self, ae_title: str) -> Facility | None:
        return self._facility(t.facility.c.ae_title == ae_title)

    def facility_by_id(self, facility_id: int) -> Facility | None:
        return self._facility(t.facility.c.id == facility_id)

    def list_facilities(self) -> list[Facility]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.facility).order_by(t.facility.c.name)).all()
        return [_facility_from(r) for r in rows]

    def add_node(self, node: Node) -> Node:
        values = dict(
            ae_title=node.ae_title,
            host=node.host,
            port=node.port,
            facility_id=node.facility_id,
            cert_sha256=node.cert_sha256,
        )
        with self.engine.begin() as conn:
            existing = conn.execute(
                select(t.node.c.id).where(t.node.c.ae_title == node.ae_title)
            ).scalar()
            if existing is None:
                pk = conn.execute(insert(t.node).values(**values).returning(t.node.c.id)).scalar()
            else:
                conn.execute(update(t.node).where(t.node.c.id == existing).values(**values))
                pk = existing
        return Node(node.ae_title, node.host, node.port, node.facility_id, pk, node.cert_sha256)

    def node_by_ae(self, ae_title: str) -> Node | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(t.node).where(t.node.c.ae_title == ae_title)).first()
        return _node_from(r) if r else None

    def list_nodes(self) -> list[Node]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.node).order_by(t.node.c.ae_title)).all()
        return [_node_from(r) for r in rows]

    # -- instances ---------------------------------------------------------------
    def find_instance(self, sop_instance_uid: str) -> InstanceLocation | None:
        stmt = (
            select(*_LOCATION_COLUMNS)
            .select_from(_LOCATION_FROM)
            .where(t.instance.c.sop_instance_uid == sop_instance_uid)
        )
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return _row_to_location(row) if row else None

    def study_facility(self, study_instance_uid: str) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(t.study.c.facility_id).where(
                    t.study.c.study_instance_uid == study_instance_uid
                )
            ).scalar()

    def study_facilities(self, study_instance_uids: Sequence[str]) -> dict[str, int]:
        """The facility of each of these studies that exists, in one query."""
        if not study_instance_uids:
            return {}
        s = t.study.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(s.study_instance_uid, s.facility_id).where(
                    s.study_instance_uid.in_(sorted(set(study_instance_uids)))
                )
            ).all()
        return {r.study_instance_uid: r.facility_id for r in rows}

    def add_instance(
        self,
        facility_id: int,
        header: InstanceHeader,
        blob: StoredObject,
        before_commit: Callable[[], None] | None = None,
    ) -> bool:
        return self.writer.add(facility_id, header, blob, before_commit)

    def add_instances(
        self, facility_id: int, items: Sequence[tuple[InstanceHeader, StoredObject]]
    ) -> bool:
        return self.writer.add_many(facility_id, items)

    # -- queries -----------------------------------------------------------------
    def _base(self, level: Level) -> Select[Any]:
        if level is Level.PATIENT:
            return select().select_from(t.patient)
        frm: Any = t.study.join(t.patient, t.study.c.patient_pk == t.patient.c.id)
        if level in (Level.SERIES, Level.IMAGE):
            frm = frm.join(t.series, t.series.c.study_pk == t.study.c.id)
        if level is Level.IMAGE:
            frm = frm.join(t.instance, t.instance.c.series_pk == t.series.c.id)
        return select().select_from(frm)

    def search(self, query: Query) -> list[dict[str, object]]:
        keys = query.return_keys()
        stmt = self._base(query.level).add_columns(*(COLUMNS[k].label(k) for k in keys))
        for keyword, match in query.matches.items():
            if ATTRIBUTES[keyword].level not in _allowed_levels(query.level):
                raise QueryError(f"{keyword} cannot be matched at the {query.level} level")
            stmt = stmt.where(_condition(keyword, match, query.fuzzy))
        if query.facility_ids is not None:
            if query.level is Level.PATIENT:
                stmt = stmt.where(t.patient.c.facility_id.in_(sorted(query.facility_ids)))
            else:
                stmt = stmt.where(
                    _scope(t.study.c.facility_id, query.facility_ids, query.granted_studies)
                )
        order = {
            Level.PATIENT: t.patient.c.id,
            Level.STUDY: t.study.c.id,
            Level.SERIES: t.series.c.id,
            Level.IMAGE: t.instance.c.id,
        }[query.level]
        if query.newest_first and query.level is Level.STUDY:
            s = t.study.c
            stmt = stmt.order_by(s.study_date.desc(), s.study_time.desc(), s.id.desc())
        else:
            stmt = stmt.order_by(order)
        if query.limit is not None:
            stmt = stmt.limit(query.limit)
        if query.offset:
            stmt = stmt.offset(query.offset)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        out = []
        for row in rows:
            item = dict(row)
            if "ModalitiesInStudy" in item:
                item["ModalitiesInStudy"] = modalities_from_db(str(item["ModalitiesInStudy"]))
            out.append(item)
        return out

    def instances(
        self,
        level: Level,
        uids: Sequence[str],
        facility_ids: frozenset[int] | None = None,
    ) -> list[InstanceLocation]:
        frm = _LOCATION_FROM
        key = {
            Level.STUDY: t.study.c.study_instance_uid,
            Level.SERIES: t.series.c.series_instance_uid,
            Level.IMAGE: t.instance.c.sop_instance_uid,
        }.get(level)
        if level is Level.PATIENT:
            frm = frm.join(t.patient, t.study.c.patient_pk == t.patient.c.id)
            key = t.patient.c.patient_id
        assert key is not None
        stmt = select(*_LOCATION_COLUMNS).select_from(frm).where(key.in_(list(uids)))
        if facility_ids is not None:
            stmt = stmt.where(t.study.c.facility_id.in_(sorted(facility_ids)))
        stmt = stmt.order_by(
            t.series.c.series_number, t.series.c.id, t.instance.c.instance_number, t.instance.c.id
        )
        with self.engine.connect() as conn:
            return [_row_to_location(r) for r in conn.execute(stmt)]

    def get_metadata(self, sop_instance_uids: Sequence[str]) -> dict[str, str]:
        if not sop_instance_uids:
            return {}
        stmt = (
            select(t.instance.c.sop_instance_uid, t.instance_metadata.c.json)
            .select_from(
                t.instance_metadata.join(
                    t.instance, t.instance.c.id == t.instance_metadata.c.instance_pk
                )
            )
            .where(t.instance.c.sop_instance_uid.in_(list(sop_instance_uids)))
        )
        with self.engine.connect() as conn:
            return {r[0]: r[1] for r in conn.execute(stmt)}

    def put_metadata(self, items: dict[str, str]) -> None:
        if not items:
            return
        with self.writer.writing(), self.engine.begin() as conn:
            pks = dict(
                conn.execute(
                    select(t.instance.c.sop_instance_uid, t.instance.c.id).where(
                        t.instance.c.sop_instance_uid.in_(list(items))
                    )
                ).all()
            )
            have = set(
                conn.execute(
                    select(t.instance_metadata.c.instance_pk).where(
                        t.instance_metadata.c.instance_pk.in_(list(pks.values()))
                    )
                ).scalars()
            )
            rows = [
                {"instance_pk": pks[uid], "json": js}
                for uid, js in items.items()
                if uid in pks and pks[uid] not in have
            ]
            if rows:
                conn.execute(insert(t.instance_metadata), rows)

    def iter_studies(self) -> Iterator[dict[str, object]]:
        yield from self.search(Query(Level.STUDY))

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
                for name, table in (
                    ("patients", t.patient),
                    ("studies", t.study),
                    ("series", t.series),
                    ("instances", t.instance),
                )
            }


def _allowed_levels(level: Level) -> set[Level]:
    from telerad.domain.query import LEVELS_UP_TO

    return set(LEVELS_UP_TO[level])
