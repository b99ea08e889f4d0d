"""The DiagnosticReport built for a signed report (adapters/fhir/diagnostic_report.py),
read back by fhir.resources (R4B, whose DiagnosticReport and Observation are R4's):
the statuses preliminary, final, appended and corrected on one stable id, the
Observations of coded and numeric fields, the order, the study, the texts."""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fhir.resources.R4B.observation import Observation

from telerad.adapters.fhir.diagnostic_report import (
    NotPublishable,
    diagnostic_report,
    parsed,
    report_id_of,
    resource_id,
)
from telerad.domain import reports as r
from telerad.domain.orders import Order, PatientDemographics, Procedure
from telerad.domain.reports import Content, Report
from telerad.domain.templates import Code, Field, FieldKind, Heading, Option, Section, Template
from telerad.services.reports import ReportFacts

T0 = datetime(2026, 12, 3, 1, 30, tzinfo=UTC)
BASE = "https://reading.example/fhir/r4"
BLEED = Code("1386000", "SCT", "Intracranial hemorrhage")
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
                Field("aspects", "ASPECTS", FieldKind.NUMBER),  # numeric, not coded
                Field(
                    "bleed",
                    "Haemorrhage",
                    FieldKind.MULTIPLE,
                    code=BLEED,
                    options=(
                        Option("sdh", "Subdural", Code("35486000", "SCT", "Subdural haemorrhage")),
                        Option("sah", "Subarachnoid"),
                    ),
                ),
                Field("clot", "Clot sign", FieldKind.CHECKBOX, code=Code("X1", "DCM", "clot")),
                Field("note", "Note"),  # neither coded nor numeric: the text only
            ),
        ),
        Section("impression", "Impression", Heading.IMPRESSION),
    ),
)
FACTS = ReportFacts(
    study_instance_uid="1.2.840.99.1",
    facility_id=3,
    accession_number="ACC-7",
    patient_id="MRN-42",
    patient_name="Ødegård^Zoë",
    sex="F",
    age=56,
    modality="CT",
    procedure_code="70450",
    procedure="CT head without contrast",
    reason="headache",
    study_date=date(2026, 12, 2),
)
ORDER = replace(
    Order(
        3,
        "ACC-7",
        PatientDemographics("MRN-42", "Ødegård^Zoë", "19700412", "F"),
        Procedure("70450", "CT head without contrast", "CPT", "CT"),
        placer_order_number="PL-1",
    ),
    id=55,
)
CONTENT = Content(
    "ct-head",
    "1",
    {"findings": "Thin left subdural collection.", "impression": "Small left SDH."},
    {"midline": "3,5", "aspects": "9", "bleed": "sdh;sah", "clot": "true", "note": "see prior"},
)
READER = (7, "Night^Reader")
FINALISER = (8, "Day^Senior")


def _draft() -> Report:
    return replace(r.new_report("1.2.840.99.1", 3, "ACC-7", CONTENT, *READER, T0), id=12)


def _prelim() -> Report:
    d = _draft()
    return r.sign(d, False, d.version, *READER, T0 + timedelta(minutes=5))


def _final() -> Report:
    p = _prelim()
    return r.sign(p, True, p.version, *READER, T0 + timedelta(hours=6))


def _dr(report: Report, order: Order | None = ORDER, pdf: bytes | None = None) -> dict[str, Any]:
    resource = diagnostic_report(report, FACTS, TEMPLATE, "North Hospital", BASE, order, pdf)
    parsed(resource)  # fhir.resources accepts it, or this raises
    return resource


def _contained(dr: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [c for c in dr["contained"] if c["resourceType"] == kind]


def _text(dr: dict[str, Any]) -> str:
    form = next(f for f in dr["presentedForm"] if f["contentType"].startswith("text/plain"))
    return base64.b64decode(form["data"]).decode("utf-8")


def test_a_draft_is_never_published() -> None:
    with pytest.raises(NotPublishable):
        diagnostic_report(_draft(), FACTS, TEMPLATE, "North Hospital", BASE)


def test_the_preliminary_and_the_final_share_one_id() -> None:
    prelim, final = _dr(_prelim()), _dr(_final())
    assert prelim["status"] == "preliminary" and final["status"] == "final"
    assert prelim["id"] == final["id"] == resource_id(12) == "telerad-12"
    assert report_id_of("telerad-12") == 12
    assert report_id_of("12") is None and report_id_of("telerad-x") is None
    assert {o["status"] for o in _contained(prelim, "Observation")} == {"preliminary"}
    assert final["issued"] == "2026-12-03T07:30:00Z"
    assert final["effectiveDateTime"] == "2026-12-02"


def test_the_resource_names_the_order_study_patient_and_signer() -> None:
    dr = _dr(_final())
    model = parsed(dr)
    assert model.status == "final"
    assert [c.code for c in dr_codings(dr["category"][0])] == ["RAD", "LP29684-5"]
    assert dr["code"]["coding"] == [
        {
            "system": "http://www.ama-assn.org/go/cpt",
            "code": "70450",
            "display": "CT head without contrast",
        }
    ]
    assert dr["basedOn"][0]["reference"] == f"{BASE}/ServiceRequest/55"
    assert dr["basedOn"][0]["identifier"]["value"] == "PL-1"
    assert dr["subject"]["identifier"] == {
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                             "code": "MR"}]},
        "system": "urn:telerad:patient:North%20Hospital",
        "value": "MRN-42",
    }  # fmt: skip
    assert dr["subject"]["display"] == "Ødegård, Zoë"
    accession = dr["identifier"][0]
    assert accession["value"] == "ACC-7"
    assert accession["system"] == "urn:telerad:accession:North%20Hospital"
    (study,) = _contained(dr, "ImagingStudy")
    assert dr["imagingStudy"] == [{"reference": "#study"}]
    assert study["identifier"][0] == {"system": "urn:dicom:uid", "value": "urn:oid:1.2.840.99.1"}
    assert study["modality"][0]["code"] == "CT"
    assert dr["resultsInterpreter"] == [{"display": "Night, Reader"}]
    assert dr["conclusion"] == "Small left SDH."
    assert dr["meta"]["tag"] == [{"system": "urn:telerad:facility", "code": "North Hospital"}]


