"""Imported report templates (``services.templates.TemplateStore``): what the fake and
SqlTemplates both do."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from tests.fakes.common import Clock
from tests.fakes.world import Stores

from telerad.domain.template_codec import SourceFormat, shipped_templates
from telerad.services.templates import StoredTemplate

SOURCE = "<html><!-- ünïcödé, kept as imported -->\r\n<section id=findings>…</section></html>\n"


def test_a_template_is_kept_with_its_source_and_replaced_by_its_id(
    stores: Stores, clock: Clock
) -> None:
    templates = stores.templates
    assert templates.all() == [] and templates.get("ct-head") is None
    by_id = {t.id: t for t in shipped_templates()}
    head = StoredTemplate(by_id["ct-head"], SourceFormat.MRRT, SOURCE, clock.now, "cli:admin")
    breast = StoredTemplate(by_id["mg-breast"], SourceFormat.TOML, "x = 1", clock.now, "dr.b")
    templates.put(head)
    templates.put(breast)
    assert templates.get("ct-head") == head  # every value of the template, the source as is
    assert [s.template.id for s in templates.all()] == ["ct-head", "mg-breast"]
    assert templates.get("ct-head").imported_at.tzinfo is not None  # type: ignore[union-attr]
    newer = replace(
        head,
        template=replace(head.template, version="2", title="CT head (ours)"),
        source_format=SourceFormat.JSON,
        source="{}",
        imported_at=clock.now + timedelta(days=1),
        imported_by="cli:other",
    )
    templates.put(newer)
    assert templates.get("ct-head") == newer
    assert [s.template.version for s in templates.all()] == ["2", "1"]
