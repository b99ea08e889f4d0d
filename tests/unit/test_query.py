import pytest

from telerad.domain.model import Level
from telerad.domain.query import (
    Exact,
    Query,
    QueryError,
    Range,
    UidList,
    Wildcard,
    like_pattern,
    normalise_person_name,
    parse_match,
)


def test_universal_matching_is_none() -> None:
    assert parse_match("PatientName", "") is None
    assert parse_match("PatientName", "*") is None
    assert parse_match("StudyDate", None) is None


def test_single_value_and_wildcards() -> None:
    assert parse_match("PatientID", "ABC") == Exact("ABC")
    assert parse_match("PatientName", "SMI*") == Wildcard("SMI*")
    assert parse_match("AccessionNumber", "A?C") == Wildcard("A?C")


def test_date_ranges_and_legacy_dates() -> None:
    assert parse_match("StudyDate", "20200101-20201231") == Range("20200101", "20201231")
    assert parse_match("StudyDate", "-20201231") == Range(None, "20201231")
    assert parse_match("StudyDate", "20200101-") == Range("20200101", None)
    assert parse_match("StudyDate", "2020.01.31") == Exact("20200131")
    assert parse_match("StudyTime", "10:30-12") == Range("1030", "12")


def test_bad_dates_are_rejected_with_a_reason() -> None:
    with pytest.raises(QueryError, match="not a date"):
        parse_match("StudyDate", "2020-13")
    with pytest.raises(QueryError, match="not a date"):
        parse_match("StudyDate", "yesterday")


def test_uid_lists() -> None:
    assert parse_match("StudyInstanceUID", "1.2\\1.3") == UidList(("1.2", "1.3"))
    assert parse_match("StudyInstanceUID", "1.2,1.3") == UidList(("1.2", "1.3"))
    assert parse_match("SeriesInstanceUID", ["1.2", "1.3"]) == UidList(("1.2", "1.3"))
    assert parse_match("ModalitiesInStudy", "CT\\MR") == UidList(("CT", "MR"))


def test_unknown_keyword_is_an_error() -> None:
    with pytest.raises(QueryError, match="not a supported"):
        parse_match("NotAKeyword", "x")


def test_like_pattern_escapes_sql_wildcards() -> None:
    assert like_pattern("A*B?C") == "A%B_C"
    assert like_pattern("50%_\\") == "50\\%\\_\\\\"


def test_person_names_normalise() -> None:
    assert normalise_person_name("Doe^Jane") == "DOE JANE"


def test_return_keys_respect_level() -> None:
    q = Query(Level.STUDY, returns={"SOPInstanceUID", "StudyDescription"})
    keys = q.return_keys()
    assert "StudyDescription" in keys and "SOPInstanceUID" not in keys
    assert keys[0] == "StudyDate"


def test_a_name_typed_as_pages_show_it_becomes_a_person_name() -> None:
    from telerad.domain.query import typed_person_name

    assert typed_person_name("Doe, Jane") == "Doe^Jane"
    assert typed_person_name("DOE, JANE M") == "DOE^JANE M"
    assert typed_person_name("doe,") == "doe"
    assert typed_person_name("Doe^Jane") == "Doe^Jane"  # already DICOM
    assert typed_person_name("doe") == "doe"
    assert normalise_person_name(typed_person_name("Doe, Jane M")) == normalise_person_name(
        "DOE^JANE^M"
    )
