"""``telerad serve --demo`` logs requests and activity into serve.log, and no PHI or secret.

The demo's passwords and the admin's TOTP secret stay in demo-accounts.txt; the
console (often redirected into a log) only says where that file is.
"""

from __future__ import annotations

import re
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import httpx
from pynetdicom import AE
from tests.conftest import LiveServer
from tests.support import eventually

from telerad.synthetic import StudySpec, ct_series

HL7 = Path(__file__).parents[1] / "data" / "hl7"
PHI = {
    "patient name": "Logcheck",
    "patient id": "LOGPID7731",
    "birth date": "19591224",
    "HL7 patient name": "Testpatient",
    "HL7 patient id": "MRN4471923",
    "HL7 birth date": "19680412",
}


def _mllp(port: int, message: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"\x0b" + message.encode() + b"\x1c\r")
        answer = b""
        while not answer.endswith(b"\x1c\r"):
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer


def _until(path: Path, pattern: str, seconds: float = 20) -> str:
    def text() -> str:
        return path.read_text() if path.exists() else ""

    def matching() -> str:
        found = text()
        return found if re.search(pattern, found) else ""

    try:
        return eventually(matching, seconds, 0.2, f"{pattern!r} in {path.name}")
    except AssertionError:
        raise AssertionError(f"{pattern!r} not in {path.name}:\n{text()}") from None


def test_serve_log_has_requests_and_activity_without_phi_or_secrets(
    tmp_path: Path, server_factory: Callable[..., LiveServer]
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = server_factory(data_dir, args=("--demo",))
    accounts = data_dir / "demo-accounts.txt"
    assert stat.S_IMODE(accounts.stat().st_mode) == 0o600
    secrets = re.findall(r"^  \S+\s+(\S+)", accounts.read_text(), re.M)
    otpauth = re.search(r"otpauth://\S+", accounts.read_text())
    assert len(secrets) == 4 and otpauth is not None
    totp_secret = re.search(r"secret=([A-Z2-7]+)", otpauth.group(0))
    assert totp_secret is not None

    # A search with PHI in its query string, signed in as the radiologist.
    reed = next(line.split()[1] for line in accounts.read_text().splitlines() if "dr.reed" in line)
    token = httpx.post(
        server.http_url + "/api/auth/token", json={"username": "dr.reed", "password": reed}
    ).json()["access_token"]
    found = httpx.get(
        server.dicomweb + "/studies",
        params={"PatientName": "Logcheck*", "PatientBirthDate": PHI["birth date"]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert found.status_code in (200, 204)
    # Two instances over C-STORE from the demo facility's registered AE.
    ae = AE(ae_title="STORESCU")
    spec = StudySpec(
        patient_id=PHI["patient id"], patient_name="LOGCHECK^PAT", birth_date=PHI["birth date"]
    )
    datasets = list(ct_series(spec, slices=2, rows=16, cols=16))
    for ds in datasets:
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title="TELERAD")
    assert assoc.is_established
    for ds in datasets:
        assert assoc.send_c_store(ds).Status == 0
    assoc.release()
    # An order over MLLP for the demo facility.
    order = (HL7 / "orm_o01.hl7").read_text().replace("North Hospital", "Demo General Hospital")
    assert b"MSA|AA" in _mllp(int(server.env["TELERAD_MLLP_PORT"]), order)

    log_file = data_dir / "serve.log"
    text = _until(log_file, r"association from STORESCU released .*: 2 instances stored")
    text = _until(log_file, r"HL7 ORM\^O01")
    assert re.search(
        r"GET /dicom-web/studies\?PatientName=…&PatientBirthDate=… 200 [\d.]+ ms dr\.reed", text
    ), text
    assert re.search(r"POST /api/auth/token 200 [\d.]+ ms - 127\.0\.0\.1", text), text
    assert "association from STORESCU at 127.0.0.1" in text
    console = next(data_dir.parent.glob("server-*.log")).read_text()
    assert f"are in {accounts}" in console
    for where, content in (("serve.log", text), ("console", console)):
        for what, value in PHI.items():
            assert value.lower() not in content.lower(), f"{what} in the {where}"
        for secret in (*secrets, totp_secret.group(1)):
            assert secret not in content, f"a demo secret in the {where}"
        assert "otpauth" not in content, where
