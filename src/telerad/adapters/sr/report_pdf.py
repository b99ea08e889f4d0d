"""A signed report as a PDF on the facility's letterhead (weasyprint), and that PDF as
a DICOM Encapsulated PDF Storage instance in the report's study (pydicom).

The page (``report.html``, Jinja2, autoescaped): the facility's name and address when
known and the platform's name; a ``PRELIMINARY`` or ``CORRECTED`` banner when the
report is one; patient, accession, procedure, study date and status; every section
with text or values under its title, coded fields by their labels; the reason of a
correction; each addendum with its author and time; the signer and the time of the
signature. The DICOM object (Modality DOC, the report's PDF series, one instance per
signature) copies the patient and study attributes from an instance of the study,
so it lands in the study beside the images.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files

import jinja2
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian

from telerad.adapters.sr.report_sr import (
    DELIVERED,
    MANUFACTURER,
    PDF_SERIES_NUMBER,
    Issuer,
    SrError,
    content_signer,
    uids_of,
)
from telerad.domain.reports import Report, ReportEvent, ReportStatus
from telerad.domain.templates import FieldKind, Template, split_values

ENCAPSULATED_PDF = UID("1.2.840.10008.5.1.4.1.1.104.1")
#: Patient and study attributes copied from the study's instance (PS3.3 C.7.1.1, C.7.2.1).
_COPIED = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
)
_STATUS_TEXT = {
    ReportStatus.PRELIMINARY: "Preliminary",
    ReportStatus.FINAL: "Final",
    ReportStatus.APPENDED: "Final, with addenda",
    ReportStatus.CORRECTED: "Corrected",
}

_env = jinja2.Environment(
    loader=jinja2.FunctionLoader(
        lambda name: files("telerad.adapters.sr").joinpath(name).read_text("utf-8")
    ),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


@dataclass(frozen=True)
class Letterhead:
    """Whose paper the report is printed on."""

    facility: str
    address: str = ""
    platform: str = "telerad"


@dataclass(frozen=True)
class PageFacts:
    """What the page says about the patient and the study."""

    patient_name: str
    patient_id: str
    accession: str
    procedure: str
    birth_date: str = ""
    study_date: str = ""


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _pn(pn: str) -> str:
    """A DICOM PN as people write it: "Given Family" (the alphabetic group)."""
    parts = pn.split("=")[0].split("^")
    family = parts[0] if parts else ""
    given = " ".join(p for p in parts[1:3] if p)
    prefix = parts[3] if len(parts) > 3 else ""
    return " ".join(p for p in (prefix, given, family) if p) or pn


def _date(value: str) -> str:
    value = value.strip()
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else ""


def _sections(report: Report, template: Template | None) -> Iterator[dict[str, object]]:
    content = report.content
    if template is None:
        for section_id, text in content.sections.items():
            if text.strip():
                yield {"title": section_id.capitalize(), "text": text.strip(), "fields": []}
        return
    for section in template.sections:
        shown: list[tuple[str, str]] = []
        for field in section.fields:
            value = content.value(field.id).strip()
            if not value:
                continue
            if field.kind in (FieldKind.CHOICE, FieldKind.MULTIPLE):
                values = split_values(value) if field.kind is FieldKind.MULTIPLE else [value]
                value = "; ".join(o.label if (o := field.option(v)) else v for v in values)
            elif field.kind is FieldKind.NUMBER and field.unit:
                value = f"{value} {field.unit}"
            shown.append((field.label, value))
        text = content.text(section.id).strip()
        if text or shown:
            yield {"title": section.title, "text": text, "fields": shown}


def report_html(
    report: Report, template: Template | None, page: PageFacts, letterhead: Letterhead
) -> str:
    """The report as one HTML page, ready for weasyprint."""
    signed = report.signed
    if signed is None or report.status not in DELIVERED:
        raise SrError(f"a {report.status.value} report is not delivered")
    signer = content_signer(report)
    banner = ""
    if report.status is ReportStatus.PRELIMINARY:
        banner = "PRELIMINARY"
    elif report.status is ReportStatus.CORRECTED or signer.event is ReportEvent.CORRECT:
        banner = "CORRECTED"
    status = _STATUS_TEXT[report.status]
    return _env.get_template("report.html").render(
        title="Diagnostic imaging report",
        facility=letterhead.facility,
        address=letterhead.address,
        platform=letterhead.platform,
        banner=banner,
        patient_name=_pn(page.patient_name),
        patient_id=page.patient_id,
        birth_date=_date(page.birth_date),
        accession=page.accession,
        procedure=page.procedure,
        study_date=_date(page.study_date),
        status=status,
        sections=list(_sections(report, template)),
        correction=signer.reason if signer.event is ReportEvent.CORRECT else "",
        addenda=[
            {"text": v.addendum, "author": _pn(v.author), "at": _when(v.made_at)}
            for v in report.addenda()
        ],
        signer=_pn(signer.author),
        signed_at=_when(signer.made_at),
        status_note="preliminary, not verified" if banner == "PRELIMINARY" else "",
    )


def render_pdf(html: str) -> bytes:
    """``html`` as PDF bytes (weasyprint; imported here: it loads pango when first used)."""
    import weasyprint

    pdf: bytes = weasyprint.HTML(string=html).write_pdf()
    return pdf


def page_facts(study: Dataset, procedure: str) -> PageFacts:
    return PageFacts(
        str(study.get("PatientName", "")),
        str(study.get("PatientID", "")),
        str(study.get("AccessionNumber", "")),
        procedure or str(study.get("StudyDescription", "")),
        str(study.get("PatientBirthDate", "")),
        str(study.get("StudyDate", "")),
    )


def build_pdf_dataset(report: Report, pdf: bytes, study: Dataset, issuer: Issuer) -> Dataset:
    """``pdf`` as an Encapsulated PDF instance in the report's study and PDF series."""
    signed = report.signed
    if report.id is None or signed is None:
        raise SrError("the report has not been signed")
    if study.get("StudyInstanceUID") != report.study_instance_uid:
        raise SrError("the study attributes are not the report's study")
    uids = uids_of(report.study_instance_uid, report.id, signed.number)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword in _COPIED:
        ds.setdefault(keyword, study.get(keyword, ""))
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
        ds.setdefault(keyword, "")
    ds.SOPClassUID = ENCAPSULATED_PDF
    ds.SOPInstanceUID = uids.pdf_instance
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = uids.pdf_series
    ds.SeriesNumber = PDF_SERIES_NUMBER
    ds.SeriesDescription = "Report (PDF)"
    ds.Manufacturer = MANUFACTURER
    if issuer.institution:
        ds.InstitutionName = issuer.institution[:64]
    ds.StationName = issuer.station[:16]
    ds.ConversionType = "WSD"  # SC Equipment: made on a workstation
    when = signed.made_at.astimezone(UTC).strftime("%Y%m%d%H%M%S")
    ds.InstanceNumber = signed.number
    ds.ContentDate, ds.ContentTime = when[:8], when[8:]
    ds.InstanceCreationDate, ds.InstanceCreationTime = when[:8], when[8:]
    ds.AcquisitionDateTime = when + "+0000"
    ds.TimezoneOffsetFromUTC = "+0000"
    ds.BurnedInAnnotation = "YES"  # the page names the patient
    ds.DocumentTitle = "Diagnostic imaging report"
    concept = Dataset()
    concept.CodeValue = "18748-4"
    concept.CodingSchemeDesignator = "LN"
    concept.CodeMeaning = "Diagnostic imaging report"
    ds.ConceptNameCodeSequence = [concept]
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(pdf)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds
