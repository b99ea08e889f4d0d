"""Report templates: the shipped ones and those an administrator imports, which one a
study gets, and importing (validated, stored, audited).

The templates in force are the imported ones and the shipped ones no import
replaced: an imported template with a shipped one's id replaces it, whatever the
versions (the network's own choice wins over the platform's). An import of an id
already imported must raise its version — a report names the template version it
was written with, so a version never changes content — and a newer version
replaces the older. Imported templates come first, so where an imported and a
shipped template map the same procedure code, the imported one is chosen.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from telerad.domain.audit import Action, EventID, Outcome
from telerad.domain.mrrt import parse_mrrt
from telerad.domain.template_codec import (
    SourceFormat,
    format_of,
    parse_json,
    parse_toml,
    shipped_templates,
    slug,
    to_dict,
)
from telerad.domain.templates import (
    Choice,
    Template,
    TemplateError,
    choose,
    offered,
    version_key,
)
from telerad.services.audit import AuditService

#: Larger than any template an administrator writes (RadReport's biggest are ~300 KB).
MAX_SOURCE_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class StoredTemplate:
    """An imported template as the store keeps it, with the file it came from."""

    template: Template
    source_format: SourceFormat
    source: str  # the file's text as imported
    imported_at: datetime
    imported_by: str


class TemplateStore(Protocol):
    """Imported templates, one per id (``report_template``;
    storage.db.template_repository.SqlTemplates, tests/fakes: FakeTemplates)."""

    def get(self, template_id: str) -> StoredTemplate | None: ...

    def all(self) -> list[StoredTemplate]:
        """Every imported template, by id."""
        ...

    def put(self, stored: StoredTemplate) -> None:
        """Keep ``stored``, replacing what its id held."""
        ...


class Origin(enum.StrEnum):
    SHIPPED = "shipped"
    IMPORTED = "imported"


@dataclass(frozen=True)
class Listed:
    """A template in force, where it comes from, and the shipped one it replaces."""

    template: Template
    origin: Origin
    imported_at: datetime | None = None
    imported_by: str = ""
    replaces_shipped: str = ""  # the version of the shipped template it replaces


@dataclass(frozen=True)
class Imported:
    """What an import did."""

    template: Template
    replaced: str  # "", "shipped version 1", "imported version 2"
    unchanged: bool = False  # the same version with the same content: nothing written
    warnings: tuple[str, ...] = ()


def read_template(text: str, fmt: SourceFormat, name: str = "") -> tuple[Template, list[str]]:
    """The template a file's text holds, validated, and what was tolerated reading it."""
    if fmt is SourceFormat.MRRT:
        stem = slug(name.rsplit("/", 1)[-1].rsplit(".", 1)[0]) if name else ""
        read = parse_mrrt(text, name, default_id=stem)
        return read.template, list(read.warnings)
    if fmt is SourceFormat.TOML:
        return parse_toml(text, name), []
    return parse_json(text, name), []


