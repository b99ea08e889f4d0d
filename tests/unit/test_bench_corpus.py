"""The benchmark's response parsing and verdicts (bench/); its corpus writer:
tests/integration/test_bench_corpus_writer.py."""

from __future__ import annotations

import httpx
import pytest
from bench import clients


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
