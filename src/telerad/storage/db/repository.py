"""The index: SQL over the tables, behind the ``Index`` port."""

from __future__ import annotations

import threading
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
from sqlalchemy.exc import IntegrityError

from telerad.domain.model import (
    ConflictingHierarchy,
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


def _modalities_to_db(mods: Sequence[str]) -> str:
    return "/" + "/".join(sorted(set(mods))) + "/" if mods else ""


def _modalities_from_db(value: str) -> list[str]:
    return [m for m in value.split("/") if m]


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


# The per-instance statements as plain SQL: building SQLAlchemy statements (and
# their cache keys) costs more than the database takes to run them. Portable
# SQL; the placeholder is swapped for the driver's.
_INSERT_INSTANCE_SQL = (
    "INSERT INTO instance (series_pk, sop_instance_uid, sop_class_uid, transfer_syntax_uid, "
    'instance_number, "rows", "columns", number_of_frames, blob_key, size, sha256) '
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_COUNT_SERIES_SQL = "UPDATE series SET num_instances = num_instances + 1 WHERE id = ?"
_COUNT_STUDY_SQL = (
    "UPDATE study SET num_instances = num_instances + 1, updated_at = CURRENT_TIMESTAMP "
    "WHERE id = ?"
)


def _known(
    conn: Any, cache: dict[str, tuple[int, int]], uid: str, lookup: Callable[[], Select[Any]]
) -> tuple[int, int]:
    """(primary key, owner key) of a study or series, from the cache or the index;
    (0, 0) when it is new. The query is built only on a cache miss (hot path)."""
    known = cache.get(uid)
    if known:
        return known
    row = conn.execute(lookup()).first()
    if not row:
        return (0, 0)
    # Committed before this transaction began: cached even if this one fails.
    cache[uid] = (row[0], row[1])
    return cache[uid]


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
        # SQLite has one writer; serialising here avoids busy retries.
        self._write_lock = threading.Lock() if engine.dialect.name == "sqlite" else None
        self._study_cache: dict[str, tuple[int, int]] = {}
        self._series_cache: dict[str, tuple[int, int]] = {}
        # The driver's own exception for a refused row (statements run on its cursor).
        dbapi = engine.dialect.dbapi
        self._refused: tuple[type[Exception], ...] = (IntegrityError,)
        if dbapi is not None:
            self._refused += (dbapi.IntegrityError,)
        self._marker = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._instance_sql = tuple(
            sql.replace("?", self._marker)
            for sql in (_INSERT_INSTANCE_SQL, _COUNT_SERIES_SQL, _COUNT_STUDY_SQL)
        )

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

    def add_instance(
        self,
        facility_id: int,
        header: InstanceHeader,
        blob: StoredObject,
        before_commit: Callable[[], None] | None = None,
    ) -> bool:
        if self._write_lock is None:
            return self._add_instance(facility_id, header, blob, before_commit)
        # SQLite has one writer: hold it across before_commit only when nobody
        # waits for it, else finish first and write after (parallel STOW-RS).
        if before_commit is not None and not self._write_lock.acquire(blocking=False):
            before_commit()
            before_commit = None
            self._write_lock.acquire()
        elif before_commit is None:
            self._write_lock.acquire()
        try:
            return self._add_instance(facility_id, header, blob, before_commit)
        finally:
            self._write_lock.release()

    def _add_instance(
        self,
        facility_id: int,
        h: InstanceHeader,
        blob: StoredObject,
        before_commit: Callable[[], None] | None = None,
    ) -> bool:
        try:
            with self.engine.begin() as conn:
                new_study, new_series = self._insert(conn, facility_id, h, blob)
                if before_commit is not None:
                    before_commit()
        except self._refused:
            # The unique SOP Instance UID (or a concurrent study/series insert)
            # refused the row; the caller decides between duplicate and conflict.
            self._study_cache.pop(h.StudyInstanceUID, None)
            self._series_cache.pop(h.SeriesInstanceUID, None)
            return False
        # Cache only what a committed transaction created.
        if new_study:
            self._study_cache[h.StudyInstanceUID] = new_study
        if new_series:
            self._series_cache[h.SeriesInstanceUID] = new_series
        return True

    def _insert(
        self, conn: Any, facility_id: int, h: InstanceHeader, blob: StoredObject
    ) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
        """Insert the instance row and whatever patient/study/series it brings."""
        new_study: tuple[int, int] | None = None
        new_series: tuple[int, int] | None = None
        study_pk, study_facility = _known(
            conn,
            self._study_cache,
            h.StudyInstanceUID,
            lambda: select(t.study.c.id, t.study.c.facility_id).where(
                t.study.c.study_instance_uid == h.StudyInstanceUID
            ),
        )
        if study_pk and study_facility != facility_id:
            raise ConflictingHierarchy(
                # Whose it is stays unsaid: tenants must not learn about each other.
                "the StudyInstanceUID is already in use elsewhere"
            )
        if not study_pk:
            patient_pk = self._patient_pk(conn, facility_id, h)
            study_pk = conn.execute(
                insert(t.study)
                .values(
                    facility_id=facility_id,
                    patient_pk=patient_pk,
                    study_instance_uid=h.StudyInstanceUID,
                    study_date=h.StudyDate,
                    study_time=h.StudyTime,
                    accession_number=h.AccessionNumber,
                    study_id=h.StudyID,
                    study_description=h.StudyDescription,
                    referring_physician_name=h.ReferringPhysicianName,
                    institution_name=h.InstitutionName,
                    specific_character_set=h.SpecificCharacterSet,
                )
                .returning(t.study.c.id)
            ).scalar_one()
            conn.execute(
                update(t.patient)
                .where(t.patient.c.id == patient_pk)
                .values(num_studies=t.patient.c.num_studies + 1)
            )
            new_study = (study_pk, facility_id)
        series_pk, series_study = _known(
            conn,
            self._series_cache,
            h.SeriesInstanceUID,
            lambda: select(t.series.c.id, t.series.c.study_pk).where(
                t.series.c.series_instance_uid == h.SeriesInstanceUID
            ),
        )
        if series_pk and series_study != study_pk:
            raise ConflictingHierarchy("the SeriesInstanceUID already belongs to another study")
        if not series_pk:
            series_pk = conn.execute(
                insert(t.series)
                .values(
                    study_pk=study_pk,
                    series_instance_uid=h.SeriesInstanceUID,
                    modality=h.Modality,
                    series_number=h.SeriesNumber,
                    series_description=h.SeriesDescription,
                    series_date=h.SeriesDate,
                    series_time=h.SeriesTime,
                    body_part=h.BodyPartExamined,
                )
                .returning(t.series.c.id)
            ).scalar_one()
            new_series = (series_pk, study_pk)
            mods = conn.execute(
                select(t.series.c.modality).where(t.series.c.study_pk == study_pk).distinct()
            ).scalars()
            conn.execute(
                update(t.study)
                .where(t.study.c.id == study_pk)
                .values(
                    num_series=t.study.c.num_series + 1,
                    modalities=_modalities_to_db([m for m in mods if m]),
                )
            )
        # The per-instance statements go straight to the driver's cursor: they
        # are fixed plain SQL, and SQLAlchemy's statement handling around them
        # cost more than running them.
        insert_sql, series_sql, study_sql = self._instance_sql
        cursor = conn.connection.cursor()
        try:
            cursor.execute(
                insert_sql,
                (
                    series_pk,
                    h.SOPInstanceUID,
                    h.SOPClassUID,
                    h.TransferSyntaxUID,
                    h.InstanceNumber,
                    h.Rows,
                    h.Columns,
                    h.NumberOfFrames,
                    blob.key,
                    blob.size,
                    blob.sha256,
                ),
            )
            cursor.execute(series_sql, (series_pk,))
            cursor.execute(study_sql, (study_pk,))
        finally:
            cursor.close()
        return new_study, new_series

    @staticmethod
    def _patient_pk(conn: Any, facility_id: int, h: InstanceHeader) -> int:
        pk = conn.execute(
            select(t.patient.c.id).where(
                t.patient.c.facility_id == facility_id, t.patient.c.patient_id == h.PatientID
            )
        ).scalar()
        if pk is not None:
            return int(pk)
        return int(
            conn.execute(
                insert(t.patient)
                .values(
                    facility_id=facility_id,
                    patient_id=h.PatientID,
                    patient_name=h.PatientName,
                    patient_name_norm=normalise_person_name(h.PatientName),
                    birth_date=h.PatientBirthDate,
                    sex=h.PatientSex,
                )
                .returning(t.patient.c.id)
            ).scalar_one()
        )

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
                item["ModalitiesInStudy"] = _modalities_from_db(str(item["ModalitiesInStudy"]))
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
        lock = self._write_lock or threading.Lock()
        with lock, self.engine.begin() as conn:
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
