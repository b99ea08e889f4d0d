"""A signed report as a DICOM Comprehensive SR following TID 2000, Basic Diagnostic
Imaging Report (built with highdicom).

The content tree, for the report as it stands after one signature::

    CONTAINER (18748-4, LN, "Diagnostic imaging report")        TID 2000 (DCMR)
      HAS CONCEPT MOD  CODE (121049, DCM, "Language of Content Item and Descendants")  TID 1204
      HAS OBS CONTEXT  CODE (121005, DCM, "Observer Type") = Person                    TID 1002
      HAS OBS CONTEXT  PNAME (121008, DCM, "Person Observer Name") = the signer
      HAS CONCEPT MOD  CODE (121058, DCM, "Procedure reported") = the procedure
      [HAS CONCEPT MOD TEXT (CORRECTION, 99TELERAD, "Reason for correction")]
      CONTAINS CONTAINER (section's CID 7001 heading, LN)                  one per section
        CONTAINS TEXT (CID 7002 element, e.g. 121071 "Finding") = the section's text
        CONTAINS CODE (the field's code) = the option's code          coded pick lists
        CONTAINS NUM  (the field's code) = value, UCUM unit                    numbers
        CONTAINS TEXT (the field's code) = value                          other fields
      CONTAINS CONTAINER (55107-7, LN, "Addendum")                      one per addendum
        HAS OBS CONTEXT  the addendum's author (TID 1002)
        CONTAINS TEXT (55107-7, LN, "Addendum") = its text

Flags by status: a preliminary is COMPLETE, UNVERIFIED, PRELIMINARY; a final (and an
appended or corrected final) COMPLETE, VERIFIED, FINAL, with the Verifying Observer
Sequence naming the signer of this version and the time it was signed. Every
signature is a new SR instance; from the second on, the Predecessor Documents
Sequence references the SR of the previous signature, so an addendum or a
correction supersedes what the facility holds. A section without a CID 7001 heading
and a field without a code are named by a local code (``99TELERAD``, the template's
ids). UIDs are derived from the study, the report and its version (:func:`uid_for`),
so building an object twice gives it the same UIDs: the archive keeps it once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import highdicom as hd
from highdicom.sr import (
    CodeContentItem,
    CodedConcept,
    ComprehensiveSR,
    ContainerContentItem,
    LanguageOfContentItemAndDescendants,
    NumContentItem,
    ObserverContext,
    PersonObserverIdentifyingAttributes,
    RelationshipTypeValues,
    TextContentItem,
)
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes
from pydicom.uid import UID

from telerad.domain.reports import Report, ReportEvent, ReportStatus, Version
from telerad.domain.templates import (
    Code,
    Field,
    FieldKind,
    Heading,
    Section,
    Template,
    as_number,
    split_values,
)

#: Coding scheme designator of the platform's own codes (sections, fields, notes).
LOCAL_SCHEME = "99TELERAD"
MANUFACTURER = "telerad"
SR_SERIES_NUMBER = 9901
PDF_SERIES_NUMBER = 9902
COMPREHENSIVE_SR = UID("1.2.840.10008.5.1.4.1.1.88.33")

DOCUMENT_TITLE = CodedConcept("18748-4", "LN", "Diagnostic imaging report")
ADDENDUM = CodedConcept("55107-7", "LN", "Addendum")
ENGLISH = CodedConcept("en-US", "RFC5646", "English (United States)")
PROCEDURE_REPORTED = CodedConcept("121058", "DCM", "Procedure reported")
CORRECTION_REASON = CodedConcept("CORRECTION", LOCAL_SCHEME, "Reason for correction")

#: The TEXT item's concept in each section (CID 7002 Diagnostic Imaging Report Elements);
#: headings with no element of their own name their text by the heading itself.
_ELEMENTS: dict[Heading, CodedConcept] = {
    Heading.HISTORY: CodedConcept("11329-0", "LN", "History"),
    Heading.CLINICAL_INFORMATION: CodedConcept("11329-0", "LN", "History"),
    Heading.INDICATIONS: CodedConcept("55115-0", "LN", "Request"),
    Heading.REQUEST: CodedConcept("55115-0", "LN", "Request"),
    Heading.PROCEDURE: CodedConcept("121065", "DCM", "Procedure Description"),
    Heading.COMPARISON: CodedConcept("121069", "DCM", "Previous Finding"),
    Heading.FINDINGS: CodedConcept("121071", "DCM", "Finding"),
    Heading.IMPRESSION: CodedConcept("121073", "DCM", "Impression"),
    Heading.RECOMMENDATIONS: CodedConcept("121075", "DCM", "Recommendation"),
    Heading.CONCLUSIONS: CodedConcept("121077", "DCM", "Conclusion"),
    Heading.SUMMARY: CodedConcept("55112-7", "LN", "Summary"),
}

#: Report statuses delivered as DICOM objects (a draft or a cancelled one never is).
DELIVERED = frozenset(
    {ReportStatus.PRELIMINARY, ReportStatus.FINAL, ReportStatus.APPENDED, ReportStatus.CORRECTED}
)
_CONTENT = frozenset({ReportEvent.SIGN_PRELIMINARY, ReportEvent.SIGN_FINAL, ReportEvent.CORRECT})


class SrError(ValueError):
    """The report cannot be made into an SR (not signed, no study attributes)."""


def uid_for(study_uid: str, *parts: object) -> str:
    """A UID under 2.25 (PS3.5 B.2) derived from the study and ``parts``: the same
    inputs always give the same UID, different ones (practically) never do."""
    name = "/".join(["telerad", study_uid, *(str(p) for p in parts)])
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, name).int}"


@dataclass(frozen=True)
class ReportObjectUids:
    """The UIDs of a report's SR and PDF for one version (see :func:`uids_of`)."""

    sr_series: str
    sr_instance: str
    pdf_series: str
    pdf_instance: str


