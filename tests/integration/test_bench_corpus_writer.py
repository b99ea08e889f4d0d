"""The benchmark's fast corpus writer (bench/): files as pydicom writes them."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pydicom
from bench import corpus

from telerad import synthetic


def test_template_writer_writes_what_pydicom_writes(tmp_path: Path) -> None:
    studies = corpus.write_studies(tmp_path / "s", 40, 16, seed=7, progress=lambda n: None)
    assert [len(c) for c in studies.chunks] == [16, 16, 8]
    uids = set()
    for chunk in studies.chunks:
        for path in chunk:
            raw = path.read_bytes()
            ds = pydicom.dcmread(BytesIO(raw))
            # Decode every element, so pydicom re-encodes them all from their values
            # (unconverted raw elements would be written back as they were read).
            for _ in ds.iterall():
                pass
            for _ in ds.file_meta:
                pass
            assert synthetic.to_bytes(ds) == raw
            uids.add(ds.SOPInstanceUID)
    assert len(uids) == 40
    row = studies.rows[3]
    ds = pydicom.dcmread(studies.chunks[0][3])
    assert (ds.PatientID, str(ds.PatientName), ds.StudyDate) == (
        row.patient_id,
        row.patient_name,
        row.study_date,
    )


def test_expected_counts_follow_the_rows(tmp_path: Path) -> None:
    studies = corpus.write_studies(tmp_path / "s", 200, 100, seed=3, progress=lambda n: None)
    pid = studies.rows[0].patient_id
    assert studies.count_patient_id(pid) == sum(r.patient_id == pid for r in studies.rows) >= 1
    for prefix in corpus.name_prefixes(studies, 5, seed=1):
        assert studies.count_name_prefix(prefix) >= 1
    assert studies.count_date_range("20140101", "20251231") == 200
    assert studies.count_date_range("20300101", "20301231") == 0


def test_tiny_series_shares_one_study(tmp_path: Path) -> None:
    tiny = corpus.write_tiny(tmp_path / "t", 5, progress=lambda n: None)
    datasets = [pydicom.dcmread(p) for p in tiny.files]
    assert {d.StudyInstanceUID for d in datasets} == {tiny.study_uid}
    assert [d.SOPInstanceUID for d in datasets] == tiny.sop_uids
    assert [int(d.InstanceNumber) for d in datasets] == [1, 2, 3, 4, 5]
