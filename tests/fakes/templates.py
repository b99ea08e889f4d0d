"""Imported report templates in memory (the real store:
storage.db.template_repository.SqlTemplates): one per id, listed by id."""

from __future__ import annotations

from telerad.services.templates import StoredTemplate


class FakeTemplates:
    def __init__(self) -> None:
        self.rows: dict[str, StoredTemplate] = {}

    def get(self, template_id: str) -> StoredTemplate | None:
        return self.rows.get(template_id)

    def all(self) -> list[StoredTemplate]:
        return [self.rows[k] for k in sorted(self.rows)]

    def put(self, stored: StoredTemplate) -> None:
        self.rows[stored.template.id] = stored
