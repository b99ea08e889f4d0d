"""A signed report as a FHIR R4 DiagnosticReport (pure: no I/O).

What is sent (``docs/fhir.md`` has the profile):

* ``id`` ``telerad-<report id>``: one per report, kept through every signature,
  addendum and correction, so a receiver that takes it by ``PUT`` updates what it
  holds instead of adding a second result (and a server that refuses numeric
  client-assigned ids, as HAPI does by default, takes it);
* ``status`` from the newest *signed* version: ``preliminary``, ``final``,
  ``appended`` (a final with addenda), ``corrected``; an unsigned revision of a
  preliminary is never shown;
* ``identifier``: the accession number (type ACSN, system
  ``urn:telerad:accession:<facility>``, as the ServiceRequests say) and the report's
  own (``urn:telerad:report``);
* ``category`` Radiology (v2-0074 ``RAD`` and LOINC ``LP29684-5``); ``code`` the
  ordered procedure (the order's code in its system), else LOINC ``18748-4``
  Diagnostic imaging study, with the procedure's description as its text;
* ``subject`` a logical reference to the patient by identifier (type MR, system
  ``urn:telerad:patient:<facility>``: the facility is the identifier's assigning
  authority) with the name as its display; ``basedOn`` the ServiceRequest of the
  order (an absolute URL on this server, and the placer number when there is one);
* ``imagingStudy`` a contained ImagingStudy with the Study Instance UID
  (``urn:dicom:uid``, ``urn:oid:…``), the accession number and the modality;
* ``effectiveDateTime`` the study date, ``issued`` the signature's time;
  ``resultsInterpreter`` every signer in turn, ``performer`` the newest signer;
* ``conclusion`` the impression; ``result`` contained Observations for the coded
  and numeric fields (the field's code; a CodeableConcept from the chosen option's
  code, a Quantity in UCUM, a boolean, a date or a string);
* ``presentedForm`` the whole report as ``text/plain`` (UTF-8, base64) and, when a
  renderer gave one, as ``application/pdf``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

from telerad.adapters.fhir.service_request import (
    DCM,
    DICOM_UID,
    FACILITY_TAG,
    PATIENT_PREFIX,
    SYSTEMS,
    V2_0203,
    accession_system,
    from_pn,
)
from telerad.domain.orders import Order
from telerad.domain.reports import Report, ReportEvent, ReportStatus, Version
from telerad.domain.templates import Code, Field, FieldKind, Heading, Template, as_number, narrative
from telerad.services.reports import ReportFacts

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
REPORT_SYSTEM = "urn:telerad:report"
_EXT = "urn:telerad:fhir:StructureDefinition/"
CORRECTION_EXTENSION = _EXT + "correction-reason"
ID_PREFIX = "telerad-"
#: Imaging procedures without an order: LOINC's generic one.
DIAGNOSTIC_IMAGING = {"system": LOINC, "code": "18748-4", "display": "Diagnostic imaging study"}

#: Report status → DiagnosticReport.status (drafts and cancelled drafts are never sent).
FHIR_STATUS: dict[ReportStatus, str] = {
    ReportStatus.PRELIMINARY: "preliminary",
    ReportStatus.FINAL: "final",
    ReportStatus.APPENDED: "appended",
    ReportStatus.CORRECTED: "corrected",
}
#: An Observation's values do not change with an addendum: it stays final.
_OBSERVATION_STATUS: dict[ReportStatus, str] = {
    ReportStatus.PRELIMINARY: "preliminary",
    ReportStatus.FINAL: "final",
    ReportStatus.APPENDED: "final",
    ReportStatus.CORRECTED: "corrected",
}
#: Coding scheme designators (as templates write them) → FHIR code systems.
CODE_SYSTEMS: dict[str, str] = {**SYSTEMS, "DCM": DCM, "UCUM": UCUM}
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")


class NotPublishable(ValueError):
    """The report has no signed version: nothing outside the reading room sees it."""


def resource_id(report_id: int) -> str:
    return f"{ID_PREFIX}{report_id}"


def report_id_of(fhir_id: str) -> int | None:
    """The report a DiagnosticReport id names (``telerad-12`` → 12), else None."""
    number = fhir_id.removeprefix(ID_PREFIX) if fhir_id.startswith(ID_PREFIX) else ""
    return int(number) if number.isdigit() and len(number) < 19 else None


def diagnostic_report(
    report: Report,
    facts: ReportFacts,
    template: Template | None,
    facility: str,
    base: str,
    order: Order | None = None,
    pdf: bytes | None = None,
) -> dict[str, Any]:
    """The DiagnosticReport of ``report``'s newest signed version (see the module).
    ``base`` is this server's FHIR base URL (``…/fhir/r4``) for ``basedOn``."""
    signed = report.signed
    if signed is None or report.id is None or signed.status not in FHIR_STATUS:
        raise NotPublishable(f"report {report.id} is not signed")
    issued = _instant(signed.made_at)
    subject = _subject(facts, facility)
    contained: list[dict[str, Any]] = [_imaging_study(facts, subject, facility)]
    observations = list(_observations(signed, template, subject, facts.study_date, issued))
    contained.extend(observations)
    signers = _signers(report, signed)
    resource: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": resource_id(report.id),
        "meta": {"lastUpdated": issued, "tag": [{"system": FACILITY_TAG, "code": facility}]},
        "contained": contained,
        "identifier": [
            {
                "type": {"coding": [{"system": V2_0203, "code": "ACSN"}]},
                "system": accession_system(facility),
                "value": report.accession_number or facts.accession_number,
            },
            {"system": REPORT_SYSTEM, "value": str(report.id)},
        ],
        "status": FHIR_STATUS[signed.status],
        "category": [
            {
                "coding": [
                    {"system": V2_0074, "code": "RAD", "display": "Radiology"},
                    {"system": LOINC, "code": "LP29684-5", "display": "Radiology"},
                ]
            }
        ],
        "code": _procedure(facts, order),
        "subject": subject,
        "issued": issued,
        "performer": [{"display": from_pn(signed.author)}],
        "resultsInterpreter": [{"display": from_pn(name)} for name in signers],
        "imagingStudy": [{"reference": "#study"}],
    }
    if not resource["identifier"][0]["value"]:
        resource["identifier"].pop(0)
    if order is not None and order.id is not None:
        based: dict[str, Any] = {"reference": f"{base}/ServiceRequest/{order.id}"}
        if order.placer_order_number:
            based["identifier"] = {
                "type": {"coding": [{"system": V2_0203, "code": "PLAC"}]},
                "value": order.placer_order_number,
            }
        resource["basedOn"] = [based]
    if facts.study_date is not None:
        resource["effectiveDateTime"] = facts.study_date.isoformat()
    if observations:
        resource["result"] = [{"reference": f"#{o['id']}"} for o in observations]
    impression = _impression(signed, template)
    if impression:
        resource["conclusion"] = impression
    reason = _correction_reason(report, signed)
    if reason:
        resource["extension"] = [{"url": CORRECTION_EXTENSION, "valueString": reason}]
    language = template.language if template is not None and template.language else "en"
    forms = [
        {
            "contentType": "text/plain; charset=utf-8",
            "language": language,
            "data": base64.b64encode(report_text(report, template).encode()).decode("ascii"),
            "title": "Report",
            "creation": issued,
        }
    ]
    if pdf is not None:
        forms.append(
            {
                "contentType": "application/pdf",
                "language": language,
                "data": base64.b64encode(pdf).decode("ascii"),
                "title": "Report (PDF)",
                "creation": issued,
            }
        )
    resource["presentedForm"] = forms
    return resource


