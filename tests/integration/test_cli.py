"""The ``telerad`` command line, run as a user runs it: a subprocess on a data dir."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from tests.conftest import run_cli

from telerad.bootstrap import Platform, open_platform
from telerad.config import Settings
from telerad.demo import DEMO_FACILITY, SAMPLES
from telerad.domain.model import Level
from telerad.domain.orders import OrderFilter
from telerad.domain.query import Query
from telerad.synthetic import StudySpec, ct_series, to_bytes
from telerad.workflow.model import Priority

telerad = run_cli


def opened(data_dir: Path) -> Platform:
    return open_platform(Settings(data_dir=data_dir, fsync=False))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[tuple[Path, list[str], str]]:
    """A folder tree: 3 good CT slices (one in a subfolder), a text file, a truncated slice."""
    folder = tmp_path / "inbox"
    (folder / "series" / "deeper").mkdir(parents=True)
    slices = [to_bytes(ds) for ds in ct_series(StudySpec(), slices=4, rows=64, cols=64)]
    good = slices[:3]
    (folder / "a.dcm").write_bytes(good[0])
    (folder / "series" / "b.dcm").write_bytes(good[1])
    (folder / "series" / "deeper" / "c").write_bytes(good[2])  # no suffix: content decides
    (folder / "notes.txt").write_text("not an image, just some notes\n" * 20)
    truncated = slices[3][: len(slices[3]) // 2]
    (folder / "series" / "broken.dcm").write_bytes(truncated)
    good_uids = [str(dcmread(folder / "a.dcm").SOPInstanceUID)]
    good_uids += [
        str(dcmread(folder / p).SOPInstanceUID) for p in ("series/b.dcm", "series/deeper/c")
    ]
    truncated_uid = str(dcmread(io.BytesIO(slices[3])).SOPInstanceUID)
    yield folder, good_uids, truncated_uid


def test_import_stores_good_files_and_reports_bad_ones(
    data_dir: Path, inbox: tuple[Path, list[str], str]
) -> None:
    folder, good_uids, truncated_uid = inbox
    run = telerad(data_dir, "import", str(folder), "--facility", "Clinic North")
    assert run.returncode == 1, run.stdout + run.stderr
    out = run.stdout
    assert "'Clinic North': 3 stored, 0 duplicates, 2 failed" in out
    assert "notes.txt" in out and "not a DICOM file" in out
    assert "broken.dcm" in out and "truncated" in out

    p = opened(data_dir)
    try:
        assert p.index.counts()["instances"] == 3
        for uid in good_uids:
            location = p.index.find_instance(uid)
            assert location is not None
            assert p.index.facility_by_id(location.facility_id).name == "Clinic North"  # type: ignore[union-attr]
        assert p.index.find_instance(truncated_uid) is None
        blobs = [f for f in p.settings.blob_dir.rglob("*") if f.is_file()]
        assert len(blobs) == 3  # nothing kept of the bad files
    finally:
        p.close()

    a, b = str(folder / "a.dcm"), str(folder / "series" / "b.dcm")
    again = telerad(data_dir, "import", a, b, "--facility", "Clinic North")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 stored, 2 duplicates, 0 failed" in again.stdout
    p = opened(data_dir)
    try:
        assert p.index.counts()["instances"] == 3
    finally:
        p.close()


def test_import_of_a_missing_path_fails(data_dir: Path, tmp_path: Path) -> None:
    run = telerad(data_dir, "import", str(tmp_path / "does-not-exist"))
    assert run.returncode == 1
    assert "no such file or directory" in run.stdout


def test_node_add_registers_a_node(data_dir: Path) -> None:
    run = telerad(
        data_dir,
        "node",
        "add",
        "READSTATION1",
        "--host",
        "10.1.2.3",
        "--port",
        "104",
        "--facility",
        "Clinic North",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    listed = telerad(data_dir, "node", "list")
    assert "READSTATION1" in listed.stdout and "10.1.2.3:104" in listed.stdout
    p = opened(data_dir)
    try:
        node = p.index.node_by_ae("READSTATION1")
        assert node is not None and (node.host, node.port) == ("10.1.2.3", 104)
        facility = p.index.facility_by_name("Clinic North")
        assert facility is not None and node.facility_id == facility.id
    finally:
        p.close()
    bad = telerad(data_dir, "node", "add", "A" * 17, "--host", "h", "--port", "1")
    assert bad.returncode != 0
    assert "16" in bad.stderr


def test_demo_loads_every_promised_modality_family(data_dir: Path) -> None:
    run = telerad(data_dir, "demo")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 failed" in run.stdout
    p = opened(data_dir)
    try:
        facility = p.index.facility_by_name(DEMO_FACILITY)
        assert facility is not None
        studies = p.archive.search(Query(Level.STUDY, facility_ids=frozenset({facility.id})))
        modalities = {m for s in studies for m in s["ModalitiesInStudy"]}  # type: ignore[attr-defined]
        assert {"CT", "MR", "US", "CR", "DX", "NM", "OT"} <= modalities
        images = p.archive.search(
            Query(Level.IMAGE, returns={"AvailableTransferSyntaxUID", "NumberOfFrames"})
        )
        syntaxes = {i["AvailableTransferSyntaxUID"] for i in images}
        assert {
            "1.2.840.10008.1.2.1",  # explicit VR little endian
            "1.2.840.10008.1.2.4.50",  # JPEG baseline
            "1.2.840.10008.1.2.4.70",  # JPEG lossless SV1
            "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
            "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
            "1.2.840.10008.1.2.5",  # RLE
        } <= syntaxes
        sop_classes = {i["SOPClassUID"] for i in images}
        assert "1.2.840.10008.5.1.4.1.1.2.1" in sop_classes  # Enhanced CT
        assert "1.2.840.10008.5.1.4.1.1.4.1" in sop_classes  # Enhanced MR
        assert "1.2.840.10008.5.1.4.1.1.3.1" in sop_classes  # US multi-frame
        assert any(int(i["NumberOfFrames"] or 1) > 100 for i in images)
        ct = [s for s in studies if "CT" in s["ModalitiesInStudy"]]  # type: ignore[operator]
        assert sum(1 for s in ct if s["NumberOfStudyRelatedInstances"] == 60) == 2
        assert len(images) == 60 * 2 + 24 + 1 + len(SAMPLES)
        # The generated studies come with their orders; reconciliation matches them.
        orders = p.orders.find(OrderFilter(facility_ids=frozenset({facility.id})))
        assert {o.accession_number for o in orders} == {f"DEMO000{i}" for i in range(1, 5)}
        aphasia = p.orders.by_accession(facility.id, "DEMO0003")
        assert aphasia is not None and aphasia.priority == Priority.STROKE
        p.reconciler.run()
        matched = p.orders.find(OrderFilter(facility_ids=frozenset({facility.id})))
        assert all(o.study_instance_uid for o in matched)
    finally:
        p.close()

    # Loading again stores nothing twice: every UID is derived from a fixed name.
    again = telerad(data_dir, "demo")
    assert again.returncode == 0
    assert "0 stored" in again.stdout and f"{len(images)} already there" in again.stdout


def test_an_instance_kept_for_another_facility_is_refused_as_any_taken_uid(
    data_dir: Path, tmp_path: Path
) -> None:
    """Importing what another facility already has tells nothing of that facility."""
    folder = tmp_path / "cross"
    folder.mkdir()
    north = next(ct_series(StudySpec(patient_name="NORTHONLY^PAT"), slices=1, rows=16, cols=16))
    south = next(ct_series(StudySpec(patient_name="SOUTH^PAT"), slices=1, rows=16, cols=16))
    (folder / "north.dcm").write_bytes(to_bytes(north))
    (folder / "south.dcm").write_bytes(to_bytes(south))
    south.StudyDescription = "CHANGED"  # the same SOP Instance UID, different content
    (folder / "south-changed.dcm").write_bytes(to_bytes(south))
    assert (
        telerad(
            data_dir, "import", str(folder / "north.dcm"), "--facility", "Clinic North"
        ).returncode
        == 0
    )
    assert (
        telerad(
            data_dir, "import", str(folder / "south.dcm"), "--facility", "Clinic South"
        ).returncode
        == 0
    )

    run = telerad(
        data_dir, "import", str(folder / "north.dcm"), str(folder / "south-changed.dcm"),
        "--facility", "Clinic South",
    )  # fmt: skip
    assert run.returncode == 1
    out = run.stdout + run.stderr
    assert "'Clinic South': 0 stored, 0 duplicates, 2 failed" in out
    reasons = {
        name: re.search(rf"{re.escape(name)}\s*│\s*(.+?)\s*│", out)
        for name in ("north.dcm", "south-changed.dcm")
    }
    assert all(reasons.values()), out
    # Word for word the answer for a taken UID at the importer's own facility.
    assert reasons["north.dcm"][1] == reasons["south-changed.dcm"][1]  # type: ignore[index]
    for hint in ("elsewhere", "Clinic North", "another facility", "NORTHONLY"):
        assert hint not in out
    p = opened(data_dir)
    try:
        assert p.index.counts()["instances"] == 2
    finally:
        p.close()


def test_warnings_while_reading_are_counted_not_printed(data_dir: Path, tmp_path: Path) -> None:
    """pydicom's warnings would break the progress bar and quote values (PHI)."""
    from pydicom import config

    folder = tmp_path / "odd"
    folder.mkdir()
    spec = StudySpec(patient_name="MÜLLER^JÖRG", patient_id="ODD1")
    saved = config.settings.writing_validation_mode
    config.settings.writing_validation_mode = config.IGNORE
    try:
        for i, ds in enumerate(ct_series(spec, slices=3, rows=8, cols=8)):
            ds.StudyDescription = "Ä" * 70  # longer than LO allows: pydicom warns on reading
            (folder / f"{i}.dcm").write_bytes(to_bytes(ds))
    finally:
        config.settings.writing_validation_mode = saved
    run = telerad(data_dir, "import", str(folder))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "UserWarning" not in run.stdout + run.stderr
    assert "3 warnings while reading 3 files" in run.stdout
    assert "exceeds the maximum length of 64 allowed for VR LO" in run.stdout
    assert "MÜLLER" not in run.stdout + run.stderr and "ÄÄÄ" not in run.stdout + run.stderr
