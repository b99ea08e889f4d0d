"""Templates as data: the administrator's TOML/JSON form, read and refused with the
section and field named; the JSON body the store keeps, written and read back as
the same template."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telerad.domain.template_codec import (
    SourceFormat,
    format_of,
    from_dict,
    from_json,
    parse_code,
    parse_json,
    parse_toml,
    shipped_templates,
    to_dict,
    to_json,
)
from telerad.domain.templates import (
    Availability,
    Code,
    Field,
    FieldKind,
    Heading,
    Option,
    Section,
    Sex,
    Template,
    TemplateError,
)

ADMIN_FORM = """
[template]
id = "us-thyroid"
title = "Ultrasound thyroid"
version = "2.1"
modalities = ["us"]
sexes = []
min_age = 12
procedure_codes = ["76536"]

[[section]]
title = "Clinical history"

[[section]]
id = "findings"
title = "Findings"
heading = "59776-5"
default = "The thyroid gland is normal in size."

[[section.field]]
id = "tirads"
label = "ACR TI-RADS"
type = "choice"
required = true
code = "RADLEX:RID50235 (TI-RADS)"
options = ["TR1", { value = "TR5", label = "TR5: highly suspicious", code = "SCT:1234567 (x)" }]
normal = "TR1"

[[section.field]]
id = "nodule-size"
label = "Nodule size"
type = "number"
unit = "mm"
min = 1
max = 80
step = 0.5
default = 12

[[section.field]]
label = "Vascularity seen"
type = "checkbox"
default = true

[[section]]
id = "impression"
title = "Impression"
heading = "impression"
required = true
normal = "Normal thyroid ultrasound."

[macros]
nad = "Normal thyroid ultrasound."
"""


def test_the_administrator_form_is_read_with_codes_headings_and_values() -> None:
    t = parse_toml(ADMIN_FORM, "us-thyroid.toml")
    assert (t.id, t.title, t.version, t.language) == (
        "us-thyroid",
        "Ultrasound thyroid",
        "2.1",
        "en",
    )
    assert t.availability == Availability(frozenset({"US"}), frozenset(), 12, None)
    assert t.procedure_codes == frozenset({"76536"}) and t.macros == {
        "nad": "Normal thyroid ultrasound."
    }
    history, findings, impression = t.sections
    assert (history.id, history.heading) == ("clinical-history", Heading.HISTORY)  # from the title
    assert findings.heading is Heading.FINDINGS and findings.default_text.startswith("The thyroid")
    assert impression.required and impression.normal_text == "Normal thyroid ultrasound."
    tirads, size, vascular = findings.fields
    assert tirads.kind is FieldKind.CHOICE and tirads.required
    assert tirads.code == Code("RID50235", "RADLEX", "TI-RADS")
    assert tirads.options == (
        Option("TR1", "TR1"),
        Option("TR5", "TR5: highly suspicious", Code("1234567", "SCT", "x")),
    )
    assert (size.unit, size.minimum, size.maximum, size.step, size.default) == (
        "mm",
        1.0,
        80.0,
        0.5,
        "12",
    )
    assert (vascular.id, vascular.kind, vascular.default) == (
        "vascularity-seen",
        FieldKind.CHECKBOX,
        "yes",
    )


def test_the_json_form_has_the_same_keys() -> None:
    import tomllib

    data = tomllib.loads(ADMIN_FORM)
    assert parse_json(json.dumps(data)) == parse_toml(ADMIN_FORM)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('type = "number"', 'type = "slider"'),
            "us-thyroid.toml: section 'findings', field 'nodule-size': "
            "unknown type 'slider' (text, number, choice, multiple, checkbox, date)",
        ),
        (('unit = "mm"', 'units = "mm"'), "field 'nodule-size': unknown key 'units' (id, label"),
        (('heading = "59776-5"', 'heading = "discussion"'), "section 'findings': unknown heading"),
        (("RADLEX:RID50235", "ICD:RID50235"), "field 'tirads': unknown coding scheme 'ICD'"),
        (("RADLEX:RID50235 (TI-RADS)", "RID-50235"), "a code is SCHEME:VALUE"),
        (("min = 1\n", "min = 90\n"), "minimum 90 above maximum 80"),
        (('normal = "TR1"', 'normal = "TR9"'), "the normal value is wrong: ACR TI-RADS: 'TR9'"),
        (("default = 12", "default = 99"), "the default is wrong: Nodule size: 99 mm is above 80"),
        (("sexes = []", 'sexes = ["X"]'), "a sex is F or M, not 'X'"),
        (("min_age = 12", "min_age = 12.5"), "min_age must be whole years"),
        (
            ('label = "Vascularity seen"', 'label = "Vascularity seen"\noptions = ["a"]'),
            "options on a field of type 'checkbox'",
        ),
        (('heading = "impression"\n', 'heading = "conclusions"\n'), "no impression section"),
        (("[macros]\n", "[macros]\n'Not A Word' = 'x'\n"), "macro keyword 'Not A Word'"),
        (('id = "us-thyroid"', 'id = "US Thyroid"'), "the id must be lower-case"),
    ],
)
def test_errors_name_the_section_and_field_and_what_is_wrong(
    change: tuple[str, str], message: str
) -> None:
    text = ADMIN_FORM.replace(*change, 1)
    assert text != ADMIN_FORM
    with pytest.raises(TemplateError) as refused:
        parse_toml(text, "us-thyroid.toml")
    assert message in str(refused.value)


def test_files_that_are_not_templates_are_refused_plainly() -> None:
    with pytest.raises(TemplateError, match="x.toml: not valid TOML"):
        parse_toml("[template\nid=", "x.toml")
    with pytest.raises(TemplateError, match="x.json: not valid JSON"):
        parse_json("{", "x.json")
    with pytest.raises(TemplateError, match="a template is an object"):
        parse_json("[1, 2]", "x.json")
    with pytest.raises(TemplateError, match=r"no \[template\] table"):
        from_dict({"section": []})
    with pytest.raises(TemplateError, match="unknown key 'sections'"):
        from_dict({"template": {"id": "a", "title": "A"}, "sections": []})
    with pytest.raises(TemplateError, match="template 'a': no sections"):
        from_dict({"template": {"id": "a", "title": "A"}})


def test_codes_are_read_as_str_writes_them() -> None:
    code = Code("59776-5", "LN", "Findings (text)")
    assert parse_code(str(code), "unused") == code
    assert parse_code("SNOMED:1386000", "Intracranial hemorrhage") == Code(
        "1386000", "SCT", "Intracranial hemorrhage"
    )
    assert parse_code("RID4700", "x") == Code("RID4700", "RADLEX", "x")
    assert parse_code("LOINC : 18782-3", "Study observation") == Code(
        "18782-3", "LN", "Study observation"
    )


def test_the_format_follows_the_extension() -> None:
    assert format_of("ct-head.HTML") is SourceFormat.MRRT
    assert format_of("a.htm") is SourceFormat.MRRT
    assert format_of("form.toml") is SourceFormat.TOML
    assert format_of("form.json") is SourceFormat.JSON
    with pytest.raises(TemplateError, match="notes.txt: no template format"):
        format_of("notes.txt")


RICH = Template(
    id="rich",
    title="Every value a template has",
    version="7.2",
    language="de",
    sections=(
        Section("history", "Findings", None, default_text="  kept as written \n"),
        Section(
            "impression",
            "Beurteilung",
            Heading.IMPRESSION,
            fields=(
                Field(
                    "size",
                    "Size",
                    FieldKind.NUMBER,
                    True,
                    Code("RID1", "RADLEX", "size"),
                    unit="mm",
                    minimum=0.5,
                    maximum=10,
                    step=0.1,
                    default="1.5",
                    normal="1",
                    group="Nodule 1",
                ),
                Field(
                    "kinds",
                    "Kinds",
                    FieldKind.MULTIPLE,
                    options=(Option("a", "a"), Option("b", "B", Code("2", "SCT", "b"))),
                    default="a; b",
                ),
            ),
            normal_text="normal",
            required=True,
        ),
    ),
    availability=Availability(frozenset({"CT", "MR"}), frozenset({Sex.MALE}), 18, 90),
    procedure_codes=frozenset({"1", "2"}),
    macros={"nad": "Nothing."},
    code=Code("RPT1", "DCM", "A template"),
    fallback=True,
    default_for=frozenset({"CT"}),
)


def test_the_json_body_gives_the_same_template_back() -> None:
    # A section titled "Findings" without a heading stays without one.
    assert from_json(to_json(RICH)) == RICH
    for template in shipped_templates():
        assert from_dict(json.loads(json.dumps(to_dict(template)))) == template


words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
ids = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)


@st.composite
def templates(draw: st.DrawFn) -> Template:
    field_ids = draw(st.lists(ids, min_size=1, max_size=4, unique=True))
    fields = []
    for fid in field_ids:
        kind = draw(st.sampled_from([FieldKind.TEXT, FieldKind.CHOICE, FieldKind.NUMBER]))
        options: tuple[Option, ...] = ()
        if kind is FieldKind.CHOICE:
            values = draw(st.lists(ids, min_size=1, max_size=3, unique=True))
            options = tuple(Option(v, draw(words) or v) for v in values)
        low = draw(st.none() | st.floats(-1e6, 1e6)) if kind is FieldKind.NUMBER else None
        fields.append(
            Field(
                "f-" + fid,
                draw(words).strip() or fid,
                kind,
                draw(st.booleans()),
                options=options,
                minimum=low,
                unit=draw(words).strip(),
                group=draw(words),
            )
        )
    return Template(
        id=draw(ids),
        title=draw(words).strip() or "t",
        version=draw(st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3})?", fullmatch=True)),
        sections=(
            Section(
                "findings",
                draw(words).strip() or "Findings",
                Heading.FINDINGS,
                tuple(fields),
                default_text=draw(words),
            ),
            Section("impression", "Impression", Heading.IMPRESSION, normal_text=draw(words)),
        ),
        availability=Availability(frozenset(draw(st.lists(st.sampled_from(["CT", "MR"]))))),
        macros={k: draw(words) for k in draw(st.lists(ids, max_size=2))},
    )


@settings(max_examples=60, deadline=None)
@given(templates())
def test_any_template_survives_the_json_body(template: Template) -> None:
    assert from_json(to_json(template)) == template
