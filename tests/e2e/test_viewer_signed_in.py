"""In a real browser, on a platform with accounts: sign in, find the study, read it in OHIF.

The unmodified OHIF Viewer fetches DICOMweb with the browser's session cookie
(same origin), so a signed-in radiologist reads the studies of the facilities
where they hold privileges, and a person of another facility gets nothing.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import LiveServer, require_tool
from tests.e2e.test_viewer import GREY_LEVELS_JS, browser  # noqa: F401 - the fixture
from tests.integration.test_dimse_support import storescu

from telerad.synthetic import StudySpec, ct_series, to_bytes

pytestmark = pytest.mark.browser
PASSWORD = "radiologist password"


def _ok(result: subprocess.CompletedProcess[bytes]) -> None:
    assert result.returncode == 0, result.stderr.decode()


def _sign_in(page: object, base: str, username: str) -> None:
    page.goto(base + "/")  # type: ignore[attr-defined]
    page.wait_for_url("**/login?**")  # type: ignore[attr-defined]
    page.fill("input[name=username]", username)  # type: ignore[attr-defined]
    page.fill("input[name=password]", PASSWORD)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]


def test_radiologist_signs_in_and_reads_other_facility_sees_nothing(
    server_factory: Callable[..., LiveServer],
    tmp_path: Path,
    browser: object,  # noqa: F811
) -> None:
    require_tool("storescu")
    server = server_factory(tmp_path / "data")
    _ok(server.telerad("facility", "add", "East Hospital", "--ae", "EASTCT", "--host", "127.0.0.1"))
    _ok(server.telerad("facility", "add", "West Clinic", "--ae", "WESTCT"))
    for args in (
        ("dr.east", "--role", "radiologist", "--privilege", "East Hospital"),
        ("tech.west", "--role", "facility-user", "--facility", "West Clinic"),
    ):
        _ok(server.telerad("user", "add", *args, "--password-stdin", input=PASSWORD.encode()))
    spec = StudySpec(patient_id="EAST-1", patient_name="EAST^PATIENT", description="CT EAST")
    files = []
    for ds in ct_series(spec, slices=8, rows=128, cols=128):
        path = tmp_path / f"{int(ds.InstanceNumber):03d}.dcm"
        path.write_bytes(to_bytes(ds))
        files.append(path)
    assert storescu(server.dicom_port, files, aet="EASTCT").returncode == 0

    page = browser.new_page(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    failures: list[str] = []
    page.on(
        "response",
        lambda r: (
            failures.append(f"{r.status} {r.url}")
            if "/dicom-web/" in r.url and r.status >= 400
            else None
        ),
    )
    try:
        _sign_in(page, server.http_url, "dr.east")
        row = page.locator(f'tr[data-study-uid="{spec.study_uid}"]')
        row.wait_for(timeout=30_000)
        row.locator("a.open").click()
        page.wait_for_selector(".cornerstone-canvas", timeout=90_000)
        page.wait_for_function(f"({GREY_LEVELS_JS})() > 32", timeout=90_000, polling=500)
        assert not failures, failures
    finally:
        page.close()

    other = browser.new_page()  # type: ignore[attr-defined]
    try:
        _sign_in(other, server.http_url, "tech.west")
        other.wait_for_selector("form.search")
        assert "EAST" not in other.content()
        response = other.goto(f"{server.http_url}/dicom-web/studies/{spec.study_uid}/metadata")
        assert response is not None and response.status == 404
    finally:
        other.close()
