"""QIDO-RS searches over the FastAPI app on an embedded platform (the parameters
themselves: tests/unit/test_dicomweb_qido_parameters.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from telerad import synthetic as syn
from telerad.bootstrap import Platform
from telerad.web.app import create_app

DW = "/dicom-web"


@pytest.fixture
def loaded(platform: Platform) -> Iterator[tuple[TestClient, dict[str, syn.StudySpec]]]:
    fid = platform.default_facility().id
    specs = {
        "doe": syn.StudySpec(
            patient_id="P-DOE", patient_name="DOE^JANE", study_date="20240105", accession="A1"
        ),
        "roe": syn.StudySpec(
            patient_id="P-ROE",
            patient_name="ROE^RICHARD^^DR",
            study_date="20240220",
            accession="A2",
        ),
        "dane": syn.StudySpec(
            patient_id="P-DANE", patient_name="DANE^JOHN", study_date="20230701", accession="A3"
        ),
    }
    for key, spec in specs.items():
        for ds in syn.ct_series(spec, slices=2, rows=8, cols=8):
            assert platform.archive.store(fid, syn.to_bytes(ds)).ok
        if key == "roe":
            for ds in syn.mr_series(spec, slices=3, rows=8, cols=8, number=2):
                assert platform.archive.store(fid, syn.to_bytes(ds)).ok
    with TestClient(create_app(platform)) as client:
        yield client, specs


def uids(results: list[dict], tag: str = "0020000D") -> list[str]:
    return [r[tag]["Value"][0] for r in results]


def test_study_search_json_model(loaded) -> None:  # type: ignore[no-untyped-def]
    client, specs = loaded
    r = client.get(f"{DW}/studies", params={"PatientID": "P-ROE"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/dicom+json")
    [study] = r.json()
    assert list(study) == sorted(study)  # attributes in tag order
    assert study["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "ROE^RICHARD^^DR"}]}
    assert study["00201206"] == {"vr": "IS", "Value": [2]}
    assert study["00201208"] == {"vr": "IS", "Value": [5]}
    assert sorted(study["00080061"]["Value"]) == ["CT", "MR"]
    assert study["00081190"]["Value"] == [f"http://testserver{DW}/studies/{specs['roe'].study_uid}"]


def test_wildcards_fuzzy_and_ranges(loaded) -> None:  # type: ignore[no-untyped-def]
    client, specs = loaded
    get = lambda **p: uids(client.get(f"{DW}/studies", params=p).json())  # noqa: E731
    assert set(get(PatientName="D*")) == {specs["doe"].study_uid, specs["dane"].study_uid}
    assert get(PatientName="doe^jane") == [specs["doe"].study_uid]
    assert get(PatientName="RICH*") == []
    assert get(PatientName="RICH*", fuzzymatching="true") == [specs["roe"].study_uid]
    assert set(get(StudyDate="20240101-")) == {specs["doe"].study_uid, specs["roe"].study_uid}
    assert get(StudyDate="-20231231") == [specs["dane"].study_uid]
    assert get(StudyDate="20240220") == [specs["roe"].study_uid]
    assert get(ModalitiesInStudy="MR") == [specs["roe"].study_uid]
    both = f"{specs['doe'].study_uid},{specs['dane'].study_uid}"
    assert set(get(StudyInstanceUID=both)) == {specs["doe"].study_uid, specs["dane"].study_uid}
    assert get(**{"00080050": "A?"}) != [] and get(AccessionNumber="B*") == []


def test_limit_offset_and_includefield(loaded) -> None:  # type: ignore[no-untyped-def]
    client, _ = loaded
    everything = uids(client.get(f"{DW}/studies").json())
    assert len(everything) == 3
    page = uids(client.get(f"{DW}/studies", params={"limit": 2, "offset": 1}).json())
    assert page == everything[1:3]
    r = client.get(f"{DW}/studies", params={"limit": 1, "includefield": "InstitutionName"})
    [study] = r.json()
    assert study["00080080"]["Value"] == ["Demo General Hospital"]
    r = client.get(f"{DW}/studies", params={"includefield": "Modality"})
    assert r.status_code == 200 and "299" in r.headers["warning"]


def test_series_and_instance_levels(loaded) -> None:  # type: ignore[no-untyped-def]
    client, specs = loaded
    roe = specs["roe"].study_uid
    series = client.get(f"{DW}/studies/{roe}/series").json()
    assert len(series) == 2
    mr = client.get(f"{DW}/studies/{roe}/series", params={"Modality": "MR"}).json()
    assert len(mr) == 1 and mr[0]["00201209"]["Value"] == [3]
    mr_uid = mr[0]["0020000E"]["Value"][0]
    assert mr[0]["00081190"]["Value"][0].endswith(f"/studies/{roe}/series/{mr_uid}")
    all_mr = client.get(f"{DW}/series", params={"Modality": "MR", "PatientID": "P-ROE"}).json()
    assert uids(all_mr, "0020000E") == [mr_uid]
    inst = client.get(f"{DW}/studies/{roe}/series/{mr_uid}/instances").json()
    assert len(inst) == 3
    assert sorted(i["00200013"]["Value"][0] for i in inst) == [1, 2, 3]
    assert all(i["00280010"] == {"vr": "US", "Value": [8]} for i in inst)
    one = inst[0]["00080018"]["Value"][0]
    assert inst[0]["00081190"]["Value"][0].endswith(f"/series/{mr_uid}/instances/{one}")
    assert len(client.get(f"{DW}/studies/{roe}/instances").json()) == 5
    assert len(client.get(f"{DW}/instances", params={"PatientID": "P-DOE"}).json()) == 2
    found = client.get(f"{DW}/instances", params={"SOPInstanceUID": one}).json()
    assert uids(found, "00080018") == [one]


def test_no_match_is_an_empty_array(loaded) -> None:  # type: ignore[no-untyped-def]
    client, _ = loaded
    r = client.get(f"{DW}/studies", params={"PatientID": "NOBODY"})
    assert r.status_code == 200 and r.json() == []
    assert client.get(f"{DW}/studies/1.2.3/series").json() == []


@pytest.mark.parametrize(
    "url, params",
    [
        ("/studies", {"NotAThing": "1"}),
        ("/studies", {"StudyDate": "2024-01"}),
        ("/studies", {"limit": "x"}),
        ("/studies/not.a.uid/series", {}),
        ("/studies/1.2/series/3..4/instances", {}),
        ("/series", {"SOPInstanceUID": "1.2"}),
    ],
)
def test_bad_queries_are_400_with_reason(loaded, url: str, params: dict) -> None:  # type: ignore[no-untyped-def]
    client, _ = loaded
    r = client.get(DW + url, params=params)
    assert r.status_code == 400
    assert r.json()["detail"]


def test_xml_only_accept_is_406(loaded) -> None:  # type: ignore[no-untyped-def]
    client, _ = loaded
    r = client.get(f"{DW}/studies", headers={"Accept": "application/dicom+xml"})
    assert r.status_code == 406
    ok = client.get(f"{DW}/studies", headers={"Accept": "application/dicom+json"})
    assert ok.status_code == 200
