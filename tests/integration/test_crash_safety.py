"""A server killed mid-ingest keeps every instance it acknowledged, intact, and nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from telerad.adapters.dicomweb.multipart import encode_multipart
from telerad.bootstrap import open_platform
from telerad.config import Settings
from telerad.domain.model import Level
from telerad.domain.query import Query
from telerad.synthetic import StudySpec, ct_series, to_bytes


def test_kill_during_ingest_loses_no_acknowledged_instance(
    tmp_path: Path, server_factory: Callable[..., Any]
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = server_factory(data_dir, {"TELERAD_FSYNC": "true"})
    acknowledged: list[str] = []
    datasets = list(ct_series(StudySpec(), slices=150, rows=128, cols=128))
    ae = AE(ae_title="CRASHTEST")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title=server.aet)
    assert assoc.is_established
    killer = threading.Timer(0.0, lambda: None)
    try:
        for i, ds in enumerate(datasets):
            if i == 40:  # kill while the association is busy sending
                killer = threading.Timer(0.05, os.kill, (server.process.pid, signal.SIGKILL))
                killer.start()
            status = assoc.send_c_store(ds)
            if not assoc.is_established or not status or status.Status != 0x0000:
                break
            acknowledged.append(ds.SOPInstanceUID)
    finally:
        killer.join()
        assoc.abort()
        server.process.wait(10)
    assert 40 <= len(acknowledged) < len(datasets), "the kill should land mid-ingest"

    platform = open_platform(Settings(data_dir=data_dir))
    try:
        found = platform.archive.locate(Level.IMAGE, acknowledged)
        assert {loc.sop_instance_uid for loc in found} == set(acknowledged)
        for loc in found:
            platform.archive.read(loc)  # verifies the SHA-256 recorded at write time
        indexed = platform.index.counts()["instances"]
        assert indexed in (len(acknowledged), len(acknowledged) + 1)  # + one in flight at most
        files = [f for f in platform.settings.blob_dir.rglob("*") if f.is_file()]
        assert not [f for f in files if f.name.startswith(".incoming-")]  # swept at start-up
        # At most the one object in flight may be on disk without an index row.
        assert len(files) - indexed in (0, 1)
    finally:
        platform.close()


STOW_CT = 'multipart/related; type="application/dicom"; boundary=crash'


def test_kill_during_stow_loses_no_acknowledged_instance(
    tmp_path: Path, server_factory: Callable[..., Any]
) -> None:
    """STOW-RS requests write all their parts, then index them in one transaction once
    all are on disk: a kill at any point keeps every instance a response
    acknowledged, and whatever is left of the request in flight is either put in
    place or removed at start-up (no temporary files, no orphan rows)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = server_factory(data_dir, {"TELERAD_FSYNC": "true"})
    spec = StudySpec()
    datasets = list(ct_series(spec, slices=200, rows=128, cols=128))
    batches = [datasets[i : i + 10] for i in range(0, len(datasets), 10)]
    acknowledged: list[str] = []
    killer = threading.Timer(0.0, lambda: None)
    with httpx.Client(timeout=30) as client:
        try:
            for i, batch in enumerate(batches):
                if i == 4:  # kill while requests keep coming
                    killer = threading.Timer(0.05, os.kill, (server.process.pid, signal.SIGKILL))
                    killer.start()
                payload = encode_multipart(
                    "crash", [("application/dicom", to_bytes(ds)) for ds in batch]
                )
                r = client.post(
                    f"{server.dicomweb}/studies",
                    content=payload,
                    headers={"Content-Type": STOW_CT},
                )
                if r.status_code != 200:
                    break
                acknowledged += [
                    item["00081155"]["Value"][0] for item in r.json()["00081199"]["Value"]
                ]
        except httpx.HTTPError:
            pass  # the connection died with the server
        finally:
            killer.join()
            server.process.wait(10)
    assert 40 <= len(acknowledged) < len(datasets), "the kill should land mid-ingest"

    platform = open_platform(Settings(data_dir=data_dir))
    try:
        found = platform.archive.locate(Level.IMAGE, acknowledged)
        assert {loc.sop_instance_uid for loc in found} == set(acknowledged)
        for loc in found:
            platform.archive.read(loc)  # verifies the SHA-256 recorded at write time
        every = platform.archive.locate(Level.STUDY, [spec.study_uid])
        for loc in every:
            platform.archive.read(loc)  # no row points at a missing or partial blob
        indexed = platform.index.counts()["instances"]
        assert len(acknowledged) <= indexed <= len(acknowledged) + 10  # + the request in flight
        files = [f for f in platform.settings.blob_dir.rglob("*") if f.is_file()]
        assert not [f for f in files if f.name.startswith(".incoming-")]  # swept at start-up
        assert len(files) == indexed
    finally:
        platform.close()


_CRASHING_BATCH = """
import os, sys
from telerad.bootstrap import open_platform
from telerad.config import Settings
from telerad.synthetic import StudySpec, ct_series, to_bytes

platform = open_platform(Settings(data_dir=sys.argv[1], fsync=True))
facility = platform.default_facility().id
items = [to_bytes(ds) for ds in ct_series(StudySpec(), slices=6, rows=64, cols=64)]
assert all(r.ok for r in platform.archive.store_batch(facility, items[:2]))
print("acknowledged", flush=True)
if sys.argv[2] == "before-index-commit":
    platform.index.add_instances = lambda *args: os._exit(9)
    platform.archive.store_batch(facility, items[2:])
else:
    def arriving():
        yield items[2]
        yield items[3]
        os._exit(9)
    platform.archive.store_batch(facility, arriving())
"""


@pytest.mark.parametrize("where", ["before-index-commit", "while-staging"])
def test_crash_inside_a_stow_batch_leaves_a_consistent_archive(tmp_path: Path, where: str) -> None:
    """A process dying with a batch half done (blobs on disk and renamed but not
    indexed, or parts still staged) keeps what was acknowledged; start-up recovery
    leaves no temporary file and no blob without its row, nor a row without its blob."""
    data_dir = tmp_path / "data"
    run = subprocess.run(
        [sys.executable, "-c", _CRASHING_BATCH, str(data_dir), where],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 9, run.stderr
    assert run.stdout.strip() == "acknowledged"

    platform = open_platform(Settings(data_dir=data_dir))
    try:
        (study,) = platform.index.search(Query(Level.STUDY))
        every = platform.archive.locate(Level.STUDY, [str(study["StudyInstanceUID"])])
        assert len(every) >= 2  # the two acknowledged, whatever recovery added
        for loc in every:
            platform.archive.read(loc)  # each row's blob is there and verifies
        files = [f for f in platform.settings.blob_dir.rglob("*") if f.is_file()]
        assert not [f for f in files if f.name.startswith(".incoming-")]
        assert len(files) == len(every) == platform.index.counts()["instances"]
    finally:
        platform.close()
