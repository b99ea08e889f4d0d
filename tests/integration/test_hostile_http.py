"""Hostile HTTP requests on STOW-RS and FHIR: refused under a hard cap, in bounded memory.

Where the transport matters (a Content-Length of 4 GiB must be refused before
the body is read; a gzip bomb arrives as bytes on a socket) the requests go to
a live ``telerad serve`` over raw sockets or httpx, and the server process's
resident memory is sampled while it answers. The caps themselves (a decoded
body past the cap, with a ratio no bomb would have) are shown in-process, with
a cap lowered so that a few MiB pass it.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest
from fastapi.testclient import TestClient
from tests.conftest import LiveServer, free_port
from tests.integration.hostile_support import MIB, rss_peak
from tests.integration.test_fhir import service_request

from telerad import synthetic as syn
from telerad.adapters.dicomweb.multipart import encode_multipart
from telerad.bootstrap import Platform
from telerad.web.app import create_app

STOW = 'multipart/related; type="application/dicom"; boundary=hostile'
FHIR_JSON = "application/fhir+json"
GIB4 = 4 * 1024 * 1024 * 1024


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """About 1 MiB of gzip that inflates to 1 GiB of zeros."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(16 * MIB)
    body = b"".join(packer.compress(zeros) for _ in range(64)) + packer.flush()
    assert len(body) < 2 * MIB
    return body


def _raw_request(port: int, head: str, first_bytes: bytes, timeout: float = 15) -> bytes:
    """Send a request head and the first bytes of a body that never comes; return what
    the server answers before closing (a server that reads the body would time out)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1") + first_bytes)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                answer = b"".join(chunks)
                head_end = answer.find(b"\r\n\r\n")
                if head_end >= 0 and b"content-length:" in answer[:head_end].lower():
                    length = int(
                        answer[:head_end].lower().split(b"content-length:")[1].split(b"\r\n")[0]
                    )
                    if len(answer) >= head_end + 4 + length:
                        break
        except TimeoutError:
            pytest.fail("the server waited for the body instead of answering")
    return b"".join(chunks)


def _status_and_json(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/dicom-web/studies", STOW), ("/fhir/r4/ServiceRequest", FHIR_JSON)],
    ids=["stow-rs", "fhir"],
)
def test_a_4_gib_content_length_is_refused_before_the_body_is_read(
    live_server: LiveServer, path: str, content_type: str
) -> None:
    port = int(live_server.http_url.rsplit(":", 1)[1])
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {GIB4}\r\n\r\n"
    )
    with rss_peak(live_server.process.pid) as peak:
        status, body = _status_and_json(_raw_request(port, head, b"--hostile\r\n" + bytes(65536)))
    assert status == 413
    if path.startswith("/fhir"):
        assert body["resourceType"] == "OperationOutcome"
        assert body["issue"][0]["code"] == "too-long"
        reason = body["issue"][0]["diagnostics"]
    else:
        reason = body["detail"]
    assert "larger than the" in reason
    assert peak.growth < 32 * MIB, f"the server grew {peak.growth / MIB:.0f} MiB"
    assert httpx.get(live_server.http_url + "/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/dicom-web/studies", STOW), ("/fhir/r4/ServiceRequest", FHIR_JSON)],
    ids=["stow-rs", "fhir"],
)
def test_a_gzip_bomb_is_refused_after_a_few_mib_of_inflating(
    live_server: LiveServer, gzip_bomb: bytes, path: str, content_type: str
) -> None:
    """1 MiB of Content-Encoding: gzip that would be 1 GiB: 413, and the server's
    memory grows by a few MiB, not by the gigabyte."""
    headers = {"Content-Type": content_type, "Content-Encoding": "gzip"}
    with rss_peak(live_server.process.pid) as peak:
        r = httpx.post(live_server.http_url + path, content=gzip_bomb, headers=headers, timeout=60)
    assert r.status_code == 413, r.text[:300]
    text = r.text
    assert "inflates more than 200 times" in text or "larger than the" in text
    assert peak.growth < 64 * MIB, f"the server grew {peak.growth / MIB:.0f} MiB"


# -- the caps, in-process ------------------------------------------------------------
@pytest.fixture
def capped(platform: Platform) -> Iterator[TestClient]:
    """The app with STOW-RS capped at 4 MiB (the default is 2 GiB) and the rest at 1 MiB."""
    platform.settings.stow_max_body = 4 * MIB
    with TestClient(create_app(platform)) as client:
        yield client


def _instances(n: int, size: int = 64) -> list[bytes]:
    return [
        syn.to_bytes(ds) for ds in syn.ct_series(syn.StudySpec(), slices=n, rows=size, cols=size)
    ]


def test_the_decoded_body_is_held_to_the_cap(capped: TestClient) -> None:
    """Bodies that no ratio would catch (random bytes barely compress) but that pass
    the cap: refused whether gzip-encoded, sent with their length, or chunked."""
    body = encode_multipart("hostile", [("application/dicom", os.urandom(6 * MIB))])
    encoded = gzip.compress(body, 1)
    assert len(encoded) > 5 * MIB  # the ratio is about 1
    for headers, content in (
        ({"Content-Encoding": "gzip"}, encoded),
        ({}, body),
        ({}, iter([body[: 3 * MIB], body[3 * MIB :]])),  # no Content-Length
    ):
        r = capped.post(
            "/dicom-web/studies", content=content, headers={"Content-Type": STOW, **headers}
        )
        assert r.status_code == 413, (headers, r.status_code, r.text[:200])
        assert f"larger than the {4 * MIB} bytes" in r.json()["detail"]


def test_compressed_bodies_within_the_cap_are_taken(capped: TestClient, platform: Platform) -> None:
    data = _instances(3)
    body = encode_multipart("hostile", [("application/dicom", d) for d in data])
    r = capped.post(
        "/dicom-web/studies",
        content=gzip.compress(body),
        headers={"Content-Type": STOW, "Content-Encoding": "gzip"},
    )
    assert r.status_code == 200, r.text[:300]
    assert len(r.json()["00081199"]["Value"]) == 3
    facility = platform.default_facility().name
    order = service_request(meta={"tag": [{"system": "urn:telerad:facility", "code": facility}]})
    r = capped.post(
        "/fhir/r4/ServiceRequest",
        content=zlib.compress(json.dumps(order).encode()),
        headers={"Content-Type": FHIR_JSON, "Content-Encoding": "deflate"},
    )
    assert r.status_code == 201, r.text[:300]
    r = capped.post(
        "/fhir/r4/ServiceRequest",
        content=json.dumps(order).encode(),
        headers={"Content-Type": FHIR_JSON, "Content-Encoding": "br"},
    )
    assert r.status_code == 415 and r.json()["issue"][0]["code"] == "not-supported"


def test_fhir_json_past_its_cap_is_413(capped: TestClient) -> None:
    big = json.dumps({"resourceType": "ServiceRequest", "note": [{"text": "x" * (2 * MIB)}]})
    r = capped.post("/fhir/r4/ServiceRequest", content=big, headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 413
    assert r.json()["issue"][0]["code"] == "too-long"


# -- XML ----------------------------------------------------------------------------
class _Recorder(BaseHTTPRequestHandler):
    fetched: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        _Recorder.fetched.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'<!ENTITY % x "y">')

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[int]:
    _Recorder.fetched = []
    port = free_port()
    httpd = HTTPServer(("127.0.0.1", port), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield port
    httpd.shutdown()
    httpd.server_close()


def test_fhir_xml_with_a_dtd_is_refused_and_nothing_is_fetched(
    live_server: LiveServer, recorder: int
) -> None:
    """An XML ServiceRequest with an external DTD, an external entity and a billion
    laughs: refused by its media type (FHIR XML is not taken), or as not JSON when
    it pretends to be; no parser ever follows the references."""
    base = f"http://127.0.0.1:{recorder}"
    laughs = "".join(f'<!ENTITY l{i} "&l{i - 1};&l{i - 1};&l{i - 1};">' for i in range(1, 10))
    xml = (
        '<?xml version="1.0"?>\n'
        f'<!DOCTYPE ServiceRequest SYSTEM "{base}/fhir.dtd" [\n'
        f'  <!ENTITY xxe SYSTEM "{base}/secret">\n  <!ENTITY % remote SYSTEM "{base}/p.dtd">\n'
        f'  %remote;\n  <!ENTITY l0 "lol">{laughs}\n]>\n'
        '<ServiceRequest xmlns="http://hl7.org/fhir"><status value="&xxe;"/>'
        '<note><text value="&l9;"/></note></ServiceRequest>'
    )
    url = live_server.http_url + "/fhir/r4/ServiceRequest"
    for content_type, expected in (
        ("application/fhir+xml", 415),
        ("application/xml", 415),
        ("text/xml", 415),
        (FHIR_JSON, 400),
    ):
        r = httpx.post(url, content=xml, headers={"Content-Type": content_type}, timeout=30)
        assert r.status_code == expected, (content_type, r.text[:200])
        assert r.json()["resourceType"] == "OperationOutcome"
    r = httpx.post(
        url + "?_format=xml", content=xml, headers={"Content-Type": FHIR_JSON}, timeout=30
    )
    assert r.status_code == 400
    assert _Recorder.fetched == []
