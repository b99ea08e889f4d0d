"""STOW-RS over the FastAPI app on an embedded platform."""

from __future__ import annotations

import errno
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydicom.uid import MRImageStorage

from telerad import synthetic as syn
from telerad.adapters.dicomweb import stow as stow_module
from telerad.adapters.dicomweb.multipart import encode_multipart
from telerad.bootstrap import Platform
from telerad.domain.model import Level
from telerad.domain.query import Exact, Query
from telerad.services import archive as archive_module
from telerad.web.app import create_app
from telerad.web.routes import dicomweb as routes

CT = 'multipart/related; type="application/dicom"; boundary=xyz'


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform)) as c:
        yield c


def instances(n: int = 3, spec: syn.StudySpec | None = None) -> list[bytes]:
    spec = spec or syn.StudySpec()
    return [syn.to_bytes(ds) for ds in syn.ct_series(spec, slices=n, rows=32, cols=32)]


def body(*parts: bytes, content_type: str = "application/dicom") -> bytes:
    return encode_multipart("xyz", [(content_type, p) for p in parts])


def failed(response_json: dict) -> list[dict]:
    return response_json["00081198"].get("Value", [])


def referenced(response_json: dict) -> list[dict]:
    return response_json["00081199"].get("Value", [])


def test_all_stored_is_200_with_retrieve_urls(client: TestClient, platform: Platform) -> None:
    spec = syn.StudySpec()
    data = instances(3, spec)
    r = client.post("/dicom-web/studies", content=body(*data), headers={"Content-Type": CT})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/dicom+json")
    js = r.json()
    assert failed(js) == []
    refs = referenced(js)
    assert len(refs) == 3
    for item in refs:
        assert item["00081150"]["Value"] == ["1.2.840.10008.5.1.4.1.1.2"]
        url = item["00081190"]["Value"][0]
        assert url.startswith(f"http://testserver/dicom-web/studies/{spec.study_uid}/series/")
        assert url.endswith(item["00081155"]["Value"][0])
    assert js["00081190"]["Value"] == [f"http://testserver/dicom-web/studies/{spec.study_uid}"]
    assert platform.index.counts()["instances"] == 3
    # An identical re-send is a success without a second copy.
    again = client.post("/dicom-web/studies", content=body(*data), headers={"Content-Type": CT})
    assert again.status_code == 200
    assert platform.index.counts()["instances"] == 3


def test_garbage_next_to_good_part_is_202(client: TestClient, platform: Platform) -> None:
    good = instances(1)[0]
    truncated = instances(1)[0][:-500]  # inside the pixel data
    r = client.post(
        "/dicom-web/studies",
        content=body(b"this is not DICOM", good, truncated),
        headers={"Content-Type": CT},
    )
    assert r.status_code == 202, r.text
    js = r.json()
    assert len(referenced(js)) == 1
    reasons = [f["00081197"]["Value"][0] for f in failed(js)]
    assert reasons == [0xC000, 0xC000]
    texts = [f["00080418"]["Value"][0] for f in failed(js)]
    assert texts[0].startswith("part 1:") and texts[1].startswith("part 3:")
    assert "truncated" in texts[1]
    assert platform.index.counts()["instances"] == 1


def test_all_failed_is_409(client: TestClient, platform: Platform) -> None:
    r = client.post(
        "/dicom-web/studies", content=body(b"junk", b"more junk"), headers={"Content-Type": CT}
    )
    assert r.status_code == 409
    assert len(failed(r.json())) == 2
    assert platform.index.counts()["instances"] == 0


def test_conflicting_object_under_same_uid(client: TestClient, platform: Platform) -> None:
    spec = syn.StudySpec()
    ds = next(syn.ct_series(spec, slices=1, rows=16, cols=16))
    first = syn.to_bytes(ds)
    ds.SeriesDescription = "CHANGED"
    second = syn.to_bytes(ds)
    assert (
        client.post(
            "/dicom-web/studies", content=body(first), headers={"Content-Type": CT}
        ).status_code
        == 200
    )
    r = client.post("/dicom-web/studies", content=body(second), headers={"Content-Type": CT})
    assert r.status_code == 409
    item = failed(r.json())[0]
    assert item["00081197"]["Value"] == [0x0111]
    assert item["00081155"]["Value"] == [ds.SOPInstanceUID]
    # The first one kept is unchanged.
    loc = platform.archive.locate(Level.IMAGE, [ds.SOPInstanceUID])[0]
    assert platform.archive.read(loc) == first


