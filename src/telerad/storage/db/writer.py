"""Writing instance rows (and the patient, study and series they bring) for the index.

One instance per transaction (DIMSE C-STORE, import, recovery), or a whole
STOW-RS request in one: :meth:`InstanceWriter.add_many` writes every row of a
batch and commits once, or commits nothing when any row is refused, so the
caller can fall back to one transaction per instance and learn which one was
refused and why.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import Engine, Select, insert, select, update
from sqlalchemy.exc import IntegrityError

from telerad.domain.model import ConflictingHierarchy, InstanceHeader, StoredObject
from telerad.domain.query import normalise_person_name
from telerad.storage.db import tables as t

# The per-instance statements as plain SQL: building SQLAlchemy statements (and
# their cache keys) costs more than the database takes to run them. Portable
# SQL; the placeholder is swapped for the driver's.
_INSERT_INSTANCE_SQL = (
    "INSERT INTO instance (series_pk, sop_instance_uid, sop_class_uid, transfer_syntax_uid, "
    'instance_number, "rows", "columns", number_of_frames, blob_key, size, sha256, origin) '
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_COUNT_SERIES_SQL = "UPDATE series SET num_instances = num_instances + ? WHERE id = ?"
_COUNT_STUDY_SQL = (
    "UPDATE study SET num_instances = num_instances + ?, updated_at = CURRENT_TIMESTAMP "
    "WHERE id = ?"
)

#: (primary key, owner key) of a study (owner: facility) or a series (owner: study).
Known = tuple[int, int]


def _row(series_pk: int, h: InstanceHeader, blob: StoredObject) -> tuple[Any, ...]:
    return (
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
        h.origin,
    )


class _Transaction:
    """What one transaction created: cached for later ones only once it commits."""

    def __init__(self) -> None:
        self.studies: dict[str, Known] = {}
        self.series: dict[str, Known] = {}


class InstanceWriter:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # SQLite has one writer; serialising here avoids busy retries.
        self.write_lock = threading.Lock() if engine.dialect.name == "sqlite" else None
        self._study_cache: dict[str, Known] = {}
        self._series_cache: dict[str, Known] = {}
        # The driver's own exception for a refused row (statements run on its cursor).
        dbapi = engine.dialect.dbapi
        self._refused: tuple[type[Exception], ...] = (IntegrityError,)
        if dbapi is not None:
            self._refused += (dbapi.IntegrityError,)
        self._refused_in_batch = (*self._refused, ConflictingHierarchy)
        marker = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._insert_sql, self._series_sql, self._study_sql = (
            sql.replace("?", marker)
            for sql in (_INSERT_INSTANCE_SQL, _COUNT_SERIES_SQL, _COUNT_STUDY_SQL)
        )

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the single writer (SQLite) for a write of one's own."""
        if self.write_lock is None:
            yield
            return
        with self.write_lock:
            yield

    # -- one instance ----------------------------------------------------------------
    def add(
        self,
        facility_id: int,
        header: InstanceHeader,
        blob: StoredObject,
        before_commit: Callable[[], None] | None = None,
    ) -> bool:
        if self.write_lock is None:
            return self._add(facility_id, header, blob, before_commit)
        # SQLite has one writer: hold it across before_commit only when nobody
        # waits for it, else finish first and write after.
        if before_commit is not None and not self.write_lock.acquire(blocking=False):
            before_commit()
            before_commit = None
            self.write_lock.acquire()
        elif before_commit is None:
            self.write_lock.acquire()
        try:
            return self._add(facility_id, header, blob, before_commit)
        finally:
            self.write_lock.release()

    def _add(
        self,
        facility_id: int,
        h: InstanceHeader,
        blob: StoredObject,
        before_commit: Callable[[], None] | None,
    ) -> bool:
        tx = _Transaction()
        try:
            with self.engine.begin() as conn:
                self._write(conn, facility_id, [(h, blob)], tx)
                if before_commit is not None:
                    before_commit()
        except self._refused:
            # The unique SOP Instance UID (or a concurrent study/series insert)
            # refused the row; the caller decides between duplicate and conflict.
            self._study_cache.pop(h.StudyInstanceUID, None)
            self._series_cache.pop(h.SeriesInstanceUID, None)
            return False
        self._committed(tx)
        return True

    # -- a batch ---------------------------------------------------------------------
    def add_many(
        self, facility_id: int, items: Sequence[tuple[InstanceHeader, StoredObject]]
    ) -> bool:
        """Index every item in one transaction; False (nothing written) when any row is
        refused: a SOP Instance UID already indexed or twice in the batch, a study or
        series that belongs elsewhere, a concurrent insert of the same new study."""
        if not items:
            return True
        tx = _Transaction()
        try:
            with self.writing(), self.engine.begin() as conn:
                self._write(conn, facility_id, items, tx)
        except self._refused_in_batch:
            return False
        self._committed(tx)
        return True

    # -- the rows --------------------------------------------------------------------
    def _committed(self, tx: _Transaction) -> None:
        # Cache only what a committed transaction created.
        self._study_cache.update(tx.studies)
        self._series_cache.update(tx.series)

    def _write(
        self,
        conn: Any,
        facility_id: int,
        items: Sequence[tuple[InstanceHeader, StoredObject]],
        tx: _Transaction,
    ) -> None:
        """Insert the instance rows and whatever patients/studies/series they bring."""
        rows = []
        per_series: Counter[int] = Counter()
        per_study: Counter[int] = Counter()
        for h, blob in items:
            study_pk, series_pk = self._hierarchy(conn, facility_id, h, tx)
            rows.append(_row(series_pk, h, blob))
            per_series[series_pk] += 1
            per_study[study_pk] += 1
        # The per-instance statements go straight to the driver's cursor: they
        # are fixed plain SQL, and SQLAlchemy's statement handling around them
        # cost more than running them.
        cursor = conn.connection.cursor()
        try:
            if len(rows) == 1:
                cursor.execute(self._insert_sql, rows[0])
            else:
                cursor.executemany(self._insert_sql, rows)
            for pk, count in per_series.items():
                cursor.execute(self._series_sql, (count, pk))
            for pk, count in per_study.items():
                cursor.execute(self._study_sql, (count, pk))
        finally:
            cursor.close()

    def _known(
        self,
        conn: Any,
        created: dict[str, Known],
        cache: dict[str, Known],
        uid: str,
        lookup: Callable[[], Select[Any]],
    ) -> Known:
        """(primary key, owner key) of a study or series: created by this transaction,
        cached, or in the index; (0, 0) when it is new. The query is built only on a
        miss (hot path)."""
        known = created.get(uid) or cache.get(uid)
        if known:
            return known
        row = conn.execute(lookup()).first()
        if not row:
            return (0, 0)
        # Committed before this transaction began (what it creates is in
        # ``created``): cached even if this one fails.
        cache[uid] = (row[0], row[1])
        return cache[uid]

    def _hierarchy(
        self, conn: Any, facility_id: int, h: InstanceHeader, tx: _Transaction
    ) -> tuple[int, int]:
        """(study pk, series pk) of the instance, inserting those it brings."""
        study_pk, study_facility = self._known(
            conn,
            tx.studies,
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
            study_pk = self._new_study(conn, facility_id, h)
            tx.studies[h.StudyInstanceUID] = (study_pk, facility_id)
        series_pk, series_study = self._known(
            conn,
            tx.series,
            self._series_cache,
            h.SeriesInstanceUID,
            lambda: select(t.series.c.id, t.series.c.study_pk).where(
                t.series.c.series_instance_uid == h.SeriesInstanceUID
            ),
        )
        if series_pk and series_study != study_pk:
            raise ConflictingHierarchy("the SeriesInstanceUID already belongs to another study")
        if not series_pk:
            series_pk = self._new_series(conn, study_pk, h)
            tx.series[h.SeriesInstanceUID] = (series_pk, study_pk)
        return study_pk, series_pk

    def _new_study(self, conn: Any, facility_id: int, h: InstanceHeader) -> int:
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
        return int(study_pk)

    def _new_series(self, conn: Any, study_pk: int, h: InstanceHeader) -> int:
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
        mods = conn.execute(
            select(t.series.c.modality).where(t.series.c.study_pk == study_pk).distinct()
        ).scalars()
        conn.execute(
            update(t.study)
            .where(t.study.c.id == study_pk)
            .values(
                num_series=t.study.c.num_series + 1,
                modalities=modalities_to_db([m for m in mods if m]),
            )
        )
        return int(series_pk)

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


def modalities_to_db(mods: Sequence[str]) -> str:
    """The study's ModalitiesInStudy column: "/CT/SR/" (matched with LIKE '%/CT/%')."""
    return "/" + "/".join(sorted(set(mods))) + "/" if mods else ""


def modalities_from_db(value: str) -> list[str]:
    """The modalities of a ModalitiesInStudy column, in its order."""
    return [m for m in value.split("/") if m]
