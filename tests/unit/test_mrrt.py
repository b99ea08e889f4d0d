"""MRRT / RadReport HTML templates read tolerantly (the sample files in
tests/data/templates were written for these tests), and refused, naming the
element and its line, when they cannot be a template."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telerad.domain.mrrt import parse_mrrt
from telerad.domain.templates import Code, FieldKind, Heading, Option, TemplateError

SAMPLES = Path(__file__).parent.parent / "data" / "templates"


def _read(name: str) -> str:
    return (SAMPLES / name).read_text(encoding="utf-8")


def test_a_clean_template_gives_its_sections_fields_and_codes() -> None:
    read = parse_mrrt(_read("ct-head-clean.html"), "ct-head-clean.html")
    t = read.template
    assert read.warnings == ()
    assert (t.id, t.title, t.version, t.language) == (
        "tlr-cthead-1",
        "CT Head Without Contrast",
        "3",
        "en",
    )
    assert t.code == Code("RID10321", "RADLEX", "CT head")
    assert t.availability.modalities == frozenset({"CT"})
    assert t.procedure_codes == frozenset({"70450", "70496"})
    assert t.macros == {"nad": "No acute intracranial abnormality."}
    assert [(s.id, s.title, s.heading) for s in t.sections] == [
        ("history", "Clinical history", Heading.HISTORY),
        ("technique", "Technique", Heading.PROCEDURE),
        ("findings", "Findings", Heading.FINDINGS),
        ("impression", "Impression", Heading.IMPRESSION),
    ]
    history, technique, findings, impression = t.sections
    indication, onset = history.fields
    assert (indication.label, indication.kind, indication.required) == (
        "Indication",
        FieldKind.TEXT,
        True,
    )
    assert (onset.label, onset.kind) == ("Onset of symptoms", FieldKind.DATE)
    assert technique.default_text == "Axial non-contrast CT of the head with multiplanar reformats."
    assert technique.fields[0].kind is FieldKind.CHECKBOX and technique.fields[0].default == ""
    hemorrhage, shift, ventricles, brain = findings.fields
    assert hemorrhage.code == Code("RID4700", "RADLEX", "hemorrhage")
    assert hemorrhage.options == (
        Option("absent", "Absent"),
        Option("present", "Present", Code("RID28472", "RADLEX", "present")),
        Option("indeterminate", "Indeterminate"),
    )
    assert hemorrhage.default == "absent" and hemorrhage.required
    assert (shift.kind, shift.unit, shift.minimum, shift.maximum, shift.step, shift.default) == (
        FieldKind.NUMBER,
        "mm",
        0.0,
        30.0,
        0.5,
        "0",
    )
    assert (ventricles.label, ventricles.kind, ventricles.default) == (
        "Ventricles",
        FieldKind.CHOICE,
        "normal",
    )
    assert ventricles.options == (Option("normal", "Normal"), Option("enlarged", "Enlarged"))
    assert brain.default == "Grey-white matter differentiation is preserved."
    assert brain.normal == "No acute infarct, mass or mass effect."
    assert impression.fields[0].label == "Impression" and impression.fields[0].required


def test_a_messy_template_is_read_and_what_was_tolerated_is_said() -> None:
    read = parse_mrrt(_read("chest-messy.html"), "chest-messy.html")
    t = read.template
    assert t.title == "CT Chest & Abdomen — Trauma"  # entities
    assert (t.id, t.version) == ("ct-chest-abdomen-trauma", "2")  # unquoted attributes
    # A file that names no id takes the one it is given (its file's name), else its title's.
    assert parse_mrrt(_read("chest-messy.html"), default_id="trauma").template.id == "trauma"
    # The commented-out section and coded entry are not part of the template.
    assert [s.id for s in t.sections] == ["history", "findings", "impression"]
    assert t.field("old") is None
    history, findings, _ = t.sections
    assert [(f.id, f.label) for f in history.fields] == [
        ("mechanism", "Mechanism of injury"),  # the text before a field labels it
        ("gcs", "Glasgow coma scale"),
    ]
    assert (history.fields[1].minimum, history.fields[1].maximum) == (3.0, 15.0)
    by_id = {f.id: f for f in findings.fields}
    assert list(by_id) == [
        "pneumothorax",
        "aorta",
        "nodule-size",
        "nodule-features",
        "spleen",
        "free-fluid",
    ]
    # Unclosed <option>s and <li>s; codes from a block that is not well-formed XML.
    assert by_id["pneumothorax"].values() == ["none", "small", "large"]
    assert by_id["pneumothorax"].options[2].label == "Large > 2 cm"
    assert by_id["pneumothorax"].code == Code("RID5352", "RADLEX", "pneumothorax")
    assert by_id["aorta"].code == Code("RID480", "RADLEX", "aorta")  # not the commented one
    assert by_id["free-fluid"].code == Code("389026000", "SCT", "ascites")
    # Sections inside findings are its parts: their fields grouped by the part.
    assert [(f.id, f.group) for f in findings.fields][:4] == [
        ("pneumothorax", "Chest"),
        ("aorta", "Chest"),
        ("nodule-size", "Incidental nodule"),
        ("nodule-features", "Incidental nodule"),
    ]
    assert by_id["nodule-size"].unit == "mm"  # the unit written after the number
    features = by_id["nodule-features"]
    assert features.kind is FieldKind.MULTIPLE and features.values() == ["calcified", "spiculated"]
    spleen = by_id["spleen"]  # a part with only text: a text field with that default
    assert (spleen.kind, spleen.label, spleen.default, spleen.group) == (
        FieldKind.TEXT,
        "Spleen",
        "Normal in size, no laceration.",
        "Abdomen",
    )
    assert spleen.code == Code("RID86", "RADLEX", "spleen")
    fluid = by_id["free-fluid"]  # radio buttons labelled by the words after them
    assert (fluid.kind, fluid.label, fluid.default) == (FieldKind.CHOICE, "Free fluid", "none")
    assert [o.label for o in fluid.options] == ["none", "small", "moderate"]
    assert read.warnings == (
        'chest-messy.html: the template attributes (<script type="text/xml"> at line 16) are '
        "not well-formed XML at line 24: their coded entries were read one by one",
        "chest-messy.html: </section> at line 62 closes nothing",
        'chest-messy.html: <textarea id="impression-text"> at line 65 is not closed before '
        "</section> at line 66",
    )


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        ("broken-no-sections.html", "no <section> elements: not an MRRT template"),
        (
            "broken-empty-select.html",
            '<select id="fracture" name="fracture"> at line 7 has no <option>',
        ),
        (
            "broken-unknown-type.html",
            '<input type="range" id="effusion" name="effusion"> at line 7: unknown type '
            "'range' (text, number, checkbox, radio, date, time)",
        ),
    ],
)
def test_a_broken_file_is_refused_naming_the_element(sample: str, message: str) -> None:
    with pytest.raises(TemplateError) as refused:
        parse_mrrt(_read(sample), sample)
    assert str(refused.value) == f"{sample}: {message}"


def _page(body: str, head: str = "<title>Test</title>") -> str:
    impression = '<section id="impression"><header>Impression</header></section>'
    return f"<html><head>{head}</head><body>\n{body}\n{impression}</body></html>"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '<section id="f"><input id="a" data-field-type="SLIDER"></section>',
            "<input id=\"a\"> at line 2: unknown data-field-type 'SLIDER' (TEXT, NUMBER",
        ),
        (
            '<section id="f"><input id="a"><input type="number" id="a"></section>',
            '<input type="number" id="a"> at line 2: the id \'a\' is already used at line 2',
        ),
        ('<input id="x">\n<section id="f"></section>', '<input id="x"> at line 2 is outside'),
        ('<section id="f"><input type="number" id="n" min="ten"></section>', "min='ten' is not"),
        ('<section id="f"><textarea></textarea></section>', "<textarea> at line 2 has no id"),
        ('<section id="f"><select id="s"><option>a</select></section>'.replace("a", ""), "has no"),
    ],
)
def test_fields_that_cannot_be_read_name_the_element(body: str, message: str) -> None:
    with pytest.raises(TemplateError, match="^") as refused:
        parse_mrrt(_page(body))
    assert message in str(refused.value)


def test_codes_from_data_attributes_and_template_metas() -> None:
    head = (
        "<title>MG</title>"
        '<meta name="telerad.id" content="mg-local"><meta name="telerad.sexes" content="F">'
        '<meta name="telerad.min_age" content="40"><meta name="telerad.default_for" content="MG">'
        '<meta name="telerad.modalities" content="MG">'
    )
    body = (
        '<section data-section-name="Findings" data-code-value="59776-5" data-code-scheme="LN">'
        '<label for="birads">BI-RADS</label><select id="birads" required>'
        '<option value="1" data-code="SCT:397140005">1 Negative</option>'
        '<option value="2" data-code-value="397141009" data-code-scheme="SNOMED">2 Benign'
        "</select><label for=nowhere>Orphan</label></section>"
    )
    read = parse_mrrt(_page(body, head))
    t = read.template
    assert (t.id, t.availability.min_age, t.default_for) == ("mg-local", 40, frozenset({"MG"}))
    assert t.sections[0].heading is Heading.FINDINGS and t.sections[0].id == "findings"
    birads = t.sections[0].fields[0]
    assert birads.options == (
        Option("1", "1 Negative", Code("397140005", "SCT", "1 Negative")),
        Option("2", "2 Benign", Code("397141009", "SCT", "2 Benign")),
    )
    assert read.warnings == ("<label for='nowhere'> names no field",)


def test_a_select_left_open_ends_at_the_next_field() -> None:
    body = '<section id="f"><select id="s"><option>a<option>b\n<input id="t"></section>'
    read = parse_mrrt(_page(body))
    s, t = read.template.sections[0].fields
    assert s.values() == ["a", "b"] and t.kind is FieldKind.TEXT
    assert read.warnings == ('<select id="s"> at line 2 is not closed before <input> at line 3',)


_PIECES = [
    "<", ">", "</section>", "<section>", "<select id=q>", "<option>", "</select>", "<p>",
    "<label for=x>", "</label>", "<input type=radio name=r>", "<input type=checkbox name=r>",
    "<textarea id=t>", "<header>", "<!--", "-->", '"', "&", "<script type=text/xml>",
    "</script>", "<entry ORIGTXT='x'>", "<input>", "<input type=number id=n min=5 max=1>",
]  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(sorted(p.name for p in SAMPLES.glob("*.html"))),
    st.lists(st.tuples(st.floats(0, 1), st.booleans(), st.sampled_from(_PIECES)), max_size=8),
)
def test_whatever_the_html_it_is_a_template_or_a_template_error(
    sample: str, edits: list[tuple[float, bool, str]]
) -> None:
    text = _read(sample)
    for where, cut, piece in edits:
        at = int(where * len(text))
        text = text[:at] + text[at + 30 :] if cut else text[:at] + piece + text[at:]
    try:
        read = parse_mrrt(text)
    except TemplateError as exc:
        assert str(exc)
    else:
        assert read.template.section(Heading.IMPRESSION) is not None