def test_study_in_url_must_match(client: TestClient, platform: Platform) -> None:
    spec = syn.StudySpec()
    mine, other = instances(1, spec)[0], instances(1)[0]
    r = client.post(
        f"/dicom-web/studies/{spec.study_uid}",
        content=body(mine, other),
        headers={"Content-Type": CT},
    )
    assert r.status_code == 202
    js = r.json()
    assert len(referenced(js)) == 1
    assert failed(js)[0]["00081197"]["Value"] == [0xA901]
    assert js["00081190"]["Value"][0].endswith(spec.study_uid)
    bad = client.post(
        "/dicom-web/studies/not-a-uid", content=body(mine), headers={"Content-Type": CT}
    )
    assert bad.status_code == 400
    assert "not a valid UID" in bad.json()["detail"]


def test_sop_class_mismatch_is_a900(client: TestClient, platform: Platform) -> None:
    data = instances(1)[0]
    # The first occurrence is the File Meta's MediaStorageSOPClassUID (same length).
    ct = b"1.2.840.10008.5.1.4.1.1.2"
    assert len(MRImageStorage) == len(ct)
    patched = data.replace(ct, MRImageStorage.encode(), 1)
    r = client.post("/dicom-web/studies", content=body(patched), headers={"Content-Type": CT})
    assert r.status_code == 409
    assert failed(r.json())[0]["00081197"]["Value"] == [0xA900]
    assert platform.index.counts()["instances"] == 0