class TemplateService:
    def __init__(
        self,
        store: TemplateStore,
        audit: AuditService,
        shipped: Sequence[Template] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.audit = audit
        self.shipped = tuple(shipped_templates() if shipped is None else shipped)
        self.clock = clock

    # -- the templates in force -------------------------------------------------------------
    def listing(self) -> list[Listed]:
        """Every template in force, by id."""
        shipped = {t.id: t for t in self.shipped}
        listed = [
            Listed(
                s.template,
                Origin.IMPORTED,
                s.imported_at,
                s.imported_by,
                shipped[s.template.id].version if s.template.id in shipped else "",
            )
            for s in self.store.all()
        ]
        imported = {entry.template.id for entry in listed}
        listed += [Listed(t, Origin.SHIPPED) for t in self.shipped if t.id not in imported]
        return sorted(listed, key=lambda entry: entry.template.id)

    def templates(self) -> list[Template]:
        """The templates in force, imported ones first (they win a tie in :meth:`choose`)."""
        imported = [s.template for s in self.store.all()]
        ids = {t.id for t in imported}
        return imported + [t for t in self.shipped if t.id not in ids]

    def get(self, template_id: str) -> Template | None:
        stored = self.store.get(template_id)
        if stored is not None:
            return stored.template
        return next((t for t in self.shipped if t.id == template_id), None)

    def choose(
        self,
        procedure_code: str,
        modality: str,
        sex: str = "",
        age: int | None = None,
        description: str = "",
    ) -> Choice:
        """The template for a study (``domain.templates.choose`` over those in force)."""
        return choose(self.templates(), procedure_code, modality, sex, age, description)

    def offered(self, modality: str, sex: str = "", age: int | None = None) -> list[Template]:
        """The templates a radiologist may switch to for a study."""
        return offered(self.templates(), modality, sex, age)

    # -- importing --------------------------------------------------------------------
    def import_file(
        self, path: Path, actor: str, fmt: SourceFormat | None = None, source_address: str = ""
    ) -> Imported:
        """Import the template in ``path`` (its format from its extension unless given)."""
        fmt = fmt or format_of(path.name)
        if not path.is_file():
            raise TemplateError(f"{path.name}: no such file")
        if path.stat().st_size > MAX_SOURCE_BYTES:
            raise TemplateError(f"{path.name}: larger than {MAX_SOURCE_BYTES // 1024} KiB")
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise TemplateError(f"{path.name}: not UTF-8 text ({exc.reason})") from exc
        return self.import_text(text, fmt, actor, path.name, source_address=source_address)

    def import_text(
        self,
        text: str,
        fmt: SourceFormat,
        actor: str,
        name: str = "",
        *,
        actor_is_user: bool = True,
        source_address: str = "",
    ) -> Imported:
        """Validate the template ``text`` holds, keep it (with the text) and audit the
        import; a refusal (a TemplateError naming the element at fault) is audited too."""
        try:
            template, warnings = read_template(text, fmt, name)
            existing = self.store.get(template.id)
            replaced = self._replaced(template, existing)
        except TemplateError as exc:
            self._audit(actor, actor_is_user, source_address, f"refused: {exc}", failed=True)
            raise
        if existing is not None and to_dict(existing.template) == to_dict(template):
            return Imported(template, replaced, unchanged=True, warnings=tuple(warnings))
        warnings += self._taken_over(template)
        self.store.put(StoredTemplate(template, fmt, text, self.clock(), actor))
        what = f"report template {template.id} version {template.version} ({fmt.value}"
        what += f", {name})" if name else ")"
        self._audit(
            actor,
            actor_is_user,
            source_address,
            what + (f" replacing the {replaced}" if replaced else ""),
            action=Action.UPDATE if replaced else Action.CREATE,
        )
        return Imported(template, replaced, warnings=tuple(warnings))

    def _replaced(self, template: Template, existing: StoredTemplate | None) -> str:
        """What an import of ``template`` replaces; a TemplateError when it may not."""
        if existing is not None:
            old = existing.template
            if version_key(template.version) < version_key(old.version):
                raise TemplateError(
                    f"template {template.id!r}: version {template.version} is older than the "
                    f"imported version {old.version}"
                )
            same = to_dict(old) == to_dict(template)
            if version_key(template.version) == version_key(old.version) and not same:
                raise TemplateError(
                    f"template {template.id!r}: version {old.version} is already imported with "
                    "other content; give this one a higher version (reports name the version "
                    "they were written with)"
                )
            return f"imported version {old.version}"
        shipped = next((t for t in self.shipped if t.id == template.id), None)
        return f"shipped version {shipped.version}" if shipped is not None else ""

    def _taken_over(self, template: Template) -> list[str]:
        """The procedure codes another template in force was chosen for until now."""
        notes = []
        for other in self.templates():
            if other.id == template.id:
                continue
            for code in sorted(template.procedure_codes & other.procedure_codes):
                notes.append(f"procedure {code} was {other.id}'s; it gets {template.id} now")
        return notes

    def _audit(
        self,
        actor: str,
        is_user: bool,
        address: str,
        detail: str,
        *,
        action: Action = Action.CREATE,
        failed: bool = False,
    ) -> None:
        self.audit.record(
            EventID.IMPORT,
            actor,
            actor_is_user=is_user,
            outcome=Outcome.MINOR_FAILURE if failed else Outcome.SUCCESS,
            action=action,
            source_address=address,
            detail=detail[:1000],
        )
