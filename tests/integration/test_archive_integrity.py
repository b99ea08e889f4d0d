"""Bad input is refused with a reason and leaves nothing behind; stored bytes are verified."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from telerad.bootstrap import Platform
from telerad.domain.model import Level, StoreOutcome
from telerad.services.ports import IntegrityError
from telerad.storage.blobs.filesystem import FileBlobStore
from telerad.synthetic import StudySpec, ct_series, to_bytes


def _nothing_stored(p: Platform) -> None:
    assert p.index.counts()["instances"] == 0
    assert not [f for f in p.settings.blob_dir.rglob("*") if f.is_file()]


def _with(ds_bytes: bytes, **changes: str) -> bytes:
    ds = dcmread(io.BytesIO(ds_bytes))
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
        if keyword == "SOPInstanceUID":
            ds.file_meta.MediaStorageSOPInstanceUID = value
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda b: b"this is not DICOM at all" * 20, "not a DICOM file"),
        (lambda b: b[: len(b) // 2], "truncated"),
        (lambda b: b[:-1], "truncated"),
        (lambda b: _with(b, SOPInstanceUID="1.2." + "3" * 70), "longer than 64"),
        (lambda b: _with(b, StudyInstanceUID="1.2.3.abc"), "characters"),
        (lambda b: _with(b, SeriesInstanceUID=""), "SeriesInstanceUID is missing"),
    ],
    ids=["non-dicom", "half", "one-byte-short", "uid-too-long", "uid-bad-chars", "uid-missing"],
)
def test_bad_instances_are_refused(platform: Platform, mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    good = to_bytes(next(ct_series(StudySpec(), slices=1, rows=64, cols=64)))
    result = platform.archive.store(platform.default_facility().id, mutate(good))
    assert result.outcome is StoreOutcome.REJECTED
    assert reason in result.reason
    _nothing_stored(platform)


def test_real_sample_files_round_trip_byte_for_byte(platform: Platform) -> None:
    fac = platform.default_facility()
    for name in ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "SC_rgb_rle.dcm", "JPEG-LL.dcm"):
        data = Path(get_testdata_file(name)).read_bytes()
        result = platform.archive.store(fac.id, data)
        assert result.ok, (name, result.reason)
        [loc] = platform.archive.locate(Level.IMAGE, [result.sop_instance_uid or ""])
        # Byte for byte after the preamble, which is kept zeroed (CT_small.dcm's
        # holds a TIFF header): see test_hostile_dicom.py.
        assert platform.archive.read(loc) == bytes(128) + data[128:]


def test_tampered_blob_is_detected_on_read(platform: Platform) -> None:
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    result = platform.archive.store(platform.default_facility().id, data)
    [loc] = platform.archive.locate(Level.IMAGE, [result.sop_instance_uid or ""])
    path = Path(platform.blobs.path(loc.blob_key))
    raw = bytearray(path.read_bytes())
    raw[2000] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError):
        platform.archive.read(loc)
    assert not platform.archive.is_committed(loc.sop_instance_uid, loc.sop_class_uid)


def test_blob_names_never_come_from_uids(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path, fsync=True)
    obj = store.put(1, "../../../../etc/passwd", b"x")
    target = Path(store.path(obj.key)).resolve()
    assert target.is_relative_to(tmp_path.resolve())
    assert "passwd" not in obj.key and ".." not in obj.key
    assert store.get(obj.key, obj.sha256) == b"x"


def test_crash_leftovers_are_restored_or_removed(platform: Platform) -> None:
    """A crash after the fsync but before the rename was durable leaves the temporary
    file: recovery puts it in place and indexes it; a partial one is removed."""
    from telerad.services.recovery import recover_incomplete

    fac = platform.default_facility()
    whole = to_bytes(next(ct_series(StudySpec(patient_id="TMP"), slices=1, rows=16, cols=16)))
    folder = platform.settings.blob_dir / str(fac.id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".incoming-whole.tmp").write_bytes(whole)
    (folder / ".incoming-partial.tmp").write_bytes(whole[: len(whole) // 3])
    report = recover_incomplete(platform.index, platform.blobs, platform.blobs.incomplete())
    assert (report.checked, report.reindexed, report.removed) == (2, 1, 1)
    assert not list(folder.glob(".incoming-*"))
    [loc] = platform.archive.locate(Level.IMAGE, [str(dcmread(io.BytesIO(whole)).SOPInstanceUID)])
    assert platform.archive.read(loc) == whole


def test_failed_index_write_leaves_no_blob(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_a: object, **_k: object) -> bool:
        raise RuntimeError("database went away")

    monkeypatch.setattr(platform.index, "add_instance", boom)
    data = to_bytes(next(ct_series(StudySpec(), slices=1, rows=8, cols=8)))
    with pytest.raises(RuntimeError):
        platform.archive.store(platform.default_facility().id, data)
    assert not [f for f in platform.settings.blob_dir.rglob("*") if f.is_file()]
