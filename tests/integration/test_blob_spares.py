"""Spare temporary files: made ahead in the background, restored after a crash, removed."""

from __future__ import annotations

from pathlib import Path

from tests.support import eventually

from telerad.bootstrap import Platform
from telerad.domain.model import Level
from telerad.services.recovery import recover, recover_incomplete
from telerad.storage.blobs.filesystem import SPARES, FileBlobStore
from telerad.synthetic import StudySpec, ct_series, to_bytes


def _files(folder: Path) -> list[Path]:
    return [f for f in folder.rglob("*") if f.is_file()]


def test_spares_are_used_and_removed_on_close(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs", fsync=True, spare_dir=tmp_path / "incoming")
    first = store.put(1, "1.2.3", b"first")  # no spare yet: a file of its own
    eventually(lambda: len(_files(tmp_path / "incoming")) >= SPARES, 10, 0.01, "the spares made")
    objects = [first] + [store.put(1, f"1.2.{i}", b"x" * i) for i in range(4, 4 + SPARES)]
    for i, obj in enumerate(objects[1:], start=4):
        assert store.get(obj.key, obj.sha256) == b"x" * i
    # One directory level of fan-out, made ahead of use.
    assert all(len(Path(o.key).parts) == 3 for o in objects)
    eventually(
        lambda: len(list((tmp_path / "blobs" / "1").iterdir())) == 256, 10, 0.01, "the fan-out"
    )
    store.close()
    assert _files(tmp_path / "incoming") == []
    assert sorted(_files(tmp_path / "blobs")) == sorted(tmp_path / "blobs" / o.key for o in objects)


def test_spares_stay_out_of_the_blob_tree(platform: Platform) -> None:
    good = to_bytes(next(ct_series(StudySpec(), slices=1, rows=16, cols=16)))
    assert platform.archive.store(platform.default_facility().id, good).ok
    eventually(lambda: _files(platform.settings.data_dir / "incoming"), 10, 0.01, "a spare")
    assert len(_files(platform.settings.blob_dir)) == 1


def test_written_spare_left_by_a_crash_is_restored(platform: Platform) -> None:
    """A crash after the fsync of a spare but before its rename was durable: recovery
    puts it in place; empty spares are removed."""
    fac = platform.default_facility()
    whole = to_bytes(next(ct_series(StudySpec(patient_id="SPARE"), slices=1, rows=16, cols=16)))
    folder = platform.settings.data_dir / "incoming" / str(fac.id) / "3"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".incoming-99999-1.tmp").write_bytes(whole)
    (folder / ".incoming-99999-2.tmp").write_bytes(b"")
    found = [(p.name, f) for p, f in platform.blobs.incomplete() if "99999" in p.name]
    assert sorted(found) == [(".incoming-99999-1.tmp", fac.id), (".incoming-99999-2.tmp", fac.id)]
    report = recover_incomplete(
        platform.index,
        platform.blobs,
        [(p, f) for p, f in platform.blobs.incomplete() if "99999" in p.name],
    )
    assert (report.checked, report.reindexed, report.removed) == (2, 1, 1)
    assert not list(folder.glob(".incoming-99999-*"))
    [loc] = platform.archive.locate(Level.IMAGE, [_sop_uid(whole)])
    assert platform.archive.read(loc) == whole


def test_blobs_of_the_two_level_layout_are_still_found(tmp_path: Path, platform: Platform) -> None:
    """Archives written before the one-level fan-out keep their keys (the index has them)."""
    whole = to_bytes(next(ct_series(StudySpec(patient_id="OLD"), slices=1, rows=16, cols=16)))
    fac = platform.default_facility()
    old = platform.settings.blob_dir / str(fac.id) / "ab" / "cd" / ("ab" + "0" * 62 + ".dcm")
    old.parent.mkdir(parents=True)
    old.write_bytes(whole)
    candidates = list(platform.blobs.written_since(0))
    assert (old.relative_to(platform.settings.blob_dir).as_posix(), fac.id) in candidates
    report = recover(platform.index, platform.blobs, candidates)
    assert report.reindexed == 1
    [loc] = platform.archive.locate(Level.IMAGE, [_sop_uid(whole)])
    assert platform.archive.read(loc) == whole


def _sop_uid(data: bytes) -> str:
    import io

    from pydicom import dcmread

    return str(dcmread(io.BytesIO(data)).SOPInstanceUID)
