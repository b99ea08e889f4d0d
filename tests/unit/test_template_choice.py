"""The shipped templates and which one a study gets: by its procedure code (the
catalogue's codes are mapped), by its modality, by the patient's sex and age, and
the general fallback."""

from __future__ import annotations

from dataclasses import replace

import pytest
from tests.fakes.world import catalogue

from telerad.domain.template_codec import shipped_templates
from telerad.domain.templates import (
    Availability,
    Heading,
    Template,
    TemplateError,
    choose,
    expand_macros,
    offered,
    validate,
    version_key,
)

SHIPPED = shipped_templates()
BY_ID = {t.id: t for t in SHIPPED}


def test_every_shipped_template_is_valid_and_reads_as_a_report() -> None:
    assert sorted(BY_ID) == [
        "ct-chest-abdomen-pelvis",
        "ct-head",
        "ct-lung-screening",
        "generic",
        "mg-breast",
        "mr-brain",
        "mr-spine",
        "pet-cardiac",
        "pet-ct-oncology",
        "pet-neuro",
        "us-abdomen",
        "xr-chest",
    ]
    for template in SHIPPED:
        assert validate(template) is template
        headings = [s.heading for s in template.sections]
        assert headings[:3] == [Heading.HISTORY, Heading.PROCEDURE, Heading.COMPARISON]
        assert Heading.FINDINGS in headings and Heading.RECOMMENDATIONS in headings
        impression = template.section(Heading.IMPRESSION)
        assert impression is not None and impression.required, template.id
        assert template.macros, f"{template.id} has no macros"
    assert [t.id for t in SHIPPED if t.fallback] == ["generic"]


def test_the_coded_scales_are_the_standards() -> None:
    birads = BY_ID["mg-breast"].field("birads")
    assert birads is not None
    assert birads.values() == ["0", "1", "2", "3", "4A", "4B", "4C", "5", "6"]
    codes = {o.value: o.code for o in birads.options}
    assert all(c is not None and c.scheme == "SCT" for c in codes.values())
    assert codes["1"] is not None and codes["1"].value == "397140005"
    assert {codes[v] for v in ("4A", "4B", "4C")} == {codes["4A"]}  # category 4's code
    density = BY_ID["mg-breast"].field("density")
    assert density is not None and density.values() == ["a", "b", "c", "d"]
    lung_rads = BY_ID["ct-lung-screening"].field("lung-rads")
    assert lung_rads is not None
    assert lung_rads.values() == ["0", "1", "2", "3", "4A", "4B", "4X"]
    assert BY_ID["ct-lung-screening"].field("lung-rads-s") is not None
    size = BY_ID["ct-lung-screening"].field("nodule-size")
    assert size is not None and (size.unit, size.minimum, size.maximum) == ("mm", 1.0, 100.0)
    assert size.problem("120") == "Mean diameter: 120 mm is above 100 mm"
    pet = BY_ID["pet-ct-oncology"]
    deauville, percist = pet.field("deauville"), pet.field("percist")
    assert deauville is not None and deauville.values() == ["1", "2", "3", "4", "5", "X"]
    assert percist is not None and percist.values() == ["CMR", "PMR", "SMD", "PMD"]
    suv = pet.field("lesion-suvmax")
    assert suv is not None and (suv.unit, suv.minimum, suv.maximum) == ("g/mL", 0.0, 100.0)
    lvef = BY_ID["pet-cardiac"].field("lvef-rest")
    assert lvef is not None and (lvef.unit, lvef.minimum, lvef.maximum) == ("%", 0.0, 100.0)
    assert BY_ID["pet-cardiac"].field("sss") is not None


#: What each code of the shipped procedure catalogue gets, and why.
CATALOGUE_CHOICES = {
    "70450": "ct-head",
    "70496": "ct-head",
    "70498": "ct-head",
    "0042T": "ct-head",
    "70551": "mr-brain",
    "70553": "mr-brain",
    "72125": "generic",  # CT cervical spine: no CT spine template
    "72148": "mr-spine",
    "71045": "xr-chest",
    "71046": "xr-chest",
    "71250": "ct-chest-abdomen-pelvis",
    "71275": "ct-chest-abdomen-pelvis",
    "74176": "ct-chest-abdomen-pelvis",
    "74177": "ct-chest-abdomen-pelvis",
    "76700": "us-abdomen",
    "76856": "generic",  # US pelvis
    "73030": "generic",  # XR shoulder: not the chest template
    "73721": "generic",  # MR knee: not the brain or spine template
    "77067": "mg-breast",
    "78815": "pet-ct-oncology",
    "78452": "pet-cardiac",
    "74018": "generic",  # XR abdomen
}


def test_every_catalogue_procedure_gets_its_template() -> None:
    procedures = catalogue().procedures
    assert set(procedures) == set(CATALOGUE_CHOICES)  # a new catalogue code needs a line here
    for code, expected in CATALOGUE_CHOICES.items():
        procedure = procedures[code]
        chosen = choose(SHIPPED, code, procedure.modality, "F", 60)
        assert chosen.template.id == expected, (code, procedure.description)


def test_no_procedure_is_mapped_to_two_shipped_templates() -> None:
    seen: dict[str, str] = {}
    for template in SHIPPED:
        for code in template.procedure_codes:
            assert code not in seen, f"{code}: {seen.get(code)} and {template.id}"
            seen[code] = template.id


