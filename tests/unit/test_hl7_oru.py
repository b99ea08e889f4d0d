"""The ORU^R01 built for a signed report (adapters/hl7/oru.py), parsed back by hl7apy
under STRICT validation against the HL7 v2.5.1 ORU_R01 structure: segments, the
P/F/C statuses, addenda, corrections, escaping and any Unicode text."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import hl7
import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from telerad.adapters.hl7.oru import OruError, Parties, build_oru, escape, text_lines
from telerad.domain import reports as r
from telerad.domain.orders import Order, PatientDemographics, Procedure
from telerad.domain.reports import Content, Report
from telerad.domain.templates import Code, Field, FieldKind, Heading, Option, Section, Template
from telerad.services.reports import ReportFacts

T0 = datetime(2026, 12, 3, 1, 30, tzinfo=UTC)
SEVERITY = Code("RID5671", "RADLEX", "severity")
TEMPLATE = Template(
    "ct-head",
    "CT head",
    sections=(
        Section("history", "History", Heading.HISTORY),
        Section(
            "findings",
            "Findings",
            Heading.FINDINGS,
            fields=(
                Field(
                    "midline",
                    "Midline shift",
                    FieldKind.NUMBER,
                    code=Code("RID38636", "RADLEX", "midline shift"),
                    unit="mm",
                ),
                Field(
                    "bleed",
                    "Haemorrhage",
                    FieldKind.CHOICE,
                    code=SEVERITY,
                    options=(
                        Option("none", "None", Code("RID28454", "RADLEX", "none")),
                        Option("small", "Small"),
                    ),
                ),
                Field("note", "Note"),  # not coded: in the narrative only
            ),
        ),
        Section("technique", "Technique", None),
        Section("impression", "Impression", Heading.IMPRESSION),
    ),
)
FACTS = ReportFacts(
    study_instance_uid="1.2.840.99.1",
    facility_id=3,
    accession_number="ACC-7",
    patient_id="MRN|42^x",
    patient_name="Ødegård^Zoë^Ä=山田^太郎",
    sex="F",
    age=56,
    modality="CT",
    procedure_code="CTHEAD",
    procedure="CT head without contrast",
    reason="headache",
    study_date=date(2026, 12, 2),
)
ORDER = Order(
    3,
    "ACC-7",
    PatientDemographics("MRN|42^x", "Ødegård^Zoë", "19700412", "F"),
    Procedure("CTHEAD", "CT head", "CPT4", "CT"),
    placer_order_number="PL-1",
    filler_order_number="FL-1",
    ordering_physician="House^Gregory^^Dr",
    requested_procedure_id="RP-9",
)
PARTIES = Parties("TELERAD", "NETWORK", "RIS", "North Hospital")
HARD_TEXT = (
    "Pipe | caret ^ tilde ~ amp & back \\ slash.\nSecond line — 日本語 ✓ «ok».\r\n\nAfter a gap."
)


def _report(status: str = "final") -> Report:
    content = Content(
        "ct-head",
        "1",
        {
            "history": "Fall.",
            "findings": HARD_TEXT,
            "technique": "Axial 5 mm.",
            "impression": "No bleed.",
            "gone": "A section the template lost.",
        },
        {"midline": "2.5", "bleed": "none", "note": "see & compare"},
    )
    report = r.new_report(FACTS.study_instance_uid, 3, "ACC-7", content, 7, "Night^Reader", T0)
    report = Report(report.study_instance_uid, 3, "ACC-7", report.versions, id=11)
    if status == "preliminary":
        return r.sign(report, False, 1, 7, "Night^Reader", T0 + timedelta(minutes=5))
    final = r.sign(report, True, 1, 7, "Night^Reader", T0 + timedelta(minutes=5))
    if status == "appended":
        once = r.addend(final, "Called Dr House | 02:10.", 2, 8, "Day^Reader^Q", T0 + timedelta(1))
        return r.addend(once, "Second addendum.", 3, 8, "Day^Reader^Q", T0 + timedelta(2))
    if status == "corrected":
        changed = Content(
            "ct-head", "1", {"impression": "Small subdural haematoma."}, {"bleed": "small"}
        )
        return r.correct(
            final, changed, "left side missed", 2, 7, "Night^Reader", T0 + timedelta(1)
        )
    return final


def strict(er7: str) -> Any:
    """The message parsed with hl7apy STRICT (2.5.1, ORU_R01 structure) and validated."""
    message = parse_message(er7, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert message.name == "ORU_R01" and message.version == "2.5.1"
    assert message.validate() is True
    return message


def _oru(report: Report, **kw: Any) -> str:
    return build_oru(report, FACTS, TEMPLATE, "11.2.abc", T0 + timedelta(hours=1), PARTIES, **kw)


def _segments(er7: str, name: str) -> list[list[str]]:
    return [s.split("|") for s in er7.split("\r") if s.startswith(name + "|")]


@pytest.mark.parametrize(
    ("status", "code"),
    [("preliminary", "P"), ("final", "F"), ("appended", "C"), ("corrected", "C")],
)
def test_every_signature_is_a_strict_oru_with_its_status(status: str, code: str) -> None:
    er7 = _oru(_report(status), order=ORDER)
    message = strict(er7)
    obr = message.oru_r01_patient_result.oru_r01_order_observation.obr
    assert obr.obr_25.value == code
    for obx in _segments(er7, "OBX"):
        assert obx[11] == code  # OBX-11
    assert er7.endswith("\r") and "\n" not in er7


def test_header_patient_order_and_interpreter() -> None:
    er7 = _oru(_report("final"), order=ORDER)
    strict(er7)
    [msh] = _segments(er7, "MSH")
    assert msh[2:6] == ["TELERAD", "NETWORK", "RIS", "North Hospital"]
    assert msh[6] == "20261203023000+0000" and msh[8] == "ORU^R01^ORU_R01"
    assert (msh[9], msh[10], msh[11], msh[17]) == ("11.2.abc", "P", "2.5.1", "UNICODE UTF-8")
    [pid] = _segments(er7, "PID")
    assert pid[3] == "MRN\\F\\42\\S\\x^^^^MR"  # escaped, never split into components
    assert pid[5] == "Ødegård^Zoë^Ä"  # the alphabetic group of the PN
    assert (pid[7], pid[8]) == ("19700412", "F")
    [orc] = _segments(er7, "ORC")
    assert orc[1:4] == ["RE", "PL-1", "FL-1"] and orc[12] == "^House^Gregory^^^Dr"
    [obr] = _segments(er7, "OBR")
    assert obr[2:5] == ["PL-1", "FL-1", "CTHEAD^CT head without contrast^CPT4"]
    assert obr[7] == "20261202"  # OBR-7: the study's date
    assert (obr[18], obr[19]) == ("ACC-7", "RP-9")  # OBR-18 accession, OBR-19 procedure ID
    assert obr[22] == "20261203013500+0000"  # OBR-22: when it was signed final
    assert obr[32] == "7&Night&Reader"  # OBR-32: the signer


def test_sections_in_template_order_with_loinc_codes_and_coded_fields() -> None:
    er7 = _oru(_report("final"))
    strict(er7)
    obx = _segments(er7, "OBX")
    assert [(o[2], o[3], o[4]) for o in obx] == [
        ("TX", "11329-0^History^LN", "1"),
        ("TX", "59776-5^Findings^LN", "2"),
        ("NM", "RID38636^midline shift^RADLEX", "2"),
        ("CWE", "RID5671^severity^RADLEX", "2"),
        ("TX", "technique^Technique^L", "3"),  # no CID 7001 heading: the template's name
        ("TX", "19005-8^Impressions^LN", "4"),
        ("TX", "gone^gone^L", "5"),  # text is never dropped
    ]
    assert [o[1] for o in obx] == [str(n) for n in range(1, 8)]
    assert obx[2][5:7] == ["2.5", "mm^mm^UCUM"]
    assert obx[3][5] == "RID28454^none^RADLEX"
    findings = obx[1][5].split("~")
    assert findings[-3:] == [
        "Midline shift: 2.5 mm",
        "Haemorrhage: None",
        "Note: see \\T\\ compare",
    ]


def test_text_is_escaped_line_by_line_and_reads_back_unchanged() -> None:
    er7 = _oru(_report("final"))
    strict(er7)
    findings = _segments(er7, "OBX")[1][5].split("~")
    assert findings[:4] == [
        "Pipe \\F\\ caret \\S\\ tilde \\R\\ amp \\T\\ back \\E\\ slash.",
        "Second line — 日本語 ✓ «ok».",
        "",
        "After a gap.",
    ]
    # python-hl7 reads the repetitions back; unescaped they are the radiologist's lines.
    parsed = hl7.parse(er7)
    field = parsed.segments("OBX")[1][5]
    lines = [parsed.unescape(str(rep)) for rep in field]
    assert lines[:4] == [
        "Pipe | caret ^ tilde ~ amp & back \\ slash.",
        "Second line — 日本語 ✓ «ok».",
        "",
        "After a gap.",
    ]


def test_control_characters_never_reach_the_wire_and_lengths_hold() -> None:
    assert escape("a\x0bb\x1cc\rd\x00e") == "a b c d e"  # MLLP's block characters included
    assert len(escape("|" * 500, 199)) <= 199 and escape("|" * 500, 199).endswith("\\F\\")
    long_line = "word " * 30_000  # 150 000 characters in one line
    wrapped = text_lines(long_line).split("~")
    assert all(len(rep) <= 199 for rep in wrapped) and len(wrapped) > 700
    assert "".join(wrapped) == long_line.rstrip()  # wrapped after spaces: nothing lost
    assert text_lines("|" * 500).split("~")[0] == "\\F\\" * 66  # never inside an escape
    report = _report("final")
    content = Content("ct-head", "1", {"impression": long_line + "\n" + "|" * 70_000}, {})
    big = r.save(r.new_report("1.2.3", 3, "ACC-7", content, 7, "N", T0), content, 1, 7, "N", T0)
    signed = r.sign(Report("1.2.3", 3, "A", big.versions, id=1), True, 2, 7, "N", T0)
    strict(build_oru(signed, FACTS, TEMPLATE, "x", T0, Parties(receiving_facility="F" * 90)))
    assert report.signed is not None


def test_addenda_are_observations_of_their_own_with_author_and_time() -> None:
    er7 = _oru(_report("appended"))
    strict(er7)
    addenda = [o for o in _segments(er7, "OBX") if o[3] == "55107-7^Addendum^LN"]
    assert [a[5] for a in addenda] == ["Called Dr House \\F\\ 02:10.", "Second addendum."]
    assert addenda[0][14] == "20261204013000+0000" and addenda[0][16] == "8^Day^Reader^Q"
    [obr] = _segments(er7, "OBR")
    assert obr[32] == "8&Day&Reader&Q"  # the addendum's signer


def test_a_correction_says_why_and_sends_what_the_report_says_now() -> None:
    er7 = _oru(_report("corrected"))
    strict(er7)
    [nte] = _segments(er7, "NTE")
    assert nte[1:4] == ["1", "L", "Corrected: left side missed"]
    obx = _segments(er7, "OBX")
    assert [o[3] for o in obx] == [
        "59776-5^Findings^LN",  # the field alone: its line in the narrative, and coded
        "RID5671^severity^RADLEX",
        "19005-8^Impressions^LN",
    ]
    assert obx[0][5] == "Haemorrhage: Small" and obx[1][5] == "^Small"  # an option without code
    assert obx[2][5] == "Small subdural haematoma."


def test_unknown_order_the_accession_stands_in_and_a_pdf_rides_along() -> None:
    pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    er7 = _oru(_report("preliminary"), pdf=pdf)
    strict(er7)
    [orc] = _segments(er7, "ORC")
    assert orc[2:4] == ["", "ACC-7"]  # no placer number known; the filler's is the accession
    [pid] = _segments(er7, "PID")
    assert pid[7] == ""  # no birth date without the order
    ed = _segments(er7, "OBX")[-1]
    assert ed[2] == "ED" and ed[5].split("^")[:4] == ["TELERAD", "AP", "PDF", "Base64"]


def test_a_draft_is_not_a_result() -> None:
    draft = r.new_report("1.2.3", 3, "A", Content("ct-head"), 7, "N", T0)
    with pytest.raises(OruError, match="draft"):
        build_oru(draft, FACTS, TEMPLATE, "x", T0, PARTIES)
