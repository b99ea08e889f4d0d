"""The SR (TID 2000) and the Encapsulated PDF built for a signed report
(adapters/sr/report_sr.py, report_pdf.py): the content tree's structure and codes, the
flags by status, the predecessor of a later signature, the PDF's text and banners."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from tests.unit.test_hl7_oru import TEMPLATE, _report

from telerad.adapters.sr.report_sr import Issuer, SrError, build_sr, uids_of
from telerad.domain import reports as r
from telerad.synthetic import StudySpec, tiny_instance

STUDY_UID = "1.2.840.99.1"
ISSUER = Issuer("Reading Net", "North Hospital")


def _study() -> Dataset:
    spec = StudySpec(
        study_uid=STUDY_UID, patient_id="P1", patient_name="Doe^Jane", accession="ACC-7"
    )
    return tiny_instance(spec, "1.2.840.99.1.2", 1)


def _sr(status: str) -> Dataset:
    study = _study()
    return build_sr(_report(status), TEMPLATE, study, [study], ISSUER)


def _codes(items: object) -> list[tuple[str, str, str]]:
    return [
        (i.ValueType, i.ConceptNameCodeSequence[0].CodeValue, i.RelationshipType)
        for i in items  # type: ignore[attr-defined]
    ]


def test_the_content_tree_follows_tid_2000() -> None:
    sr = _sr("final")
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33" and sr.Modality == "SR"
    assert sr.ConceptNameCodeSequence[0].CodeValue == "18748-4"
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "2000"
    top = _codes(sr.ContentSequence)
    assert top[:3] == [
        ("CODE", "121049", "HAS CONCEPT MOD"),  # language (TID 1204)
        ("CODE", "121005", "HAS OBS CONTEXT"),  # observer type: person (TID 1002)
        ("PNAME", "121008", "HAS OBS CONTEXT"),
    ]
    sections = [i for i in sr.ContentSequence if i.ValueType == "CONTAINER"]
    headings = [s.ConceptNameCodeSequence[0].CodeValue for s in sections]
    assert headings == ["11329-0", "59776-5", "technique", "19005-8"]  # CID 7001; local
    assert sections[2].ConceptNameCodeSequence[0].CodingSchemeDesignator == "99TELERAD"
    findings = sections[1].ContentSequence
    assert [i.ValueType for i in findings] == ["TEXT", "NUM", "CODE", "TEXT"]
    assert findings[0].ConceptNameCodeSequence[0].CodeValue == "121071"  # Finding
    num = findings[1].MeasuredValueSequence[0]
    assert float(num.NumericValue) == 2.5
    assert num.MeasurementUnitsCodeSequence[0].CodingSchemeDesignator == "UCUM"
    assert findings[2].ConceptCodeSequence[0].CodeValue == "RID28454"  # the option's code
    assert sections[3].ContentSequence[0].TextValue == "No bleed."


def test_flags_follow_the_status() -> None:
    prelim = _sr("preliminary")
    assert (prelim.CompletionFlag, prelim.VerificationFlag, prelim.PreliminaryFlag) == (
        "COMPLETE",
        "UNVERIFIED",
        "PRELIMINARY",
    )
    assert "VerifyingObserverSequence" not in prelim
    assert "PredecessorDocumentsSequence" not in prelim
    final = _sr("final")
    assert (final.CompletionFlag, final.VerificationFlag, final.PreliminaryFlag) == (
        "COMPLETE",
        "VERIFIED",
        "FINAL",
    )
    observer = final.VerifyingObserverSequence[0]
    assert observer.VerifyingObserverName == "Night^Reader"
    assert observer.VerificationDateTime == "20261203013500+0000"  # signed at T0 + 5 min


def test_a_correction_supersedes_the_signed_sr_and_says_why() -> None:
    sr = _sr("corrected")
    uids = uids_of(STUDY_UID, 11, 2)  # the final was version 2
    ref = sr.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0]
    assert ref.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == uids.sr_instance
    assert sr.SOPInstanceUID == uids_of(STUDY_UID, 11, 3).sr_instance
    notes = [i for i in sr.ContentSequence if i.ValueType == "TEXT"]
    assert notes[0].TextValue == "left side missed"


def test_addenda_are_containers_with_their_author() -> None:
    sr = _sr("appended")
    addenda = [
        i
        for i in sr.ContentSequence
        if i.ValueType == "CONTAINER" and i.ConceptNameCodeSequence[0].CodeValue == "55107-7"
    ]
    assert len(addenda) == 2
    assert addenda[0].ContentSequence[1].PersonName == "Day^Reader^Q"
    assert addenda[1].ContentSequence[-1].TextValue == "Second addendum."


def test_drafts_and_other_studies_are_refused() -> None:
    study = _study()
    draft = r.new_report(
        STUDY_UID,
        3,
        "ACC-7",
        _report("final").versions[0].content,
        7,
        "X^Y",
        _report("final").current.made_at,
    )
    with pytest.raises(SrError):
        build_sr(draft, TEMPLATE, study, [study], ISSUER)
    study.StudyInstanceUID = "1.2.3"
    with pytest.raises(SrError):
        build_sr(_report("final"), TEMPLATE, study, [study], ISSUER)
