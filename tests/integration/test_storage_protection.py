"""Encryption at rest with per-facility keys, and each facility's objects in its data region."""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from telerad.adapters.dicomweb.multipart import encode_multipart
from telerad.bootstrap import Platform, open_platform
from telerad.config import Settings
from telerad.domain.model import Level, StoreOutcome
from telerad.services.ports import IntegrityError
from telerad.services.recovery import recover_incomplete
from telerad.storage.blobs.keys import MasterKeyError
from telerad.synthetic import StudySpec, ct_series, to_bytes
from telerad.web.app import create_app

NAME = "SECRET^PATIENT"
STOW = 'multipart/related; type="application/dicom"; boundary=b'


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _instance(patient_id: str = "ENC-1") -> bytes:
    spec = StudySpec(patient_id=patient_id, patient_name=NAME)
    return to_bytes(next(ct_series(spec, slices=1, rows=32, cols=32)))


def _platform(tmp_path: Path, **settings: object) -> Platform:
    return open_platform(Settings(data_dir=tmp_path / "data", fsync=False, **settings))  # type: ignore[arg-type]


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.dcm") if p.is_file()]


def test_objects_are_sealed_and_read_back_unchanged(tmp_path: Path) -> None:
    platform = _platform(tmp_path, master_key=_key())
    try:
        facility = platform.index.add_facility("Sealed Hospital")
        data = _instance()
        result = platform.archive.store(facility.id, data)
        assert result.outcome is StoreOutcome.STORED
        [path] = _files(platform.settings.blob_dir)
        on_disk = path.read_bytes()
        assert NAME.encode() not in on_disk and b"DICM" not in on_disk
        [loc] = platform.archive.locate(Level.STUDY, [str(result.study_instance_uid)])
        assert platform.archive.read(loc) == data
        assert loc.size == len(data)
        # The same bytes again: a duplicate, recognised through the plaintext digest.
        assert platform.archive.store(facility.id, data).outcome is StoreOutcome.DUPLICATE
        # Served over DICOMweb as the original.
        with TestClient(create_app(platform)) as client:
            r = client.get(f"/dicom-web/studies/{result.study_instance_uid}/metadata")
            assert r.status_code == 200 and NAME in r.text
    finally:
        platform.close()


def test_a_sealed_object_does_not_open_for_another_facility(tmp_path: Path) -> None:
    platform = _platform(tmp_path, master_key=_key())
    try:
        one = platform.index.add_facility("One")
        two = platform.index.add_facility("Two")
        a = platform.archive.store(one.id, _instance("A"))
        b = platform.archive.store(two.id, _instance("B"))
        [la] = platform.archive.locate(Level.STUDY, [str(a.study_instance_uid)])
        [lb] = platform.archive.locate(Level.STUDY, [str(b.study_instance_uid)])
        # Facility two's file put where facility one's was: it must not open as one's.
        shutil.copyfile(platform.blobs.path(lb.blob_key), platform.blobs.path(la.blob_key))
        with pytest.raises(IntegrityError):
            platform.archive.read(la)
        assert platform.archive.read(lb)[128:132] == b"DICM"
    finally:
        platform.close()


def test_data_keys_need_their_master_key(tmp_path: Path) -> None:
    key = _key()
    platform = _platform(tmp_path, master_key=key)
    facility = platform.index.add_facility("Keyed")
    stored = platform.archive.store(facility.id, _instance())
    platform.close()
    with pytest.raises(MasterKeyError, match="wrapped by master key"):
        _platform(tmp_path, master_key=_key())
    # Without any master key the sealed object is refused, not returned as garbage.
    plain = _platform(tmp_path)
    try:
        [loc] = plain.archive.locate(Level.STUDY, [str(stored.study_instance_uid)])
        with pytest.raises(IntegrityError, match="encrypted"):
            plain.archive.read(loc)
    finally:
        plain.close()
    key_file = tmp_path / "master.key"
    key_file.write_text(key + "\n")
    again = _platform(tmp_path, master_key_file=key_file)
    try:
        [loc] = again.archive.locate(Level.STUDY, [str(stored.study_instance_uid)])
        assert again.archive.read(loc)[128:132] == b"DICM"
    finally:
        again.close()
    with pytest.raises(MasterKeyError, match="32 bytes"):
        _platform(tmp_path, master_key="c2hvcnQ=")


def test_older_plain_objects_stay_readable(tmp_path: Path) -> None:
    plain = _platform(tmp_path)
    facility = plain.index.add_facility("Before")
    before = plain.archive.store(facility.id, _instance("OLD"))
    plain.close()
    sealed = _platform(tmp_path, master_key=_key())
    try:
        [loc] = sealed.archive.locate(Level.STUDY, [str(before.study_instance_uid)])
        assert sealed.archive.read(loc)[128:132] == b"DICM"
    finally:
        sealed.close()