def dr_codings(concept: dict[str, Any]) -> list[Any]:
    from fhir.resources.R4B.codeableconcept import CodeableConcept

    return list(CodeableConcept.model_validate(concept).coding or [])


def test_without_an_order_the_code_is_loinc_diagnostic_imaging() -> None:
    dr = _dr(_final(), order=None)
    assert dr["code"]["coding"][0]["code"] == "18748-4"
    assert dr["code"]["coding"][0]["system"] == "http://loinc.org"
    assert dr["code"]["text"] == "CT head without contrast"
    assert "basedOn" not in dr


def test_coded_and_numeric_fields_are_observations() -> None:
    dr = _dr(_final())
    observations = _contained(dr, "Observation")
    for o in observations:
        Observation.model_validate(o)
    assert dr["result"] == [{"reference": f"#{o['id']}"} for o in observations]
    by_label = [(o["code"]["text"], o) for o in observations]
    labels = [label for label, _ in by_label]
    assert labels == ["Midline shift", "ASPECTS", "Haemorrhage", "Haemorrhage", "Clot sign"]
    midline = by_label[0][1]
    assert midline["code"]["coding"][0] == {
        "system": "http://www.radlex.org",
        "code": "RID38636",
        "display": "midline shift",
    }
    assert midline["valueQuantity"] == {
        "value": 3.5,
        "unit": "mm",
        "system": "http://unitsofmeasure.org",
        "code": "mm",
    }
    assert by_label[1][1]["valueQuantity"] == {"value": 9}
    assert "coding" not in by_label[1][1]["code"]
    sdh, sah = by_label[2][1], by_label[3][1]
    assert sdh["code"]["coding"][0]["code"] == "1386000"
    assert sdh["valueCodeableConcept"]["coding"] == [
        {"system": "http://snomed.info/sct", "code": "35486000", "display": "Subdural haemorrhage"}
    ]
    assert sah["valueCodeableConcept"] == {"text": "Subarachnoid"}  # an uncoded option
    assert by_label[4][1]["valueBoolean"] is True
    assert all(o["subject"] == dr["subject"] for o in observations)


def test_an_addendum_makes_it_appended_and_its_text_part_of_the_report() -> None:
    final = _final()
    appended = r.addend(final, "Also: sinusitis.", final.version, *FINALISER, T0 + timedelta(1))
    dr = _dr(appended)
    assert dr["status"] == "appended"
    assert {o["status"] for o in _contained(dr, "Observation")} == {"final"}
    assert dr["resultsInterpreter"] == [{"display": "Night, Reader"}, {"display": "Day, Senior"}]
    assert dr["performer"] == [{"display": "Day, Senior"}]
    text = _text(dr)
    assert "ADDENDUM (Day, Senior, 2026-12-04 01:30)\nAlso: sinusitis." in text
    assert "IMPRESSION\nSmall left SDH." in text
    assert "Midline shift: 3,5 mm" in text and "Haemorrhage: Subdural, Subarachnoid" in text


def test_a_correction_is_corrected_on_the_same_id_with_its_reason() -> None:
    final = _final()
    changed = Content("ct-head", "1", {"impression": "No haemorrhage."}, {"midline": "0"})
    fixed = r.correct(final, changed, "wrong patient's images", final.version, *READER, T0)
    dr = _dr(fixed)
    assert dr["status"] == "corrected" and dr["id"] == "telerad-12"
    assert dr["conclusion"] == "No haemorrhage."
    (obs,) = _contained(dr, "Observation")
    assert obs["status"] == "corrected" and obs["valueQuantity"]["value"] == 0
    assert dr["extension"][0]["valueString"] == "wrong patient's images"
    assert "CORRECTED REPORT\nReason: wrong patient's images" in _text(dr)


def test_an_unsigned_revision_of_a_preliminary_is_not_shown() -> None:
    prelim = _prelim()
    revised = r.save(
        prelim,
        Content("ct-head", "1", {"impression": "Draft words."}),
        prelim.version,
        *FINALISER,
        T0 + timedelta(hours=1),
    )
    dr = _dr(revised)
    assert dr["status"] == "preliminary" and dr["conclusion"] == "Small left SDH."
    assert "Draft words." not in _text(dr)


def test_a_pdf_is_a_second_presented_form() -> None:
    dr = _dr(_final(), pdf=b"%PDF-1.7 fake")
    forms = dr["presentedForm"]
    assert [f["contentType"] for f in forms] == ["text/plain; charset=utf-8", "application/pdf"]
    assert base64.b64decode(forms[1]["data"]) == b"%PDF-1.7 fake"
