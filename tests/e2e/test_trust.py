"""The trust CLI contract end to end, against a real server process and real peers.

``telerad facility add``, ``telerad user add --password-stdin``, ``telerad token
create`` (its token accepted by dicomweb-client), dcmtk's storescu admitted for
its registered AE and refused when unknown, brute-force sign-in locked out, the
audit chain verified, and the refusal to listen beyond loopback without users.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from dicomweb_client.api import DICOMwebClient
from requests.exceptions import HTTPError
from tests.conftest import LiveServer, free_port, require_tool
from tests.integration.test_dimse_support import storescu
from tests.support import eventually

from telerad.synthetic import StudySpec, ct_series, to_bytes

PASSWORD = "north hospital password"


def _ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def _wait_secured(server: LiveServer) -> None:
    """The server re-checks whether accounts exist every 2 s."""
    eventually(
        lambda: httpx.get(server.dicomweb + "/studies").status_code == 401,
        10,
        0.3,
        "the server requiring sign-in",
    )


def test_cli_contract_with_real_peers(
    server_factory: Callable[..., LiveServer], tmp_path: Path
) -> None:
    require_tool("storescu")
    server = server_factory(tmp_path / "data")
    _ok(
        server.telerad(
            "facility",
            "add",
            "North Hospital",
            "--ae",
            "NORTH",
            "--host",
            "127.0.0.1",
            "--country",
            "US",
            "--state",
            "CA",
            "--region",
            "us",
        )
    )
    _ok(
        server.telerad(
            "user",
            "add",
            "tech1",
            "--role",
            "facility-user",
            "--facility",
            "North Hospital",
            "--password-stdin",
            input=(PASSWORD + "\n").encode(),
        )
    )
    bad = server.telerad(
        "user", "add", "rad9", "--role", "radiologist", "--facility", "North Hospital"
    )
    assert bad.returncode == 2 and b"privileges" in bad.stderr
    token = _ok(server.telerad("token", "create", "tech1")).strip()
    assert token.count(".") == 2 and "\n" not in token
    _wait_secured(server)

    spec = StudySpec(patient_id="NORTH-1")
    path = tmp_path / "ct.dcm"
    path.write_bytes(to_bytes(next(ct_series(spec, slices=1, rows=16, cols=16))))
    assert storescu(server.dicom_port, [path], aet="NORTH").returncode == 0
    refused = storescu(server.dicom_port, [path], aet="STRANGER")
    assert refused.returncode != 0

    client = DICOMwebClient(url=server.dicomweb, headers={"Authorization": f"Bearer {token}"})
    found = client.search_for_studies(search_filters={"PatientID": "NORTH-1"})
    assert [s["0020000D"]["Value"][0] for s in found] == [spec.study_uid]
    assert client.retrieve_study(spec.study_uid)[0].PatientID == "NORTH-1"
    anonymous = DICOMwebClient(url=server.dicomweb)
    with pytest.raises(HTTPError) as denied:
        anonymous.search_for_studies()
    assert denied.value.response.status_code == 401

    # Brute force: the account locks, and then even the right password fails.
    login = server.http_url + "/login"
    for _ in range(5):
        wrong = httpx.post(login, data={"username": "tech1", "password": "guess " * 3})
        assert wrong.status_code == 401
    locked = httpx.post(login, data={"username": "tech1", "password": PASSWORD})
    assert locked.status_code == 401 and "telerad_session" not in locked.cookies

    trail = _ok(server.telerad("audit", "verify"))
    assert "intact" in trail.lower() or "ok" in trail.lower()
    exported = _ok(server.telerad("audit", "export", "--format", "fhir"))
    assert "tech1" in exported and "NORTH" in exported


def test_sign_in_page_then_the_study_list(
    server_factory: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = server_factory(tmp_path / "data")
    _ok(server.telerad("facility", "add", "South Clinic", "--ae", "SOUTH"))
    _ok(
        server.telerad(
            "user",
            "add",
            "rad1",
            "--role",
            "radiologist",
            "--privilege",
            "South Clinic",
            "--licence",
            "US-NY",
            "--password-stdin",
            input=(PASSWORD + "\n").encode(),
        )
    )
    _wait_secured(server)
    with httpx.Client(base_url=server.http_url, follow_redirects=True) as browser:
        first = browser.get("/", headers={"Accept": "text/html"})
        assert first.status_code == 200 and 'action="/login"' in first.text  # redirected
        signed = browser.post(
            "/login", data={"username": "rad1", "password": PASSWORD, "next": "/"}
        )
        assert signed.status_code == 200 and "rad1" in signed.text
        assert browser.get("/api/me").json()["facilities"] == ["South Clinic"]
        # A state-changing request with the cookie but from another site is refused.
        forged = browser.post(
            "/dicom-web/studies",
            headers={"Origin": "https://evil.example", "Content-Type": "multipart/related"},
        )
        assert forged.status_code == 403
        browser.post("/logout", headers={"Origin": server.http_url})
        assert browser.get("/api/me").status_code == 401


def test_refuses_to_listen_beyond_loopback_without_users(tmp_path: Path) -> None:
    env = dict(os.environ)
    env.update(
        TELERAD_DATA_DIR=str(tmp_path / "data"),
        TELERAD_HTTP_HOST="0.0.0.0",
        TELERAD_HTTP_PORT=str(free_port()),
        TELERAD_DICOM_PORT=str(free_port()),
    )
    result = subprocess.run(
        [sys.executable, "-m", "telerad.cli.main", "serve"],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert b"refusing to listen on TELERAD_HTTP_HOST 0.0.0.0" in result.stderr