def test_part_of_another_type_fails_alone(client: TestClient, platform: Platform) -> None:
    good = instances(1)[0]
    payload = encode_multipart("xyz", [("application/dicom", good), ("text/plain", b"hello")])
    r = client.post("/dicom-web/studies", content=payload, headers={"Content-Type": CT})
    assert r.status_code == 202
    assert "text/plain" in failed(r.json())[0]["00080418"]["Value"][0]


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "application/dicom",
        "application/json",
        'multipart/related; type="application/dicom+json"; boundary=xyz',
    ],
)
def test_not_multipart_dicom_is_415(
    client: TestClient, platform: Platform, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    r = client.post("/dicom-web/studies", content=instances(1)[0], headers=headers)
    assert r.status_code == 415
    assert r.json()["detail"]
    assert platform.index.counts()["instances"] == 0


@pytest.mark.parametrize(
    "payload_cut",
    [lambda b: b[:-20], lambda b: b.replace(b"--xyz--", b"")],
)
def test_malformed_multipart_is_400_and_nothing_stored(
    client: TestClient, platform: Platform, payload_cut
) -> None:
    payload = payload_cut(body(*instances(2)))
    r = client.post("/dicom-web/studies", content=payload, headers={"Content-Type": CT})
    assert r.status_code == 400
    assert "truncated" in r.json()["detail"]
    assert platform.index.counts()["instances"] == 0


def test_missing_boundary_and_empty_body(client: TestClient) -> None:
    r = client.post(
        "/dicom-web/studies",
        content=b"x",
        headers={"Content-Type": 'multipart/related; type="application/dicom"'},
    )
    assert r.status_code == 400 and "boundary" in r.json()["detail"]
    r = client.post("/dicom-web/studies", content=b"--xyz--", headers={"Content-Type": CT})
    assert r.status_code == 400 and "no parts" in r.json()["detail"]


def test_facility_route(client: TestClient, platform: Platform) -> None:
    facility = platform.index.add_facility("NORTH CLINIC")
    spec = syn.StudySpec()
    r = client.post(
        "/dicom-web/facilities/NORTH CLINIC/studies",
        content=body(*instances(2, spec)),
        headers={"Content-Type": CT},
    )
    assert r.status_code == 200
    assert platform.index.study_facility(spec.study_uid) == facility.id
    r = client.post(
        "/dicom-web/facilities/NOWHERE/studies",
        content=body(*instances(1)),
        headers={"Content-Type": CT},
    )
    assert r.status_code == 404 and "NOWHERE" in r.json()["detail"]
    assert platform.index.counts()["instances"] == 2


def test_large_body_is_spooled_to_disk(
    client: TestClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(routes, "SPOOL_LIMIT", 10_000)
    monkeypatch.setattr(routes, "_SPOOL_WRITE", 5_000)
    data = instances(4)
    r = client.post("/dicom-web/studies", content=body(*data), headers={"Content-Type": CT})
    assert r.status_code == 200, r.text
    assert platform.index.counts()["instances"] == 4
    stored = platform.archive.locate(Level.IMAGE, [_sop(d) for d in data])
    assert sorted(platform.archive.read(loc) for loc in stored) == sorted(data)
    assert not list((platform.settings.data_dir / "tmp").iterdir())


def test_one_failing_store_does_not_block_others(
    client: TestClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = instances(3)
    blobs = platform.archive.blobs
    real = blobs.stage
    poisoned = _sop(data[1])

    def stage(facility_id: int, payload: bytes, sha256: str | None = None):  # type: ignore[no-untyped-def]
        if _sop(payload) == poisoned:
            raise RuntimeError("disk on fire")
        return real(facility_id, payload, sha256)

    monkeypatch.setattr(blobs, "stage", stage)
    r = client.post("/dicom-web/studies", content=body(*data), headers={"Content-Type": CT})
    assert r.status_code == 202
    assert failed(r.json())[0]["00081197"]["Value"] == [stow_module.PROCESSING_FAILURE]
    assert "part 2" in failed(r.json())[0]["00080418"]["Value"][0]
    assert platform.index.counts()["instances"] == 2
    assert len(_blob_files(platform)) == 2


def test_a_part_whose_fsync_fails_is_refused_alone(
    client: TestClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that cannot be made durable is out of resources for that part only."""
    data = instances(3)
    blobs = platform.archive.blobs
    real = blobs.commit
    poisoned = _sop(data[0])

    def commit(staged, sop_instance_uid: str):  # type: ignore[no-untyped-def]
        if sop_instance_uid == poisoned:
            staged.path.unlink()
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(staged, sop_instance_uid)

    monkeypatch.setattr(blobs, "commit", commit)
    r = client.post("/dicom-web/studies", content=body(*data), headers={"Content-Type": CT})
    assert r.status_code == 202
    (item,) = failed(r.json())
    assert item["00081197"]["Value"] == [stow_module.OUT_OF_RESOURCES]
    assert len(referenced(r.json())) == 2
    assert platform.index.counts()["instances"] == 2
    assert len(_blob_files(platform)) == 2


def test_a_request_is_indexed_in_one_transaction_after_its_blobs_are_durable(
    client: TestClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = platform.index
    batches: list[int] = []
    real = index.add_instances

    def add_instances(facility_id: int, items):  # type: ignore[no-untyped-def]
        # Every blob is under its key (fsynced, renamed) before its row can commit.
        for header, blob in items:
            stored = Path(platform.archive.blobs.path(blob.key))
            assert stored.is_file(), header.SOPInstanceUID
            assert hashlib.sha256(stored.read_bytes()).hexdigest() == blob.sha256
        batches.append(len(items))
        return real(facility_id, items)

    def one_by_one(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("a clean batch needs no transaction per instance")

    monkeypatch.setattr(index, "add_instances", add_instances)
    monkeypatch.setattr(index, "add_instance", one_by_one)
    spec = syn.StudySpec()
    r = client.post(
        "/dicom-web/studies", content=body(*instances(5, spec)), headers={"Content-Type": CT}
    )
    assert r.status_code == 200, r.text
    assert batches == [5]
    counts = index.counts()
    assert (counts["studies"], counts["series"], counts["instances"]) == (1, 1, 5)
    (study,) = index.search(Query(Level.STUDY, {"StudyInstanceUID": Exact(spec.study_uid)}))
    assert study["NumberOfStudyRelatedInstances"] == 5
    assert study["NumberOfStudyRelatedSeries"] == 1


def test_refused_row_in_a_batch_leaves_the_others_stored(
    client: TestClient, platform: Platform
) -> None:
    """A conflict and a re-send inside one request: the batch's transaction is refused,
    each instance is then indexed on its own, and only the conflict fails."""
    spec = syn.StudySpec()
    ds = list(syn.ct_series(spec, slices=4, rows=16, cols=16))
    first = syn.to_bytes(ds[1])
    kept = client.post("/dicom-web/studies", content=body(first), headers={"Content-Type": CT})
    assert kept.status_code == 200
    ds[1].SeriesDescription = "CHANGED"
    conflicting = syn.to_bytes(ds[1])
    resent = syn.to_bytes(ds[0])
    client.post("/dicom-web/studies", content=body(resent), headers={"Content-Type": CT})
    payload = body(resent, conflicting, syn.to_bytes(ds[2]), syn.to_bytes(ds[3]))
    r = client.post("/dicom-web/studies", content=payload, headers={"Content-Type": CT})
    assert r.status_code == 202, r.text
    (item,) = failed(r.json())
    assert item["00081197"]["Value"] == [stow_module.DUPLICATE_SOP_INSTANCE]
    assert item["00080418"]["Value"][0].startswith("part 2:")
    assert len(referenced(r.json())) == 3
    assert platform.index.counts()["instances"] == 4
    # The conflicting object left no file; the one kept is unchanged.
    assert len(_blob_files(platform)) == 4
    loc = platform.archive.locate(Level.IMAGE, [ds[1].SOPInstanceUID])[0]
    assert platform.archive.read(loc) == first


def test_the_same_instance_twice_in_one_request(client: TestClient, platform: Platform) -> None:
    one, other = instances(2)
    r = client.post(
        "/dicom-web/studies", content=body(one, one, other), headers={"Content-Type": CT}
    )
    assert r.status_code == 200, r.text
    assert len(referenced(r.json())) == 3
    assert platform.index.counts()["instances"] == 2
    assert len(_blob_files(platform)) == 2


def test_index_failure_keeps_nothing_of_the_batch(
    client: TestClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("database unavailable")

    monkeypatch.setattr(platform.index, "add_instances", down)
    r = client.post("/dicom-web/studies", content=body(*instances(3)), headers={"Content-Type": CT})
    assert r.status_code == 409
    reasons = [f["00081197"]["Value"][0] for f in failed(r.json())]
    assert reasons == [stow_module.PROCESSING_FAILURE] * 3
    assert platform.index.counts()["instances"] == 0
    assert _blob_files(platform) == []


def test_a_large_request_is_indexed_in_several_transactions(
    client: TestClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = instances(5)
    monkeypatch.setattr(archive_module, "INDEX_BATCH", 2)
    batches: list[int] = []
    real = platform.index.add_instances

    def add_instances(facility_id: int, items):  # type: ignore[no-untyped-def]
        batches.append(len(items))
        return real(facility_id, items)

    monkeypatch.setattr(platform.index, "add_instances", add_instances)
    payload = body(data[0], b"junk", *data[1:])
    r = client.post("/dicom-web/studies", content=payload, headers={"Content-Type": CT})
    assert r.status_code == 202
    assert [f["00080418"]["Value"][0][:7] for f in failed(r.json())] == ["part 2:"]
    assert batches == [2, 2, 1]
    assert platform.index.counts()["instances"] == 5


def _blob_files(platform: Platform) -> list[Path]:
    return [f for f in platform.settings.blob_dir.rglob("*") if f.is_file()]


def _sop(data: bytes) -> str:
    from io import BytesIO

    from pydicom import dcmread

    return str(dcmread(BytesIO(data), stop_before_pixels=True).SOPInstanceUID)


def test_meta_without_preamble_is_completed(client: TestClient, platform: Platform) -> None:
    """dicomweb-client sends a plain Dataset as File Meta + dataset, with no preamble."""
    full = instances(1)[0]
    bare = full[132:]
    r = client.post("/dicom-web/studies", content=body(bare), headers={"Content-Type": CT})
    assert r.status_code == 200, r.text
    loc = platform.archive.locate(Level.IMAGE, [_sop(full)])[0]
    assert platform.archive.read(loc) == full


def test_response_only_in_json(client: TestClient, platform: Platform) -> None:
    r = client.post(
        "/dicom-web/studies",
        content=body(*instances(1)),
        headers={"Content-Type": CT, "Accept": "application/dicom+xml"},
    )
    assert r.status_code == 406
    assert platform.index.counts()["instances"] == 0
