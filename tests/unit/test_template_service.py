"""Template use cases over the fakes: the templates in force (shipped, imported, which
replaces which), importing (validated, versioned, audited, refusals audited too) and
choosing for a study."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.fakes.world import World, world

from telerad.domain.audit import Action, EventID, Outcome
from telerad.domain.template_codec import SourceFormat
from telerad.domain.templates import TemplateError
from telerad.services.templates import Origin

SAMPLES = Path(__file__).parent.parent / "data" / "templates"

LOCAL_HEAD = """
[template]
id = "ct-head"
title = "CT head (our network)"
version = "{version}"
modalities = ["CT"]
procedure_codes = ["70450", "99999"]

[[section]]
id = "findings"
title = "Findings"

[[section]]
id = "impression"
title = "Impression"
required = true
normal = "{normal}"
"""


def _local(version: str = "1", normal: str = "Normal.") -> str:
    return LOCAL_HEAD.format(version=version, normal=normal)


@pytest.fixture
def w() -> World:
    return world()


def _imports(w: World) -> list[tuple[str, Action, Outcome, str]]:
    return [
        (r.actor_id, Action(r.action), Outcome(r.outcome), r.detail)
        for r in w.stores.audit.rows
        if r.event_id == EventID.IMPORT.code
    ]


def test_the_shipped_templates_are_in_force_until_one_is_imported(w: World) -> None:
    listing = w.templates.listing()
    assert len(listing) == 12 and {e.origin for e in listing} == {Origin.SHIPPED}
    assert w.templates.get("ct-head").title == "CT head"  # type: ignore[union-attr]
    assert w.templates.get("nope") is None
    chosen = w.templates.choose("70450", "CT", "F", 50)
    assert (chosen.template.id, chosen.reason) == ("ct-head", "mapped to procedure 70450")
    assert "mg-breast" not in [t.id for t in w.templates.offered("MG", "M", 50)]


def test_an_import_replaces_the_shipped_template_of_its_id_and_is_audited(w: World) -> None:
    done = w.templates.import_text(_local(), SourceFormat.TOML, "cli:admin", "ct-head.toml")
    assert (done.replaced, done.unchanged) == ("shipped version 1", False)
    assert done.warnings == ()
    assert w.templates.get("ct-head").title == "CT head (our network)"  # type: ignore[union-attr]
    entry = next(e for e in w.templates.listing() if e.template.id == "ct-head")
    assert (entry.origin, entry.imported_by, entry.replaces_shipped) == (
        Origin.IMPORTED,
        "cli:admin",
        "1",
    )
    assert entry.imported_at == w.clock.now
    assert len(w.templates.listing()) == 12
    stored = w.stores.templates.get("ct-head")
    assert stored.source == _local() and stored.source_format is SourceFormat.TOML
    assert w.templates.choose("99999", "CT").template.id == "ct-head"
    assert _imports(w) == [
        (
            "cli:admin",
            Action.UPDATE,
            Outcome.SUCCESS,
            "report template ct-head version 1 (toml, ct-head.toml) replacing the shipped "
            "version 1",
        )
    ]


def test_a_newer_version_replaces_an_older_one_and_a_version_never_changes(w: World) -> None:
    w.templates.import_text(_local("1"), SourceFormat.TOML, "cli:admin")
    same = w.templates.import_text(_local("1"), SourceFormat.TOML, "cli:admin")
    assert same.unchanged and len(_imports(w)) == 1  # nothing written, nothing audited
    with pytest.raises(TemplateError, match="version 1 is already imported with other content"):
        w.templates.import_text(_local("1", "Changed."), SourceFormat.TOML, "cli:admin")
    newer = w.templates.import_text(_local("1.10", "Changed."), SourceFormat.TOML, "cli:admin")
    assert newer.replaced == "imported version 1"
    assert w.templates.get("ct-head").version == "1.10"  # type: ignore[union-attr]
    with pytest.raises(TemplateError, match="version 1.9 is older than the imported version 1.10"):
        w.templates.import_text(_local("1.9"), SourceFormat.TOML, "cli:admin")
    assert w.templates.get("ct-head").version == "1.10"  # type: ignore[union-attr]
    outcomes = [(a, o) for _, a, o, _ in _imports(w)]
    assert outcomes == [
        (Action.UPDATE, Outcome.SUCCESS),
        (Action.CREATE, Outcome.MINOR_FAILURE),
        (Action.UPDATE, Outcome.SUCCESS),
        (Action.CREATE, Outcome.MINOR_FAILURE),
    ]


def test_a_refused_import_changes_nothing_and_says_why(w: World) -> None:
    broken = (SAMPLES / "broken-unknown-type.html").read_text()
    with pytest.raises(TemplateError) as refused:
        w.templates.import_text(broken, SourceFormat.MRRT, "dr.admin", "knee.html")
    assert str(refused.value).startswith('knee.html: <input type="range" id="effusion"')
    assert w.stores.templates.all() == []
    ((actor, _, outcome, detail),) = _imports(w)
    assert (actor, outcome) == ("dr.admin", Outcome.MINOR_FAILURE)
    assert detail.startswith("refused: knee.html: <input")


def test_an_mrrt_file_is_imported_with_its_warnings_and_its_codes_taken_over(w: World) -> None:
    done = w.templates.import_file(SAMPLES / "ct-head-clean.html", "cli:admin")
    t = done.template
    assert (t.id, t.version, done.replaced) == ("tlr-cthead-1", "3", "")
    assert done.warnings == (
        "procedure 70450 was ct-head's; it gets tlr-cthead-1 now",
        "procedure 70496 was ct-head's; it gets tlr-cthead-1 now",
    )
    # Imported templates come first: the codes they map are theirs now.
    assert w.templates.choose("70450", "CT").template.id == "tlr-cthead-1"
    assert w.templates.choose("70460", "CT").template.id == "ct-head"
    assert _imports(w)[0][1] is Action.CREATE
    messy = w.templates.import_file(SAMPLES / "chest-messy.html", "cli:admin")
    assert messy.template.id == "chest-messy"  # it names no id: its file's name
    assert any("closes nothing" in warning for warning in messy.warnings)
    assert [e.template.id for e in w.templates.listing() if e.origin is Origin.IMPORTED] == [
        "chest-messy",
        "tlr-cthead-1",
    ]


def test_files_are_read_by_their_extension_or_the_format_given(w: World) -> None:
    with pytest.raises(TemplateError, match="notes.txt: no template format"):
        w.templates.import_file(SAMPLES / "notes.txt", "cli:admin")
    with pytest.raises(TemplateError, match="missing.toml: no such file"):
        w.templates.import_file(SAMPLES / "missing.toml", "cli:admin")
    with pytest.raises(TemplateError, match="ct-head-clean.html: not valid TOML"):
        w.templates.import_file(SAMPLES / "ct-head-clean.html", "cli:admin", SourceFormat.TOML)
