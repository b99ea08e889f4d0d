"""The index and the store use case, on SQLite and on the local PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from telerad.bootstrap import Platform
from telerad.dicom.part10 import normalise_preamble
from telerad.domain.model import Level, StoreOutcome
from telerad.domain.query import Query, QueryError, parse_match
from telerad.synthetic import StudySpec, ct_series, mr_series, tiny_instance, to_bytes


@pytest.fixture(params=["sqlite", "postgres"])
def any_platform(request: pytest.FixtureRequest) -> Platform:
    name = "platform" if request.param == "sqlite" else "pg_platform"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


def q(level: Level, **matches: str) -> Query:
    return Query(level, {k: m for k, v in matches.items() if (m := parse_match(k, v))})


def load(p: Platform, facility_id: int, *specs: StudySpec) -> None:
    for spec in specs:
        for ds in ct_series(spec, slices=3, rows=16, cols=16):
            assert p.archive.store(facility_id, to_bytes(ds)).outcome is StoreOutcome.STORED


def test_hierarchy_and_counts(any_platform: Platform) -> None:
    p = any_platform
    fac = p.default_facility()
    spec = StudySpec(patient_id="P1", patient_name="Smith^John", study_date="20240105")
    load(p, fac.id, spec)
    for ds in mr_series(spec, slices=2, rows=16, cols=16, number=2):
        assert p.archive.store(fac.id, to_bytes(ds)).ok
    [study] = p.archive.search(q(Level.STUDY, PatientID="P1"))
    assert study["NumberOfStudyRelatedSeries"] == 2
    assert study["NumberOfStudyRelatedInstances"] == 5
    assert study["ModalitiesInStudy"] == ["CT", "MR"]
    series = p.archive.search(q(Level.SERIES, StudyInstanceUID=spec.study_uid))
    assert sorted(s["NumberOfSeriesRelatedInstances"] for s in series) == [2, 3]
    assert p.index.counts() == {"patients": 1, "studies": 1, "series": 2, "instances": 5}


def test_matching_kinds(any_platform: Platform) -> None:
    p = any_platform
    fac = p.default_facility()
    a = StudySpec(patient_id="A1", patient_name="Smith^John", study_date="20240105", accession="X1")
    b = StudySpec(patient_id="B2", patient_name="Smythe^Ann", study_date="20240320", accession="X2")
    c = StudySpec(patient_id="C3", patient_name="Jones^Tom", study_date="20230101", accession="Y3")
    load(p, fac.id, a, b, c)

    def ids(**m: str) -> list[str]:
        return sorted(str(r["PatientID"]) for r in p.archive.search(q(Level.STUDY, **m)))

    assert ids(PatientID="A1") == ["A1"]
    assert ids(PatientName="SM*") == ["A1", "B2"]
    assert ids(PatientName="smith^john") == ["A1"]  # person names match case-insensitively
    assert ids(PatientName="S?ith*") == ["A1"]
    assert ids(StudyDate="20240101-20241231") == ["A1", "B2"]
    assert ids(StudyDate="-20231231") == ["C3"]
    assert ids(StudyDate="20240320") == ["B2"]
    assert ids(AccessionNumber="X*") == ["A1", "B2"]
    assert ids(StudyInstanceUID=f"{a.study_uid}\\{c.study_uid}") == ["A1", "C3"]
    assert ids(ModalitiesInStudy="MR") == []
    assert ids(ModalitiesInStudy="CT\\MR") == ["A1", "B2", "C3"]
    assert ids(PatientID="a1") == []  # non-PN strings are case-sensitive
    assert ids(PatientID="A%") == []  # SQL wildcards are literal characters
    fuzzy = Query(Level.STUDY, {"PatientName": parse_match("PatientName", "ann")}, fuzzy=True)  # type: ignore[dict-item]
    assert [r["PatientID"] for r in p.archive.search(fuzzy)] == ["B2"]


def test_limit_offset_and_levels(any_platform: Platform) -> None:
    p = any_platform
    fac = p.default_facility()
    spec = StudySpec(patient_id="L1")
    series_uid = "1.2.826.0.1.3680043.8.498.1"
    for n in range(1, 8):
        assert p.archive.store(fac.id, to_bytes(tiny_instance(spec, series_uid, n))).ok
    page = Query(Level.IMAGE, limit=3, offset=2)
    numbers = [r["InstanceNumber"] for r in p.archive.search(page)]
    assert numbers == [3, 4, 5]
    with pytest.raises(QueryError):
        p.archive.search(q(Level.STUDY, SOPInstanceUID="1.2.3"))
    with pytest.raises(QueryError):
        p.archive.search(q(Level.IMAGE, InstanceNumber="x"))


def test_patients_are_facility_scoped(any_platform: Platform) -> None:
    p = any_platform
    one = p.index.add_facility("One Hospital", "ONE")
    two = p.index.add_facility("Two Clinic", "TWO")
    load(p, one.id, StudySpec(patient_id="SAME", patient_name="First^Person"))
    load(p, two.id, StudySpec(patient_id="SAME", patient_name="Second^Person"))
    patients = p.archive.search(q(Level.PATIENT, PatientID="SAME"))
    assert sorted(str(r["PatientName"]) for r in patients) == ["First^Person", "Second^Person"]
    scoped = Query(Level.STUDY, facility_ids=frozenset({one.id}))
    assert [r["PatientName"] for r in p.archive.search(scoped)] == ["First^Person"]


def test_duplicates_and_conflicts(any_platform: Platform) -> None:
    p = any_platform
    fac = p.default_facility()
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    assert p.archive.store(fac.id, data).outcome is StoreOutcome.STORED
    assert p.archive.store(fac.id, data).outcome is StoreOutcome.DUPLICATE
    changed = bytearray(data)
    changed[-10] ^= 0xFF  # a different object under the same SOP Instance UID
    result = p.archive.store(fac.id, bytes(changed))
    assert result.outcome is StoreOutcome.CONFLICT and "different object" in result.reason
    [location] = p.archive.locate(Level.IMAGE, [result.sop_instance_uid or ""])
    # The first one is kept untouched but for its preamble (a TIFF header in this
    # sample), which the archive zeroes in what it keeps (PS3.10 7.1).
    assert data[:4] == b"II*\x00"
    assert p.archive.read(location) == normalise_preamble(data)
    assert p.archive.read(location)[128:] == data[128:]
    assert p.index.counts()["instances"] == 1
    blobs = [f for f in p.settings.blob_dir.rglob("*") if f.is_file()]
    assert len(blobs) == 1


def test_study_of_another_facility_is_refused(any_platform: Platform) -> None:
    p = any_platform
    one = p.index.add_facility("One", "ONE")
    two = p.index.add_facility("Two", "TWO")
    spec = StudySpec()
    first, second = list(ct_series(spec, slices=2, rows=8, cols=8))
    assert p.archive.store(one.id, to_bytes(first)).ok
    result = p.archive.store(two.id, to_bytes(second))
    assert result.outcome is StoreOutcome.REJECTED and "already in use" in result.reason
    assert p.index.counts()["instances"] == 1
    assert len([f for f in p.settings.blob_dir.rglob("*.dcm")]) == 1


def test_concurrent_writers_of_one_new_study(any_platform: Platform) -> None:
    """Associations storing the same new study at once all succeed, each instance once."""
    from concurrent.futures import ThreadPoolExecutor

    p = any_platform
    fac = p.default_facility()
    spec = StudySpec(patient_id="RACE")
    data = [to_bytes(ds) for ds in ct_series(spec, slices=12, rows=8, cols=8)]
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda b: p.archive.store(fac.id, b), data + data))
    outcomes = sorted(r.outcome.value for r in results)
    assert outcomes == ["duplicate"] * 12 + ["stored"] * 12
    assert p.index.counts() == {"patients": 1, "studies": 1, "series": 1, "instances": 12}
    [study] = p.archive.search(q(Level.STUDY, PatientID="RACE"))
    assert study["NumberOfStudyRelatedInstances"] == 12


def test_studies_newest_first_and_their_facilities(any_platform: Platform) -> None:
    p = any_platform
    one, two = p.index.add_facility("One").id, p.index.add_facility("Two").id
    specs = [
        StudySpec(patient_id="N1", study_date="20240105", study_time="120000"),
        StudySpec(patient_id="N2", study_date="20240301", study_time="080000"),
        StudySpec(patient_id="N3", study_date="20240301", study_time="171500"),
        StudySpec(patient_id="N4", study_date=""),
    ]
    load(p, one, specs[0], specs[2])
    load(p, two, specs[1], specs[3])
    newest = p.index.search(Query(Level.STUDY, newest_first=True))
    assert [s["PatientID"] for s in newest] == ["N3", "N2", "N1", "N4"]
    page = p.index.search(Query(Level.STUDY, newest_first=True, limit=2, offset=1))
    assert [s["PatientID"] for s in page] == ["N2", "N1"]
    uids = [s.study_uid for s in specs]
    assert p.index.study_facilities([*uids, "1.2.3"]) == dict(
        zip(uids, [one, two, one, two], strict=True)
    )
    assert p.index.study_facilities([]) == {}
