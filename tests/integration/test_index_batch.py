"""A STOW-RS request's instances indexed in one transaction, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from telerad.bootstrap import Platform
from telerad.dicom.part10 import check_instance
from telerad.domain.model import Level, StoredObject, StoreOutcome
from telerad.domain.query import Exact, Query
from telerad.synthetic import StudySpec, ct_series, mr_series, to_bytes


@pytest.fixture(params=["sqlite", "postgres"])
def any_platform(request: pytest.FixtureRequest) -> Platform:
    name = "platform" if request.param == "sqlite" else "pg_platform"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


def _study(p: Platform, uid: str) -> dict[str, object]:
    (study,) = p.index.search(Query(Level.STUDY, {"StudyInstanceUID": Exact(uid)}))
    return study


def test_a_batch_brings_its_patient_study_and_series(any_platform: Platform) -> None:
    p = any_platform
    fid = p.default_facility().id
    spec = StudySpec(patient_id="BATCH-1")
    data = [to_bytes(ds) for ds in ct_series(spec, slices=3, rows=16, cols=16)]
    data += [to_bytes(ds) for ds in mr_series(spec, slices=2, rows=16, cols=16, number=2)]
    results = p.archive.store_batch(fid, data)
    assert [r.outcome for r in results if not isinstance(r, Exception)] == [StoreOutcome.STORED] * 5
    study = _study(p, spec.study_uid)
    assert study["NumberOfStudyRelatedInstances"] == 5
    assert study["NumberOfStudyRelatedSeries"] == 2
    assert study["ModalitiesInStudy"] == ["CT", "MR"]
    assert p.index.counts() == {"patients": 1, "studies": 1, "series": 2, "instances": 5}
    # The next batch of the same study finds it (cached or in the index).
    more = [to_bytes(ds) for ds in ct_series(spec, slices=2, rows=16, cols=16, number=3)]
    assert all(not isinstance(r, Exception) and r.ok for r in p.archive.store_batch(fid, more))
    assert _study(p, spec.study_uid)["NumberOfStudyRelatedInstances"] == 7


def test_a_refused_batch_writes_nothing(any_platform: Platform) -> None:
    """One row refused (a SOP Instance UID already indexed): nothing of the transaction is
    kept, not even the new patient, study and series of the others, nor their cache."""
    p = any_platform
    fid = p.default_facility().id
    kept = to_bytes(next(ct_series(StudySpec(), slices=1, rows=16, cols=16)))
    assert p.archive.store(fid, kept).ok
    spec = StudySpec(patient_id="BATCH-2")
    fresh = [to_bytes(ds) for ds in ct_series(spec, slices=2, rows=16, cols=16)]
    items = []
    for data in [*fresh, kept]:
        header = check_instance(data)
        items.append((header, StoredObject(f"k/{header.SOPInstanceUID}", len(data), "0" * 64)))
    before = p.index.counts()
    assert p.index.add_instances(fid, items) is False
    assert p.index.counts() == before
    # The rolled-back study and series were not cached: indexing them again works.
    assert p.index.add_instances(fid, items[:2]) is True
    assert _study(p, spec.study_uid)["NumberOfStudyRelatedInstances"] == 2


def test_a_study_of_another_facility_refuses_the_batch(any_platform: Platform) -> None:
    p = any_platform
    home = p.default_facility().id
    other = p.index.add_facility("Other Clinic").id
    spec = StudySpec()
    first, second = (to_bytes(ds) for ds in ct_series(spec, slices=2, rows=16, cols=16))
    assert p.archive.store(home, first).ok
    items = [(check_instance(second), StoredObject("k/x", len(second), "0" * 64))]
    assert p.index.add_instances(other, items) is False
    # Through the archive, the instance is refused on its own with the reason.
    (result,) = p.archive.store_batch(other, [second])
    assert not isinstance(result, Exception)
    assert result.outcome is StoreOutcome.REJECTED and "in use elsewhere" in result.reason
    assert p.index.counts()["instances"] == 1
