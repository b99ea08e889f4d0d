"""Pre-sign checks: each finds what it is for, says it plainly, and stays quiet on a
sound report."""

from __future__ import annotations

from datetime import date

from telerad.domain.report_checks import (
    Check,
    Context,
    Prior,
    check,
    dates_in,
    ordered_side,
    overrides_from,
    unresolved,
)
from telerad.domain.reports import Content, Override
from telerad.domain.templates import Field, FieldKind, Heading, Option, Section, Template

TEMPLATE = Template(
    "xr-knee",
    "XR knee",
    sections=(
        Section("history", "History", Heading.HISTORY),
        Section("comparison", "Comparison", Heading.COMPARISON),
        Section(
            "findings",
            "Findings",
            Heading.FINDINGS,
            fields=(
                Field(
                    "effusion",
                    "Effusion",
                    FieldKind.CHOICE,
                    True,
                    options=(
                        Option("none", "None"),
                        Option("small", "Small"),
                        Option("large", "Large"),
                    ),
                ),
                Field(
                    "gap", "Joint space (mm)", FieldKind.NUMBER, unit="mm", minimum=0, maximum=20
                ),
            ),
            required=True,
        ),
        Section("impression", "Impression", Heading.IMPRESSION),
    ),
)
LEFT_KNEE = Context(procedure="XR KNEE LEFT 3 VIEWS", sex="F", priors=(Prior(date(2025, 3, 4)),))


def sound(**changes: str) -> Content:
    sections = {
        "history": "Pain after a fall.",
        "comparison": "Left knee radiographs of 2025-03-04.",
        "findings": "No fracture of the left knee. Joint spaces preserved.",
        "impression": "No fracture.",
    }
    fields = {"effusion": "none", "gap": "5"}
    for key, value in changes.items():
        (fields if key in fields else sections)[key] = value
    return Content("xr-knee", "1", sections, fields)


def test_a_sound_report_has_no_findings() -> None:
    assert check(TEMPLATE, sound(), LEFT_KNEE) == []


def test_required_parts_and_the_impression() -> None:
    found = check(TEMPLATE, sound(findings="", effusion="", impression=""), LEFT_KNEE)
    assert [(f.check, f.where) for f in found] == [
        (Check.REQUIRED, "findings"),
        (Check.REQUIRED, "effusion"),
        (Check.IMPRESSION, "impression"),
    ]
    assert found[1].message == "Findings: Effusion is required"
    assert found[2].message == "the impression is empty"


def test_the_other_side_in_the_impression_or_alone_in_the_findings() -> None:
    [found] = check(TEMPLATE, sound(impression="Right knee effusion."), LEFT_KNEE)
    assert found.check is Check.LATERALITY
    assert found.message == "the order is for the left side; the impression names the right"
    [alone] = check(TEMPLATE, sound(findings="Fracture of the right patella."), LEFT_KNEE)
    assert alone.check is Check.LATERALITY and alone.where == "findings"
    # Both sides in the findings (a comparison with the other knee) is not an error.
    both = sound(findings="Left knee normal; the right knee, partly seen, too.")
    assert check(TEMPLATE, both, LEFT_KNEE) == []
    # An order for both sides, or no side, checks nothing.
    assert ordered_side("XR KNEES BILATERAL") is None and ordered_side("CT HEAD") is None
    assert ordered_side("MG LT BREAST") == "L" and ordered_side("XR Right Hand") == "R"


def test_anatomy_the_patients_sex_does_not_have() -> None:
    male = Context(procedure="CT ABDOMEN PELVIS", sex="M", priors=LEFT_KNEE.priors)
    text = sound(findings="The uterus and ovaries are unremarkable.", impression="Normal.")
    [found] = check(TEMPLATE, text, male)
    assert found.check is Check.SEX
    assert found.message == "the patient is male; the report mentions ovaries, uterus"
    female = Context(procedure="CT ABDOMEN PELVIS", sex="F", priors=LEFT_KNEE.priors)
    assert [f.check for f in check(TEMPLATE, sound(impression="Enlarged prostate."), female)] == [
        Check.SEX
    ]
    # The cervical spine is not a cervix; an unknown sex contradicts nothing.
    spine = sound(findings="Cervical spine alignment normal.", impression="Normal.")
    assert check(TEMPLATE, spine, male) == []
    assert check(TEMPLATE, text, Context("CT", sex="", priors=LEFT_KNEE.priors)) == []


def test_values_outside_their_fields() -> None:
    found = check(TEMPLATE, sound(gap="35", effusion="huge"), LEFT_KNEE)
    assert [(f.check, f.where) for f in found] == [(Check.RANGE, "effusion"), (Check.RANGE, "gap")]
    assert found[1].message == "Joint space (mm): 35 mm is above 20 mm"
    assert "not one of none, small, large" in found[0].message
    assert check(TEMPLATE, sound(gap="five"), LEFT_KNEE)[0].message.endswith("is not a number")


def test_a_comparison_with_a_study_the_patient_never_had() -> None:
    [found] = check(TEMPLATE, sound(comparison="Radiographs of 03/11/2024."), LEFT_KNEE)
    assert found.check is Check.COMPARISON
    assert found.message == (
        "the comparison names 2024-03-11, but the patient has no study then "
        "(their studies: 2025-03-04)"
    )
    for fine in ("None.", "No prior studies.", "March 4, 2025", "5.3.2025", "20250305"):
        assert check(TEMPLATE, sound(comparison=fine), LEFT_KNEE) == [], fine


def test_dates_in_the_forms_reports_write() -> None:
    assert dates_in("2025-03-04, 3/4/2025, 04.03.2025, Mar 4, 2025, 4 March 2025") == [
        date(2025, 3, 4)
    ]
    assert dates_in("2025-02-30 and 13/45/2025") == []


def test_overrides_with_a_reason_resolve_their_check_only() -> None:
    findings = check(TEMPLATE, sound(impression="", gap="35"), LEFT_KNEE)
    assert {f.check for f in findings} == {Check.IMPRESSION, Check.RANGE}
    given = overrides_from(
        {"out-of-range": "post-operative spacer", "impression-empty": " "}, findings
    )
    assert given == (
        Override("out-of-range", "Joint space (mm): 35 mm is above 20 mm", "post-operative spacer"),
    )
    assert [f.check for f in unresolved(findings, given)] == [Check.IMPRESSION]


def test_numbers_as_radiologists_type_them() -> None:
    assert check(TEMPLATE, sound(gap="12,5"), LEFT_KNEE) == []  # a decimal comma
    for wrong in ("1e4", "nan", "12 mm", "1_0"):
        [found] = check(TEMPLATE, sound(gap=wrong), LEFT_KNEE)
        assert found.message.endswith("is not a number"), wrong