def test_a_sealed_temporary_file_is_recovered(tmp_path: Path) -> None:
    platform = _platform(tmp_path, master_key=_key())
    try:
        facility = platform.index.add_facility("Crashy")
        data = _instance("CRASH")
        staged = platform.blobs.stage(facility.id, data)  # the crash came before the rename
        assert NAME.encode() not in staged.inner.path.read_bytes()  # type: ignore[union-attr]
        report = recover_incomplete(platform.index, platform.blobs, platform.blobs.incomplete())
        assert report.reindexed == 1
        [loc] = platform.archive.locate(Level.PATIENT, ["CRASH"])
        assert platform.archive.read(loc) == data
    finally:
        platform.close()


def test_each_facility_stores_in_its_region(tmp_path: Path) -> None:
    eu, us = tmp_path / "eu-store", tmp_path / "us-store"
    platform = _platform(tmp_path, storage_regions={"eu": eu, "us": us})
    try:
        berlin = platform.index.add_facility("Berlin", region="eu")
        boston = platform.index.add_facility("Boston", region="us")
        home = platform.index.add_facility("Home")
        tokyo = platform.index.add_facility("Tokyo", region="jp")
        for facility, pid in ((berlin, "DE-1"), (boston, "US-1"), (home, "H-1")):
            assert platform.archive.store(facility.id, _instance(pid)).ok
        assert len(_files(eu)) == 1 and len(_files(us)) == 1
        assert len(_files(platform.settings.blob_dir)) == 1
        assert b"DE-1" in _files(eu)[0].read_bytes()
        refused = platform.archive.store(tokyo.id, _instance("JP-1"))
        assert refused.outcome is StoreOutcome.REJECTED and "region 'jp'" in refused.reason
        assert platform.archive.locate(Level.PATIENT, ["JP-1"]) == []
        for pid in ("DE-1", "US-1", "H-1"):
            [loc] = platform.archive.locate(Level.PATIENT, [pid])
            assert platform.archive.read(loc)[128:132] == b"DICM"
    finally:
        platform.close()


def test_regions_and_encryption_together(tmp_path: Path) -> None:
    eu = tmp_path / "eu-store"
    platform = _platform(tmp_path, storage_regions={"eu": eu}, master_key=_key())
    try:
        berlin = platform.index.add_facility("Berlin", region="eu")
        data = _instance("DE-2")
        assert platform.archive.store(berlin.id, data).ok
        [path] = _files(eu)
        assert b"DE-2" not in path.read_bytes()
        [loc] = platform.archive.locate(Level.PATIENT, ["DE-2"])
        assert loc.blob_key.startswith("@eu/")
        assert platform.archive.read(loc) == data
    finally:
        platform.close()


def test_stow_rs_stores_sealed_in_the_facility_region(tmp_path: Path) -> None:
    """STOW-RS (all parts written, then indexed as one batch) keeps both:
    each object sealed under the facility's key in its region, and a facility whose
    region has no storage refused."""
    eu = tmp_path / "eu-store"
    platform = _platform(tmp_path, storage_regions={"eu": eu}, master_key=_key())
    try:
        platform.index.add_facility("Berlin", region="eu")
        platform.index.add_facility("Tokyo", region="jp")
        spec = StudySpec(patient_id="DE-3", patient_name=NAME)
        data = [to_bytes(ds) for ds in ct_series(spec, slices=3, rows=32, cols=32)]
        with TestClient(create_app(platform)) as client:
            stored = client.post(
                "/dicom-web/facilities/Berlin/studies",
                content=encode_multipart("b", [("application/dicom", d) for d in data]),
                headers={"Content-Type": STOW},
            )
            assert stored.status_code == 200, stored.text
            refused = client.post(
                "/dicom-web/facilities/Tokyo/studies",
                content=encode_multipart("b", [("application/dicom", _instance("JP-2"))]),
                headers={"Content-Type": STOW},
            )
            assert refused.status_code == 409
            assert "region 'jp'" in refused.json()["00081198"]["Value"][0]["00080418"]["Value"][0]
        files = _files(eu)
        assert len(files) == 3 and _files(platform.settings.blob_dir) == []
        assert all(NAME.encode() not in f.read_bytes() for f in files)
        locs = platform.archive.locate(Level.PATIENT, ["DE-3"])
        assert all(loc.blob_key.startswith("@eu/") for loc in locs)
        assert sorted(platform.archive.read(loc) for loc in locs) == sorted(data)
        assert platform.archive.locate(Level.PATIENT, ["JP-2"]) == []
    finally:
        platform.close()


@pytest.mark.postgres
def test_sealed_objects_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    platform = _platform(tmp_path, database_url=pg_url, master_key=_key())
    try:
        facility = platform.index.add_facility("PG Sealed")
        data = _instance("PG-ENC")
        assert platform.archive.store(facility.id, data).ok
        [loc] = platform.archive.locate(Level.PATIENT, ["PG-ENC"])
        assert platform.archive.read(loc) == data
        assert NAME.encode() not in Path(platform.blobs.path(loc.blob_key)).read_bytes()
    finally:
        platform.close()
