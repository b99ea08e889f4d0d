"""The benchmark's fast corpus writer and its response parsing (bench/)."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import httpx
import pydicom
import pytest
from bench import clients, corpus

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


def _response(body: bytes, ctype: str) -> httpx.Response:
    return httpx.Response(200, content=body, headers={"content-type": ctype})


def test_multipart_parts_splits_on_the_boundary() -> None:
    body = b"--b1\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01--b\r\n--b1--\r\n"
    parts = clients.multipart_parts(_response(body, 'multipart/related; boundary="b1"'))
    assert parts == [b"\x00\x01--b"]
    with pytest.raises(clients.MeasureError):
        clients.multipart_parts(_response(body, "application/octet-stream"))


def test_query_string_keeps_wildcards() -> None:
    url = clients.with_query("http://h/studies", {"PatientName": "SMI*", "limit": "100"})
    assert url == "http://h/studies?PatientName=SMI*&limit=100"
    assert clients.with_query("http://h/x", {"PatientID": "A B"}) == "http://h/x?PatientID=A%20B"


def test_verdicts_compare_telerad_with_orthanc_in_the_right_direction() -> None:
    from bench.report import BY_KEY, Results, markdown

    r = Results()
    r.set("cstore_ct", "Orthanc", 100.0)
    r.set("cstore_ct", "telerad", 149.0)  # rate: higher is better, needs 1.5×
    r.set("qido_pid", "Orthanc", 100.0)
    r.set("qido_pid", "telerad", 25.0)  # latency: lower is better, needs ≤ 0.25×
    r.set("rss_ct_ingest", "telerad", 501.0)
    r.set("stow_ct", "Orthanc", 100.0)
    r.set("stow_ct", "telerad", "unavailable")
    assert r.verdict(BY_KEY["cstore_ct"]) == "fail"
    assert r.verdict(BY_KEY["qido_pid"]) == "pass"
    assert r.verdict(BY_KEY["rss_ct_ingest"]) == "fail"
    assert r.verdict(BY_KEY["stow_ct"]) is None
    table = markdown(r.as_json({}))
    assert "| 1.49× | ≥ 1.5× Orthanc | **FAIL** |" in table
    assert "| 0.25× | ≤ 0.25× Orthanc | PASS |" in table