def uids_of(study_uid: str, report_id: int, version: int) -> ReportObjectUids:
    """One SR series and one PDF series per report; one instance of each per version."""
    return ReportObjectUids(
        uid_for(study_uid, report_id, "sr"),
        uid_for(study_uid, report_id, version, "sr"),
        uid_for(study_uid, report_id, "pdf"),
        uid_for(study_uid, report_id, version, "pdf"),
    )


def as_of(report: Report, version: int) -> Report:
    """The report as it stood at ``version`` (its later versions left out)."""
    kept = tuple(v for v in report.versions if v.number <= version)
    if not kept:
        raise SrError(f"the report has no version {version}")
    return Report(
        report.study_instance_uid,
        report.facility_id,
        report.accession_number,
        kept,
        report.id,
        report.difference,
        report.preliminary_by,
        report.final_by,
    )


def content_signer(report: Report) -> Version:
    """The signature that made the current content (an addendum does not)."""
    for v in reversed(report.versions):
        if v.signed and v.event in _CONTENT:
            return v
    raise SrError("the report has not been signed")


def previous_signature(report: Report) -> Version | None:
    """The signature before the latest one: the SR its SR supersedes."""
    signed = [v for v in report.versions if v.signed]
    return signed[-2] if len(signed) >= 2 else None


def person_name(pn: str) -> str:
    """A DICOM PN: a name without components is taken as the family name."""
    pn = pn.strip()
    return pn if "^" in pn or not pn else pn + "^"


def _concept(code: Code) -> CodedConcept:
    return CodedConcept(code.value, code.scheme, code.meaning[:64] or code.value)


def _local(value: str, meaning: str) -> CodedConcept:
    return CodedConcept(value[:64], LOCAL_SCHEME, (meaning or value)[:64])


def _observer(pn: str, relationship: bool = True) -> list[hd.sr.ContentItem]:
    context = ObserverContext(
        observer_type=codes.cid270.Person,
        observer_identifying_attributes=PersonObserverIdentifyingAttributes(
            name=person_name(pn) or "Unknown^"
        ),
    )
    return [item for item in cast(Iterable[hd.sr.ContentItem], context)]


# --------------------------------------------------------------------------- sections


def _field_items(field: Field, value: str) -> list[hd.sr.ContentItem]:
    contains = RelationshipTypeValues.CONTAINS
    name = _concept(field.code) if field.code else _local(field.id, field.label)
    value = value.strip()
    if not value:
        return []
    if field.kind is FieldKind.NUMBER:
        number = as_number(value)
        if number is not None:
            unit = (
                CodedConcept(field.unit, "UCUM", field.unit)
                if field.unit
                else CodedConcept("1", "UCUM", "no units")
            )
            return [NumContentItem(name, number, unit, relationship_type=contains)]
    if field.kind in (FieldKind.CHOICE, FieldKind.MULTIPLE):
        values = split_values(value) if field.kind is FieldKind.MULTIPLE else [value]
        options = [field.option(v) for v in values]
        if options and all(o is not None and o.code is not None for o in options):
            return [
                CodeContentItem(name, _concept(o.code), relationship_type=contains)
                for o in options
                if o is not None and o.code is not None
            ]
        labels = [o.label if o is not None else v for o, v in zip(options, values, strict=True)]
        value = "; ".join(labels)
    return [TextContentItem(name, value, relationship_type=contains)]


def _section(section: Section, text: str, fields: dict[str, str]) -> ContainerContentItem | None:
    items: list[hd.sr.ContentItem] = []
    heading = section.heading
    if text.strip():
        element = _ELEMENTS.get(heading) if heading is not None else None
        if element is None:
            element = (
                _concept(heading.code) if heading is not None else _local(section.id, section.title)
            )
        items.append(
            TextContentItem(
                element, text.strip(), relationship_type=RelationshipTypeValues.CONTAINS
            )
        )
    for field in section.fields:
        items.extend(_field_items(field, fields.get(field.id, "")))
    if not items:
        return None
    name = _concept(heading.code) if heading is not None else _local(section.id, section.title)
    container = ContainerContentItem(name, relationship_type=RelationshipTypeValues.CONTAINS)
    container.ContentSequence = DicomSequence(items)
    return container