def test_the_procedure_code_decides_first_and_says_so() -> None:
    chosen = choose(SHIPPED, "70450", "CT", "M", 40)
    assert (chosen.template.id, chosen.reason) == ("ct-head", "mapped to procedure 70450")
    assert choose(SHIPPED, "71271", "CT", "F", 64).template.id == "ct-lung-screening"
    assert choose(SHIPPED, "78608", "PT", "", None).template.id == "pet-neuro"
    # A code the catalogue does not know: the modality's default, else the fallback.
    chosen = choose(SHIPPED, "LOCAL-MG-9", "mg", "F", 50)
    assert (chosen.template.id, chosen.reason) == ("mg-breast", "the default for MG")
    assert choose(SHIPPED, "LOCAL-PET", "PT").template.id == "pet-ct-oncology"
    chosen = choose(SHIPPED, "LOCAL-CT", "CT")
    assert chosen.template.id == "generic"
    assert chosen.reason == "no template for this procedure: the general one"
    assert choose(SHIPPED, "", "").template.id == "generic"


def test_a_template_for_all_of_a_modality_is_chosen_by_modality() -> None:
    all_ct = Template(
        "ct-local",
        "CT (local)",
        sections=BY_ID["generic"].sections,
        availability=Availability(frozenset({"CT"})),
    )
    narrow = replace(all_ct, id="ct-mr-local", availability=Availability(frozenset({"CT", "MR"})))
    templates = [*SHIPPED, narrow, all_ct]
    chosen = choose(templates, "LOCAL-CT", "CT")
    assert (chosen.template.id, chosen.reason) == ("ct-local", "for CT")  # the most specific
    assert choose(templates, "70450", "CT").template.id == "ct-head"  # a mapping still wins
    assert choose(templates, "LOCAL-MR", "MR").template.id == "ct-mr-local"


def test_a_male_patient_never_gets_the_mammography_template() -> None:
    chosen = choose(SHIPPED, "77067", "MG", "M", 60)
    assert chosen.template.id == "generic"
    assert choose(SHIPPED, "LOCAL-MG", "MG", "M", 60).template.id == "generic"
    assert "mg-breast" not in [t.id for t in offered(SHIPPED, "MG", "M", 60)]
    assert "mg-breast" in [t.id for t in offered(SHIPPED, "MG", "F", 60)]
    # An unknown sex does not exclude: the pre-sign checks look at the text.
    assert choose(SHIPPED, "77067", "MG", "", None).template.id == "mg-breast"
    assert choose(SHIPPED, "77067", "MG", "O", 60).template.id == "mg-breast"


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (30, "generic"),
        (49, "generic"),
        (50, "ct-lung-screening"),
        (80, "ct-lung-screening"),
        (81, "generic"),
        (None, "ct-lung-screening"),
    ],
)
def test_lung_screening_is_for_the_screened_ages(age: int | None, expected: str) -> None:
    assert choose(SHIPPED, "71271", "CT", "M", age).template.id == expected


def test_templates_listed_first_win_a_tie() -> None:
    mine = replace(BY_ID["ct-head"], id="ct-head-local", title="CT head (ours)")
    assert choose([mine, *SHIPPED], "70450", "CT").template.id == "ct-head-local"
    assert choose([*SHIPPED, mine], "70450", "CT").template.id == "ct-head"


def test_without_a_fallback_a_study_nothing_fits_is_refused() -> None:
    without = [t for t in SHIPPED if not t.fallback]
    with pytest.raises(TemplateError, match="no template fits this study"):
        choose(without, "73721", "MR", "F", 40)


def test_macros_expand_by_their_keyword() -> None:
    macros = BY_ID["ct-head"].macros
    text = expand_macros("Findings: .ich Impression: .nad .unknown stays", macros)
    assert text == (
        "Findings: Acute intracranial haemorrhage. No midline shift or hydrocephalus. "
        "Impression: No acute intracranial abnormality. .unknown stays"
    )
    assert "pulmonary embolism" in expand_macros(".pe", BY_ID["ct-chest-abdomen-pelvis"].macros)


def test_versions_order_as_numbers() -> None:
    assert sorted(["1.10", "1.9", "2", "1", "1.2.1"], key=version_key) == [
        "1",
        "1.2.1",
        "1.9",
        "1.10",
        "2",
    ]
    assert version_key("2022") < version_key("draft")
    assert version_key("v2") != version_key("2")


def test_a_study_without_an_order_is_chosen_by_its_description() -> None:
    shipped = shipped_templates()
    head = choose(shipped, "", "CT", "M", 60, description="CT HEAD WITHOUT CONTRAST")
    assert head.template.id == "ct-head" and "description" in head.reason
    cap = choose(shipped, "", "CT", "F", 60, description="CT Chest Abdomen Pelvis W Contrast")
    assert cap.template.id == "ct-chest-abdomen-pelvis"
    # A description naming nothing a template is for: the modality's rules, then the fallback.
    assert choose(shipped, "", "CT", "F", 60, description="CT KNEE").template.fallback
    # A local code no template is mapped to: the words decide; a mapped code first.
    assert (
        choose(shipped, "LOCAL-17", "CT", "M", 60, description="CT HEAD").template.id == "ct-head"
    )
    code = next(iter(BY_ID["ct-chest-abdomen-pelvis"].procedure_codes))
    assert choose(shipped, code, "CT", "M", 60, description="CT HEAD").template.id == (
        "ct-chest-abdomen-pelvis"
    )
