"""After an unclean stop the index catches up from the fsynced blobs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import delete

from telerad.bootstrap import open_platform
from telerad.config import Settings
from telerad.domain.model import Level
from telerad.storage.db import tables as t
from telerad.synthetic import StudySpec, ct_series, to_bytes


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lost_index_commits_are_reindexed_from_blobs(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", fsync=True)
    p = open_platform(settings)
    fac = p.default_facility()
    datasets = list(ct_series(StudySpec(patient_id="REC"), slices=6, rows=16, cols=16))
    for ds in datasets[:3]:
        assert p.archive.store(fac.id, to_bytes(ds)).ok
    p.syncer.sync()  # the first three are durable in the index
    for ds in datasets[3:]:
        assert p.archive.store(fac.id, to_bytes(ds)).ok
    lost = [ds.SOPInstanceUID for ds in datasets[3:]]
    # Power loss: the last commits never reached the disk. Simulate by removing
    # their rows (the blobs were fsynced before the acknowledgement).
    with p.engine.begin() as conn:
        conn.execute(delete(t.instance).where(t.instance.c.sop_instance_uid.in_(lost)))
    # A leftover conflicting blob that the index refused before the crash.
    orphan = p.blobs.put(fac.id, datasets[0].SOPInstanceUID, b"not the kept object")
    p.syncer.sync()  # what closing would have synced; then the process dies
    p.engine.dispose()
    marker = settings.data_dir / f".running-{os.getpid()}"
    dead = settings.data_dir / f".running-{_dead_pid()}"
    marker.rename(dead)  # the process died

    again = open_platform(settings)
    try:
        found = again.archive.locate(Level.IMAGE, [ds.SOPInstanceUID for ds in datasets])
        assert len(found) == 6
        for loc in found:
            again.archive.read(loc)
        assert not Path(again.blobs.path(orphan.key)).exists()
        assert not dead.exists()
    finally:
        again.close()


def test_clean_stop_needs_no_recovery(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", fsync=False)
    p = open_platform(settings)
    p.close()
    assert not list(settings.data_dir.glob(".running-*"))
    assert (settings.data_dir / ".index-synced").exists()


def test_lost_rename_is_redone_from_the_fsynced_temporary_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", fsync=True)
    p = open_platform(settings)
    fac = p.default_facility()
    ds = next(ct_series(StudySpec(patient_id="REN"), slices=1, rows=16, cols=16))
    result = p.archive.store(fac.id, to_bytes(ds))
    [loc] = p.archive.locate(Level.IMAGE, [result.sop_instance_uid or ""])
    final = Path(p.blobs.path(loc.blob_key))
    p.close()
    # Power loss before the directory sync: the rename never reached the disk.
    final.rename(settings.data_dir / "blobs" / str(fac.id) / ".incoming-abc123.tmp")
    (settings.data_dir / f".running-{_dead_pid()}").touch()

    again = open_platform(settings)
    try:
        assert final.exists()
        again.archive.read(loc)
        assert not list((settings.data_dir / "blobs").rglob(".incoming-*"))
    finally:
        again.close()


def test_live_writers_temporary_files_are_left_alone(tmp_path: Path) -> None:
    """A second process (e.g. `telerad node add` beside a running server) must not
    touch the server's in-flight writes, even after some earlier crash."""
    settings = Settings(data_dir=tmp_path / "data", fsync=False)
    first = open_platform(settings)
    in_flight = settings.data_dir / "blobs" / "1" / ".incoming-live.tmp"
    in_flight.parent.mkdir(parents=True, exist_ok=True)
    in_flight.write_bytes(b"half of an instance")
    (settings.data_dir / f".running-{_dead_pid()}").touch()
    live = settings.data_dir / f".running-{os.getppid()}"  # a live process other than us
    live.touch()
    second = open_platform(settings)
    try:
        assert in_flight.exists()
    finally:
        second.close()
        first.close()
        live.unlink()
