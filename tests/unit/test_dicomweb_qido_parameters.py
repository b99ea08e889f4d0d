"""QIDO-RS parameters: keywords and tags, matching kinds, paging, the errors they name."""

from __future__ import annotations

import pytest

from telerad.adapters.dicomweb.qido import MAX_LIMIT, parse_qido
from telerad.domain.model import Level
from telerad.domain.query import Exact, QueryError, Range, UidList, Wildcard


def test_keyword_and_tag_forms_are_the_same_key() -> None:
    a = parse_qido(Level.STUDY, [("PatientID", "P1")]).query
    b = parse_qido(Level.STUDY, [("00100020", "P1")]).query
    assert a.matches == b.matches == {"PatientID": Exact("P1")}


def test_matching_kinds() -> None:
    q = parse_qido(
        Level.STUDY,
        [
            ("PatientName", "DOE*"),
            ("StudyDate", "20240101-20240131"),
            ("StudyInstanceUID", "1.2.3,1.2.4"),
            ("ModalitiesInStudy", "CT,MR"),
            ("AccessionNumber", ""),
        ],
    ).query
    assert q.matches["PatientName"] == Wildcard("DOE*")
    assert q.matches["StudyDate"] == Range("20240101", "20240131")
    assert q.matches["StudyInstanceUID"] == UidList(("1.2.3", "1.2.4"))
    assert q.matches["ModalitiesInStudy"] == UidList(("CT", "MR"))
    assert "AccessionNumber" not in q.matches and "AccessionNumber" in q.returns


def test_repeated_uid_parameters_form_a_list() -> None:
    q = parse_qido(Level.SERIES, [("SeriesInstanceUID", "1.2"), ("SeriesInstanceUID", "1.3")])
    assert q.query.matches["SeriesInstanceUID"] == UidList(("1.2", "1.3"))


def test_includefield_forms() -> None:
    q = parse_qido(
        Level.STUDY, [("includefield", "00081030,InstitutionName"), ("includefield", "StudyID")]
    ).query
    assert {"StudyDescription", "InstitutionName", "StudyID"} <= q.returns
    everything = parse_qido(Level.SERIES, [("includefield", "all")]).query
    assert "BodyPartExamined" in everything.returns and "PatientName" in everything.returns
    assert "SOPInstanceUID" not in everything.returns
    # A real DICOM attribute the index does not keep: ignored, with a warning.
    req = parse_qido(Level.STUDY, [("includefield", "Modality,00180050")])
    assert "Modality" not in req.query.returns and len(req.warnings) == 2


def test_paging_and_fuzzy() -> None:
    req = parse_qido(Level.STUDY, [("limit", "10"), ("offset", "20"), ("fuzzymatching", "true")])
    assert (req.query.limit, req.query.offset, req.query.fuzzy, req.cap) == (10, 20, True, None)
    capped = parse_qido(Level.STUDY, [])
    assert capped.cap == MAX_LIMIT and capped.query.limit == MAX_LIMIT + 1


@pytest.mark.parametrize(
    "params, message",
    [
        ([("Foo", "1")], "not a query parameter"),
        ([("FFFF0001", "1")], "not a DICOM attribute"),
        ([("SliceThickness", "1")], "not supported as a matching key"),
        ([("SOPInstanceUID", "1.2")], "cannot be matched at the study level"),
        ([("StudyDate", "2024-13-01x")], "not a date"),
        ([("StudyDate", "yesterday")], "not a date"),
        ([("limit", "-1")], "non-negative"),
        ([("offset", "ten")], "non-negative"),
        ([("fuzzymatching", "maybe")], "true or false"),
        ([("StudyInstanceUID", "1.2.abc")], "not a valid UID"),
        ([("00400275.00321060", "X")], "sequence matching"),
        ([("includefield", "NotAKeyword")], "not a query parameter"),
    ],
)
def test_bad_parameters(params: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse_qido(Level.STUDY, params)
