"""Imported report templates (``report_template``): the template as its JSON body, the
file it came from, who imported it and when. One row per template id."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from telerad.domain.template_codec import SourceFormat, from_json, to_json
from telerad.services.templates import StoredTemplate
from telerad.storage.db import tables as t
from telerad.storage.db.times import utc

_T = t.report_template


def _stored(row: Any) -> StoredTemplate:
    return StoredTemplate(
        template=from_json(row.body),
        source_format=SourceFormat(row.source_format),
        source=row.source,
        imported_at=utc(row.imported_at),
        imported_by=row.imported_by,
    )


class SqlTemplates:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, template_id: str) -> StoredTemplate | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(_T).where(_T.c.id == template_id)).first()
        return _stored(row) if row is not None else None

    def all(self) -> list[StoredTemplate]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(_T).order_by(_T.c.id)).all()
        return [_stored(row) for row in rows]

    def put(self, stored: StoredTemplate) -> None:
        template = stored.template
        values = {
            "version": template.version,
            "title": template.title[:200],
            "body": to_json(template),
            "source_format": stored.source_format.value,
            "source": stored.source,
            "imported_at": stored.imported_at,
            "imported_by": stored.imported_by[:128],
        }
        where = _T.c.id == template.id
        with self.engine.begin() as conn:
            if conn.execute(update(_T).where(where).values(**values)).rowcount:
                return
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(_T).values(id=template.id, **values))
        except IntegrityError:  # imported at the same moment by another process: replace it
            with self.engine.begin() as conn:
                conn.execute(update(_T).where(where).values(**values))