def _sections(report: Report, template: Template | None) -> list[ContainerContentItem]:
    content = report.content
    containers: list[ContainerContentItem] = []
    if template is not None:
        fields = dict(content.fields)
        for section in template.sections:
            made = _section(section, content.text(section.id), fields)
            if made is not None:
                containers.append(made)
        return containers
    for section_id, text in content.sections.items():  # no template: the ids name them
        bare = Section(section_id, section_id.replace("-", " ").capitalize(), None)
        made = _section(bare, text, {})
        if made is not None:
            containers.append(made)
    return containers


def _addenda(report: Report) -> list[ContainerContentItem]:
    out = []
    for version in report.addenda():
        container = ContainerContentItem(
            ADDENDUM, relationship_type=RelationshipTypeValues.CONTAINS
        )
        container.ContentSequence = DicomSequence(
            [
                *_observer(version.author),
                TextContentItem(
                    ADDENDUM, version.addendum, relationship_type=RelationshipTypeValues.CONTAINS
                ),
            ]
        )
        out.append(container)
    return out


def content_tree(
    report: Report, template: Template | None, procedure: CodedConcept | None
) -> ContainerContentItem:
    """The TID 2000 root container of ``report`` as it stands."""
    signer = content_signer(report)
    root = ContainerContentItem(DOCUMENT_TITLE, template_id="2000")
    items: list[hd.sr.ContentItem] = [
        *LanguageOfContentItemAndDescendants(ENGLISH),
        *_observer(signer.author),
    ]
    if procedure is not None:
        items.append(
            CodeContentItem(
                PROCEDURE_REPORTED,
                procedure,
                relationship_type=RelationshipTypeValues.HAS_CONCEPT_MOD,
            )
        )
    if signer.event is ReportEvent.CORRECT and signer.reason:
        items.append(
            TextContentItem(
                CORRECTION_REASON,
                signer.reason,
                relationship_type=RelationshipTypeValues.HAS_CONCEPT_MOD,
            )
        )
    items.extend(_sections(report, template))
    items.extend(_addenda(report))
    root.ContentSequence = DicomSequence(items)
    return root


# --------------------------------------------------------------------------- the document


@dataclass(frozen=True)
class Issuer:
    """Who makes the objects: the reading network (the verifying organisation)."""

    organization: str = "telerad"
    institution: str = ""  # the facility's name (Institution Name)
    station: str = "TELERAD"  # Station Name: the platform's AE title


def dicom_datetime(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%d%H%M%S+0000")


def build_sr(
    report: Report,
    template: Template | None,
    study: Dataset,
    evidence: Sequence[Dataset],
    issuer: Issuer,
    procedure: CodedConcept | None = None,
) -> Dataset:
    """The Comprehensive SR of ``report`` after its latest signature. ``study`` is an
    instance of the study (patient and study attributes are copied from it);
    ``evidence`` the study's instances the report is about (at least ``study``)."""
    signed = report.signed
    if report.id is None or signed is None or report.status not in DELIVERED:
        raise SrError(f"a {report.status.value} report is not delivered")
    if study.get("StudyInstanceUID") != report.study_instance_uid:
        raise SrError("the study attributes are not the report's study")
    final = report.status is not ReportStatus.PRELIMINARY
    uids = uids_of(report.study_instance_uid, report.id, signed.number)
    previous = previous_signature(report)
    predecessors = None
    if previous is not None:
        before = Dataset()
        before.SOPClassUID = COMPREHENSIVE_SR
        before.SOPInstanceUID = uids_of(
            report.study_instance_uid, report.id, previous.number
        ).sr_instance
        before.StudyInstanceUID = report.study_instance_uid
        before.SeriesInstanceUID = uids.sr_series
        predecessors = [before]
    sr = ComprehensiveSR(
        evidence=list(evidence) or [study],
        content=content_tree(report, template, procedure),
        series_instance_uid=uids.sr_series,
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=uids.sr_instance,
        instance_number=signed.number,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=final,
        is_verified=final,
        institution_name=issuer.institution[:64] or None,
        verifying_observer_name=person_name(signed.author) if final else None,
        verifying_organization=issuer.organization[:64] if final else None,
        previous_versions=predecessors,
        series_description="Report",
    )
    sr.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: any text a report may hold
    when = dicom_datetime(signed.made_at)
    for keyword in ("ContentDate", "InstanceCreationDate"):
        setattr(sr, keyword, when[:8])  # the signature's time, not the build's
    for keyword in ("ContentTime", "InstanceCreationTime"):
        setattr(sr, keyword, when[8:14])
    sr.TimezoneOffsetFromUTC = "+0000"
    sr.StationName = issuer.station[:16]
    if final:
        sr.VerifyingObserverSequence[0].VerificationDateTime = when
    return sr