# -- parts -----------------------------------------------------------------------------
def _subject(facts: ReportFacts, facility: str) -> dict[str, Any]:
    subject: dict[str, Any] = {
        "type": "Patient",
        "identifier": {
            "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
            "system": patient_system(facility),
            "value": facts.patient_id,
        },
    }
    if facts.patient_name:
        subject["display"] = from_pn(facts.patient_name)
    return subject


def patient_system(facility: str) -> str:
    """The system of a facility's patient identifiers (the assigning authority)."""
    return PATIENT_PREFIX + quote(facility, safe="")


def _procedure(facts: ReportFacts, order: Order | None) -> dict[str, Any]:
    coding: dict[str, Any]
    if order is not None and order.procedure.code:
        proc = order.procedure
        coding = {"code": proc.code}
        if proc.coding_scheme in SYSTEMS:
            coding = {"system": SYSTEMS[proc.coding_scheme], **coding}
        if proc.description:
            coding["display"] = proc.description
    else:
        coding = dict(DIAGNOSTIC_IMAGING)
    concept: dict[str, Any] = {"coding": [coding]}
    text = (order.procedure.description if order is not None else "") or facts.procedure
    if text:
        concept["text"] = text
    return concept


def _imaging_study(facts: ReportFacts, subject: dict[str, Any], facility: str) -> dict[str, Any]:
    identifiers: list[dict[str, Any]] = [
        {"system": DICOM_UID, "value": f"urn:oid:{facts.study_instance_uid}"}
    ]
    if facts.accession_number:
        identifiers.append(
            {
                "type": {"coding": [{"system": V2_0203, "code": "ACSN"}]},
                "system": accession_system(facility),
                "value": facts.accession_number,
            }
        )
    study: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "id": "study",
        "identifier": identifiers,
        "status": "available",
        "subject": subject,
    }
    if facts.modality:
        study["modality"] = [{"system": DCM, "code": facts.modality}]
    if facts.study_date is not None:
        study["started"] = facts.study_date.isoformat()
    if facts.procedure:
        study["description"] = facts.procedure
    return study


def _observations(
    signed: Version,
    template: Template | None,
    subject: dict[str, Any],
    study_date: date | None,
    issued: str,
) -> Iterator[dict[str, Any]]:
    if template is None:
        return
    n = 0
    for _, f in template.fields():
        value = signed.content.value(f.id).strip()
        if not value or (f.code is None and f.kind is not FieldKind.NUMBER):
            continue
        for v in _values(f, value):
            n += 1
            obs: dict[str, Any] = {
                "resourceType": "Observation",
                "id": f"obs-{n}",
                "status": _OBSERVATION_STATUS[signed.status],
                "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "imaging"}]}],
                "code": _field_code(f),
                "subject": subject,
                "issued": issued,
                **v,
            }
            if study_date is not None:
                obs["effectiveDateTime"] = study_date.isoformat()
            yield obs


def _field_code(f: Field) -> dict[str, Any]:
    label = f"{f.group}: {f.label}" if f.group else f.label
    if f.code is None:
        return {"text": label}
    return {"coding": [_coding(f.code)], "text": label}


def _values(f: Field, value: str) -> Iterator[dict[str, Any]]:
    """The Observation value(s) of one field: one per value of a multiple choice."""
    if f.kind is FieldKind.NUMBER:
        number = as_number(value)
        text = value.replace(",", ".")
        if number is None or not _NUMBER.fullmatch(text):
            return
        quantity: dict[str, Any] = {"value": int(text) if text.lstrip("+-").isdigit() else number}
        if f.unit:
            quantity.update({"unit": f.unit, "system": UCUM, "code": f.unit})
        yield {"valueQuantity": quantity}
    elif f.kind in (FieldKind.CHOICE, FieldKind.MULTIPLE):
        for v in (x.strip() for x in value.split(";")):
            option = f.option(v)
            if option is None:
                continue
            concept: dict[str, Any] = {"text": option.label}
            if option.code is not None:
                concept["coding"] = [_coding(option.code)]
            yield {"valueCodeableConcept": concept}
    elif f.kind is FieldKind.CHECKBOX:
        yield {"valueBoolean": value.lower() in ("true", "yes", "1", "on")}
    elif f.kind is FieldKind.DATE and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        yield {"valueDateTime": value}
    else:
        yield {"valueString": value}


def _coding(code: Code) -> dict[str, Any]:
    system = CODE_SYSTEMS.get(code.scheme, f"urn:telerad:scheme:{quote(code.scheme, safe='')}")
    coding: dict[str, Any] = {"system": system, "code": code.value}
    if code.meaning:
        coding["display"] = code.meaning
    return coding


def _impression(signed: Version, template: Template | None) -> str:
    section = template.section(Heading.IMPRESSION) if template is not None else None
    return signed.content.text(section.id if section is not None else "impression").strip()


def _signers(report: Report, upto: Version) -> list[str]:
    names: list[str] = []
    for v in report.versions[: upto.number]:
        if v.signed and v.author and v.author not in names:
            names.append(v.author)
    return names


def _correction_reason(report: Report, upto: Version) -> str:
    reasons = [v.reason for v in report.versions[: upto.number] if v.event is ReportEvent.CORRECT]
    return reasons[-1] if reasons else ""


def report_text(report: Report, template: Template | None) -> str:
    """The newest signed version as plain text: each section's title and text with its
    fields' values, then the addenda, then a correction's reason."""
    signed = report.signed
    if signed is None:
        raise NotPublishable(f"report {report.id} is not signed")
    content = signed.content
    blocks: list[str] = []
    sections = template.sections if template is not None else ()
    known = set()
    for section in sections:
        known.add(section.id)
        prose = narrative(section, content.text(section.id), content.fields)
        if prose:
            blocks.append(f"{section.title.upper()}\n{prose}")
    for section_id, text in content.sections.items():
        if section_id not in known and text.strip():
            blocks.append(f"{section_id.upper()}\n{text.rstrip()}")
    for v in report.versions[: signed.number]:
        if v.event is ReportEvent.ADDEND:
            when = v.made_at.strftime("%Y-%m-%d %H:%M")
            blocks.append(f"ADDENDUM ({from_pn(v.author)}, {when})\n{v.addendum}")
    reason = _correction_reason(report, signed)
    if reason:
        blocks.append(f"CORRECTED REPORT\nReason: {reason}")
    status = FHIR_STATUS[signed.status]
    when = signed.made_at.strftime("%Y-%m-%d %H:%M")
    blocks.append(f"Signed ({status}) by {from_pn(signed.author)}, {when}")
    return "\n\n".join(blocks) + "\n"


def _instant(value: datetime) -> str:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parsed(resource: Mapping[str, Any]) -> Any:
    """``resource`` read by fhir.resources (R4B: its DiagnosticReport is R4's); raises
    pydantic's ValidationError when it is not valid."""
    from fhir.resources.R4B.diagnosticreport import DiagnosticReport

    return DiagnosticReport.model_validate(dict(resource))
