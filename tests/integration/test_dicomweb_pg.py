"""DICOMweb on the PostgreSQL index: store, search, metadata cache, frames."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from telerad import synthetic as syn
from telerad.adapters.dicomweb.multipart import encode_multipart, parse_media_type, split_parts
from telerad.bootstrap import Platform
from telerad.web.app import create_app

pytestmark = pytest.mark.postgres
CT = 'multipart/related; type="application/dicom"; boundary=pgb'


@pytest.fixture
def client(pg_platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(pg_platform)) as c:
        yield c


def test_round_trip_on_postgresql(client: TestClient, pg_platform: Platform) -> None:
    spec = syn.StudySpec(patient_id="PG-1", patient_name="POSTGRES^PAULA")
    datasets = list(syn.ct_series(spec, slices=3, rows=32, cols=32))
    body = encode_multipart("pgb", [("application/dicom", syn.to_bytes(ds)) for ds in datasets])
    r = client.post("/dicom-web/studies", content=body, headers={"Content-Type": CT})
    assert r.status_code == 200, r.text

    for params in (
        {"PatientName": "POST*"},
        {"PatientName": "PAU*", "fuzzymatching": "true"},
        {"PatientID": "PG-1", "ModalitiesInStudy": "CT"},
    ):
        found = client.get("/dicom-web/studies", params=params).json()
        assert [s["0020000D"]["Value"][0] for s in found] == [spec.study_uid], params

    series = f"/dicom-web/studies/{spec.study_uid}/series/{datasets[0].SeriesInstanceUID}"
    first = client.get(f"{series}/metadata").json()
    assert pg_platform.index.get_metadata([ds.SOPInstanceUID for ds in datasets]).keys() == {
        ds.SOPInstanceUID for ds in datasets
    }
    assert client.get(f"{series}/metadata").json() == first

    ds = datasets[1]
    r = client.get(
        f"{series}/instances/{ds.SOPInstanceUID}/frames/1",
        headers={"Accept": 'multipart/related; type="application/octet-stream"'},
    )
    [part] = split_parts(r.content, parse_media_type(r.headers["content-type"]).params["boundary"])
    assert r.content[part.start : part.end] == ds.PixelData
