"""Reports and their versions (SQLAlchemy Core).

A report's row holds where it stands (status, current version); its versions are
inserted, never updated. A change is written only if the report is still at the
version it was made on (``UPDATE … WHERE version = :seen``), so two processes
cannot both write version n+1: the second gets a VersionConflict. Outbox messages
queued by a signature go in the same transaction as the status change.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from telerad.domain.reports import (
    Content,
    Difference,
    Override,
    Report,
    ReportError,
    ReportEvent,
    ReportStatus,
    Version,
    VersionConflict,
)
from telerad.services.reports import Outgoing, ReportFilter, ReportSummary
from telerad.storage.db import tables as t
from telerad.storage.db.times import utc

_R, _V, _O = t.report, t.report_version, t.outbox


def content_json(content: Content) -> str:
    return json.dumps(
        {
            "template": content.template_id,
            "template_version": content.template_version,
            "sections": dict(content.sections),
            "fields": dict(content.fields),
        },
        ensure_ascii=False,
        sort_keys=True,
    )


def content_from(text: str) -> Content:
    data = json.loads(text)
    return Content(data["template"], data["template_version"], data["sections"], data["fields"])


def _version_from(row: Any) -> Version:
    overrides = tuple(Override(**o) for o in json.loads(row.overrides)) if row.overrides else ()
    return Version(
        number=row.number,
        status=ReportStatus(row.status),
        content=content_from(row.content),
        author_id=row.author_id,
        author=row.author,
        made_at=utc(row.made_at),
        event=ReportEvent(row.event),
        signed=bool(row.signed),
        addendum=row.addendum,
        reason=row.reason,
        overrides=overrides,
    )


def _version_row(report_id: int, v: Version) -> dict[str, object]:
    return {
        "report_id": report_id,
        "number": v.number,
        "status": v.status.value,
        "event": v.event.value,
        "content": content_json(v.content),
        "author_id": v.author_id,
        "author": v.author,
        "made_at": v.made_at,
        "signed": int(v.signed),
        "addendum": v.addendum,
        "reason": v.reason,
        "overrides": json.dumps([o.__dict__ for o in v.overrides]) if v.overrides else "",
    }


def _head(report: Report) -> dict[str, object]:
    signed = report.signed
    return {
        "status": report.status.value,
        "version": report.version,
        "difference": report.difference.value if report.difference else None,
        "preliminary_by": report.preliminary_by,
        "final_by": report.final_by,
        "updated_at": report.current.made_at,
        "signed_at": signed.made_at if signed else None,
    }


class SqlReports:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, report: Report, patient_id: str) -> Report:
        """Store a new report (its first versions); ReportError when the study's
        accession already has one."""
        try:
            with self.engine.begin() as conn:
                pk = conn.execute(
                    insert(_R)
                    .values(
                        facility_id=report.facility_id,
                        study_instance_uid=report.study_instance_uid,
                        accession_number=report.accession_number,
                        patient_id=patient_id,
                        created_at=report.versions[0].made_at,
                        **_head(report),
                    )
                    .returning(_R.c.id)
                ).scalar_one()
                conn.execute(insert(_V), [_version_row(pk, v) for v in report.versions])
        except IntegrityError:
            raise ReportError("this study already has a report for its accession") from None
        found = self.get(pk)
        assert found is not None
        return found

    def write(self, report: Report, seen: int, outgoing: Sequence[Outgoing] = ()) -> Report:
        """The versions after ``seen`` and the report's new head, with ``outgoing``
        queued, in one transaction; VersionConflict when another write came first."""
        assert report.id is not None
        new = [v for v in report.versions if v.number > seen]
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(_R)
                .where(and_(_R.c.id == report.id, _R.c.version == seen))
                .values(_head(report))
            ).rowcount
            if moved != 1:
                current = conn.execute(select(_R.c.version).where(_R.c.id == report.id)).scalar()
                raise VersionConflict(int(current or 0), seen)
            conn.execute(insert(_V), [_version_row(report.id, v) for v in new])
            self._queue(conn, report, outgoing)
        return report

    @staticmethod
    def _queue(conn: Connection, report: Report, outgoing: Sequence[Outgoing]) -> None:
        if not outgoing:
            return
        conn.execute(
            insert(_O),
            [
                {
                    "facility_id": report.facility_id,
                    "report_id": report.id,
                    "report_version": report.version,
                    "channel": o.channel,
                    "message_id": o.message_id,
                    "payload": o.payload,
                    "state": "pending",
                    "attempts": 0,
                    "next_at": o.due,
                    "created_at": o.due,
                }
                for o in outgoing
            ],
        )

    def get(self, report_id: int) -> Report | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(_R).where(_R.c.id == report_id)).first()
            return self._report(conn, row) if row is not None else None

    def for_study(self, study_uid: str, accession_number: str | None = None) -> list[Report]:
        """The study's reports (one per accession), or the one for ``accession_number``."""
        where = _R.c.study_instance_uid == study_uid
        if accession_number is not None:
            where = and_(where, _R.c.accession_number == accession_number)
        with self.engine.connect() as conn:
            rows = conn.execute(select(_R).where(where).order_by(_R.c.id)).all()
            return [self._report(conn, row) for row in rows]

    def find(self, f: ReportFilter) -> list[ReportSummary]:
        q = select(_R)
        if f.facility_ids is not None:
            q = q.where(_R.c.facility_id.in_(sorted(f.facility_ids)))
        if f.study_uids:
            q = q.where(_R.c.study_instance_uid.in_(f.study_uids))
        if f.patient_id:
            q = q.where(_R.c.patient_id == f.patient_id)
        if f.accession_number:
            q = q.where(_R.c.accession_number == f.accession_number)
        if f.statuses:
            q = q.where(_R.c.status.in_(sorted(s.value for s in f.statuses)))
        if f.since is not None:
            q = q.where(_R.c.updated_at >= f.since)
        q = q.order_by(_R.c.updated_at.desc(), _R.c.id.desc()).limit(f.limit).offset(f.offset)
        with self.engine.connect() as conn:
            return [_summary(row) for row in conn.execute(q)]

    def differences(self, since: datetime) -> dict[tuple[int, Difference], int]:
        """Per preliminary reader and difference, how many of their preliminaries were
        finalised by another radiologist since ``since``."""
        q = select(_R.c.preliminary_by, _R.c.difference).where(
            and_(
                _R.c.difference.is_not(None),
                _R.c.preliminary_by.is_not(None),
                _R.c.signed_at >= since,
            )
        )
        counts: dict[tuple[int, Difference], int] = {}
        with self.engine.connect() as conn:
            for reader, difference in conn.execute(q):
                key = (int(reader), Difference(difference))
                counts[key] = counts.get(key, 0) + 1
        return counts

    @staticmethod
    def _report(conn: Connection, row: Any) -> Report:
        versions = conn.execute(
            select(_V).where(_V.c.report_id == row.id).order_by(_V.c.number)
        ).all()
        return Report(
            study_instance_uid=row.study_instance_uid,
            facility_id=row.facility_id,
            accession_number=row.accession_number,
            versions=tuple(_version_from(v) for v in versions),
            id=row.id,
            difference=Difference(row.difference) if row.difference else None,
            preliminary_by=row.preliminary_by,
            final_by=row.final_by,
        )


def _summary(row: Any) -> ReportSummary:
    return ReportSummary(
        id=row.id,
        facility_id=row.facility_id,
        study_instance_uid=row.study_instance_uid,
        accession_number=row.accession_number,
        patient_id=row.patient_id,
        status=ReportStatus(row.status),
        version=row.version,
        updated_at=utc(row.updated_at),
        signed_at=utc(row.signed_at),
        difference=Difference(row.difference) if row.difference else None,
        preliminary_by=row.preliminary_by,
        final_by=row.final_by,
    )
