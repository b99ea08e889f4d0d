"""In a real browser: a CT series sent by C-STORE (dcmtk storescu) is listed and rendered by OHIF.

Debian's chromium, driven by Playwright for Python, renders with its software
WebGL. The test proves the pixels arrived: a screenshot of the viewport canvas
must show the CT phantom (body, lungs, spine), not a blank or black canvas, and
no request to /dicom-web may fail on the way.
"""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from PIL import Image
from tests.conftest import LiveServer, require_tool

from telerad.synthetic import StudySpec, ct_series, to_bytes

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SLICES, ROWS, COLS = 20, 256, 256

# Counts the distinct grey levels of the viewport canvas (cornerstone draws into a 2D canvas).
GREY_LEVELS_JS = """() => {
  const c = document.querySelector('.cornerstone-canvas');
  if (!c || !c.width || !c.height) return 0;
  const ctx = c.getContext('2d');
  if (!ctx) return 0;
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  const seen = new Set();
  for (let i = 0; i < d.length; i += 4 * 5) seen.add(d[i]);
  return seen.size;
}"""


@pytest.fixture(scope="module")
def ct_study(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> StudySpec:
    """A 20-slice 256×256 CT series sent to the live server with dcmtk's storescu."""
    storescu = require_tool("storescu")
    folder = tmp_path_factory.mktemp("e2e-ct")
    spec = StudySpec(
        patient_id="E2E0001",
        patient_name="BROWSER^TEST",
        accession="E2E0001",
        description="CT CHEST E2E",
    )
    files = []
    for ds in ct_series(spec, slices=SLICES, rows=ROWS, cols=COLS):
        path = folder / f"{int(ds.InstanceNumber):03d}.dcm"
        path.write_bytes(to_bytes(ds))
        files.append(str(path))
    sent = subprocess.run(
        [storescu, "-aet", "E2ESCU", "-aec", live_server.aet, "127.0.0.1",
         str(live_server.dicom_port), *files],
        env=dict(os.environ, TCP_NODELAY="1"),
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stdout + sent.stderr
    return spec


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is not installed (make install installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_study_list_lists_the_study_and_links_to_the_viewer(
    live_server: LiveServer, ct_study: StudySpec, browser: object
) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    try:
        page.goto(live_server.http_url + "/?patient_id=E2E0001")
        row = page.locator(f'tr[data-study-uid="{ct_study.study_uid}"]')
        assert row.count() == 1
        cells = [c.strip() for c in row.locator("td").all_inner_texts()]
        name, _age, sex, patient_id, _date, modalities, description, accession = cells[:8]
        # Then the facility (where the caller sees several) and the read status.
        series, instances, read_status = cells[8], cells[9], cells[-1]
        assert (name, patient_id, modalities) == ("BROWSER, TEST", "E2E0001", "CT")
        assert (sex, read_status) == ("F", "not on worklist")
        assert (description, accession) == ("CT CHEST E2E", "E2E0001")
        assert (series, instances) == ("1", str(SLICES))
        row.locator("a.open").click()
        page.wait_for_url("**/viewer?**")
        query = parse_qs(urlparse(page.url).query)
        assert query["StudyInstanceUIDs"] == [ct_study.study_uid]
    finally:
        page.close()


def test_viewer_renders_the_ct_series(
    live_server: LiveServer, ct_study: StudySpec, browser: object, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
    failures: list[str] = []
    served: list[str] = []

    def on_response(response: object) -> None:
        url, status = response.url, response.status  # type: ignore[attr-defined]
        if "/dicom-web/" in url:
            (failures if status >= 400 else served).append(f"{status} {url}")

    page.on("response", on_response)
    page.on(
        "requestfailed",
        lambda r: failures.append(f"{r.failure} {r.url}") if "/dicom-web/" in r.url else None,
    )
    try:
        page.goto(f"{live_server.http_url}/viewer?StudyInstanceUIDs={ct_study.study_uid}")
        page.wait_for_selector(".cornerstone-canvas", timeout=90_000)
        # Rendered: the canvas holds many grey levels, not a blank or single-colour fill.
        page.wait_for_function(f"({GREY_LEVELS_JS})() > 32", timeout=90_000, polling=500)
        for name in ("Skip all", "Confirm and hide"):  # OHIF's tour and notice cover the canvas
            button = page.get_by_text(name, exact=True)
            if button.count():
                button.first.click()
        page.wait_for_timeout(500)
        shot = page.locator(".cornerstone-canvas").screenshot(path=str(tmp_path / "viewport.png"))
        assert not failures, failures
    finally:
        page.close()

    grey = np.asarray(Image.open(io.BytesIO(shot)).convert("L"), dtype=np.float64)
    assert grey.shape[0] > 200 and grey.shape[1] > 200
    assert grey.std() > 30, f"flat viewport (std {grey.std():.1f}), see {tmp_path / 'viewport.png'}"
    assert len(np.unique(grey)) > 32
    # The phantom at the series' W400/L40: soft tissue mid-grey, lungs and air black, spine white.
    total = grey.size
    mid = np.count_nonzero((grey > 80) & (grey < 180)) / total
    dark = np.count_nonzero(grey < 30) / total
    bright = np.count_nonzero(grey > 230) / total
    assert mid > 0.15 and dark > 0.15 and bright > 0.002, (mid, dark, bright)
    # And it came from this server's DICOMweb service: metadata and pixel data.
    assert any("/metadata" in s for s in served), served
    assert any("/frames/" in s or "/rendered" in s for s in served), served
