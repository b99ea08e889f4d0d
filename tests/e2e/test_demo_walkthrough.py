"""The demo walked as its users do, in a real browser against `telerad serve --demo`
(issue 9, "How we will know").

The radiologist signs in and sees the stroke MR first with its reason for exam;
one click opens it in the viewer and claims it; a measurement report saved into
the study from the viewer (the STOW-RS request OHIF's "Create Report" sends, made
from the viewer page with the radiologist's session) leaves it on the worklist
with its deadline. The supervisor sees a study that nobody on the roster may read
as an alert, acknowledges it, assigns it by hand once a reader is credentialed,
and the SLA chart counts the studies that are open past their deadline.
"""

from __future__ import annotations

import base64
import re
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from tests.conftest import LiveServer
from tests.e2e.test_viewer import browser  # noqa: F401 - the fixture
from tests.support import eventually

from telerad.adapters.dicomweb.multipart import encode_multipart
from telerad.synthetic import COMPREHENSIVE_3D_SR, StudySpec, measurement_report, to_bytes

pytestmark = pytest.mark.browser

#: Routine reads are due one minute after they are ready here, so that some studies
#: are already past their deadline when the supervisor looks.
RULES = "[targets]\nroutine = 1\n"
#: The server's stable time (TELERAD_STABLE_SECONDS) and two reconciliation passes after it.
STABLE_AND_TWO = timedelta(seconds=3 + 2 * 1)
DEMO_MODALITIES = ("CT", "MR", "CR", "DX", "US", "MG", "PT", "XA", "RF", "OT")


def _ok(result: subprocess.CompletedProcess[bytes]) -> None:
    assert result.returncode == 0, result.stderr.decode()


def _account(data_dir: Path, who: str) -> str:
    text = (data_dir / "demo-accounts.txt").read_text()
    found = re.search(rf"^\s*{re.escape(who)}\s+(\S+)", text, re.M)
    assert found, text
    return found.group(1)


def _totp(data_dir: Path) -> str:
    found = re.search(r"secret=([A-Z2-7]+)", (data_dir / "demo-accounts.txt").read_text())
    assert found
    return pyotp.TOTP(found.group(1)).now()


def _sign_in(page: Any, base: str, data_dir: Path, who: str, target: str) -> None:
    page.goto(base + "/login?next=" + target)
    page.fill("input[name=username]", who)
    page.fill("input[name=password]", _account(data_dir, who))
    if who == "admin":
        page.fill("input[name=code]", _totp(data_dir))
    page.click("button[type=submit]")
    page.wait_for_url("**" + target)


def _until(what: str, check: Callable[[], Any], timeout: float = 120.0) -> Any:
    return eventually(check, timeout, 1, what)


def _report_for(metadata: list[dict[str, Any]]) -> bytes:
    """A measurement report for the study the viewer shows, as OHIF would make it."""
    first = metadata[0]

    def value(tag: str) -> Any:
        return (first.get(tag, {}).get("Value") or [""])[0]

    spec = StudySpec(
        patient_id=value("00100020"),
        patient_name=value("00100010").get("Alphabetic", "") if value("00100010") else "",
        birth_date=value("00100030"),
        sex=value("00100040"),
        study_date=value("00080020"),
        accession=value("00080050"),
        study_uid=value("0020000D"),
    )
    report: Dataset = measurement_report(spec, "Length 12.4 mm")
    assert report.SOPClassUID == COMPREHENSIVE_3D_SR
    report.SeriesInstanceUID = generate_uid("2.25.")
    return to_bytes(report)


def test_the_demo_as_a_radiologist_and_a_supervisor_walk_it(
    server_factory: Callable[..., LiveServer],
    tmp_path: Path,
    browser: object,  # noqa: F811
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = server_factory(
        data_dir,
        {
            "TELERAD_STABLE_SECONDS": "3",
            "TELERAD_RECONCILE_SECONDS": "1",
            "TELERAD_RULES_FILE": str(rules),
            # The supervisor's assignment, not the worklist's clock, must route the
            # study below: the clock ticks rarely here.
            "TELERAD_WORKLIST_TICK_SECONDS": "3600",
        },
        args=("--demo",),
    )
    base = server.http_url
    _until("the demo accounts", lambda: (data_dir / "demo-accounts.txt").exists())
    b: Any = browser

    # -- the radiologist ------------------------------------------------------------
    reader = b.new_context(viewport={"width": 1400, "height": 900}).new_page()
    _sign_in(reader, base, data_dir, "dr.reed", "/worklist")

    def stroke_first() -> dict[str, Any] | None:
        items = reader.request.get(base + "/api/worklist").json()["items"]
        return items[0] if items and items[0]["priority"] == "stroke" else None

    stroke = _until("the stroke MR on dr.reed's worklist", stroke_first)
    assert stroke["reason_for_exam"] == "acute aphasia since this morning"
    uid, deadline = stroke["study_uid"], stroke["deadline"]
    reader.reload()
    first = reader.locator("table.worklist tbody tr").first
    assert first.get_attribute("data-study-uid") == uid
    assert "stroke" in first.locator(".tier").inner_text()
    assert "acute aphasia since this morning" in first.locator(".reason").inner_text()
    # One click opens it on the reading screen (the viewer beside the report) and claims it.
    first.locator("button.open").click()
    reader.wait_for_url(f"**/reading/{uid}")
    head = reader.locator("header.reading-head")
    assert "STROKE" in head.inner_text() and "acute aphasia" in head.inner_text()
    assert (
        reader.locator("iframe#viewer").get_attribute("src") == f"/viewer?StudyInstanceUIDs={uid}"
    )
    reader.frame_locator("iframe#viewer").locator(".cornerstone-canvas, canvas").first.wait_for(
        timeout=60_000
    )  # the images are up in the frame
    assert "MR brain" in reader.locator(".report-head h2").inner_text()
    history = reader.locator("textarea[name='s.history']")
    assert history.input_value() == "acute aphasia since this morning"  # from the order
    assert stroke_first()["state"] == "opened"  # type: ignore[index]

    # A measurement report saved into the study from the viewer.
    def reconciled() -> dict[str, Any]:
        return reader.request.get(f"{base}/api/reconciliation/{uid}").json()  # type: ignore[no-any-return]

    instances = reconciled()["instances"]
    metadata = reader.request.get(f"{base}/dicom-web/studies/{uid}/metadata").json()
    body = encode_multipart("telerad-sr", [("application/dicom", _report_for(metadata))])
    status = reader.evaluate(
        """async ([b64, boundary]) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const r = await fetch('/dicom-web/studies', {
                method: 'POST', credentials: 'same-origin', body: bytes,
                headers: {'Accept': 'application/dicom+json', 'Content-Type':
                    'multipart/related; type="application/dicom"; boundary=' + boundary}});
            return r.status; }""",
        [base64.b64encode(body).decode(), "telerad-sr"],
    )
    assert status == 200

    def counted_and_past_stable() -> bool:
        """The SR counted by reconciliation, and two passes (1 s) past its stable time (3 s)."""
        state = reconciled()
        changed = datetime.fromisoformat(state["last_change"])
        changed = changed if changed.tzinfo else changed.replace(tzinfo=UTC)
        return state["instances"] == instances + 1 and datetime.now(UTC) > changed + STABLE_AND_TWO

    _until("reconciliation passes over the SR", counted_and_past_stable, timeout=60)
    after = stroke_first()
    assert after is not None and after["study_uid"] == uid, "the SR withdrew the study"
    assert (after["deadline"], after["state"]) == (deadline, "opened")
    history = reader.request.get(f"{base}/api/worklist/{uid}/explain").json()["history"]
    assert "withdrawn" not in [h["kind"] for h in history]

    # -- the supervisor -----------------------------------------------------------------
    # Nobody on the roster reads nuclear medicine any more; a technologist's sample NM
    # study is sent to reading as it is.
    _ok(server.telerad("reader", "set", "dr.reed", *[f"--modality={m}" for m in DEMO_MODALITIES]))
    boss = b.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    _sign_in(boss, base, data_dir, "admin", "/reconciliation")
    nm = boss.locator("tr", has_text="CompressedSamples, NM1").first
    nm.wait_for(timeout=60_000)
    nm.locator("button", has_text="Read as is").click()
    boss.goto(base + "/board")
    alert = boss.locator("li.alert-no-reader", has_text="NM1")
    _until("the no-reader alert", lambda: (boss.reload(), alert.count())[1], timeout=60)
    assert "No reader: nobody on the roster is" in alert.inner_text()
    assert "reading NM" in alert.inner_text()
    alert.locator("button.ack").click()
    boss.locator("li.alert-no-reader.acknowledged", has_text="NM1").wait_for(timeout=15_000)
    # The supervisor credentials dr.reed for NM again and gives him the study by hand.
    _ok(
        server.telerad(
            "reader",
            "set",
            "dr.reed",
            *[f"--modality={m}" for m in DEMO_MODALITIES],
            "--modality=NM",
        )
    )
    alert = boss.locator("li.alert-no-reader", has_text="NM1")
    alert.locator("button.assign-open").click()
    form = boss.locator("form.assign")
    form.wait_for(timeout=15_000)
    assert "Dr. Alex Reed" in form.locator("select").inner_text()
    form.locator("button[type=submit]").click()
    boss.locator(".notice", has_text="Assigned to Dr. Alex Reed").wait_for(timeout=15_000)
    assert boss.locator("li.alert-no-reader").count() == 0  # its cause went
    items = reader.request.get(base + "/api/worklist").json()["items"]
    nm_item = next(i for i in items if i["modality"] == "NM")
    assert "assigned by supervisor admin" in nm_item["summary"]

    # The SLA chart counts what is open past its deadline (routine: one minute here).
    def charted_late() -> bool:
        boss.reload()
        boss.wait_for_function("document.body.dataset.chartsReady === 'true'", timeout=30_000)
        return "open past their deadline" in boss.locator("#stats-summary").inner_text()

    _until("routine studies past their one-minute deadline", charted_late, timeout=120)
    sla = boss.evaluate("() => Chart.getChart('sla-chart').data.datasets[0].data")
    assert sla == [0]  # nothing read yet, and some are late: not 100 %

    # -- the radiologist reports the stroke MR and signs it -----------------------------
    reader.keyboard.press("Alt+r")  # to the report, wherever the focus was
    reader.keyboard.press("Alt+n")  # a normal study: every empty part its normal text
    impression = reader.locator("textarea[name='s.impression']")
    impression.fill("No acute infarct. No haemorrhage.")
    reader.locator("#save-status .saved").wait_for(timeout=15_000)
    reader.keyboard.press("Control+Enter")
    dialog = reader.locator("dialog#sign-dialog")
    dialog.wait_for(state="visible", timeout=10_000)
    dialog.locator("input[name=password]").fill(_account(data_dir, "dr.reed"))
    dialog.locator("button[name=next][value='0']").click()
    reader.locator(".report-head .status-final").wait_for(timeout=30_000)
    assert "FINAL" in reader.locator(".report-head").inner_text().upper()
    assert all(
        i["study_uid"] != uid for i in reader.request.get(base + "/api/worklist").json()["items"]
    )
    explained = reader.request.get(f"{base}/api/worklist/{uid}/explain").json()
    assert explained["state"] == "completed"
    # The technologist reads the signed report from the study list.
    tech = b.new_context(viewport={"width": 1400, "height": 900}).new_page()
    _sign_in(tech, base, data_dir, "tech.demo", "/")
    tech.goto(f"{base}/reading/{uid}")
    assert (
        "No acute infarct. No haemorrhage."
        in tech.locator("textarea[name='s.impression']").input_value()
    )
    assert tech.locator("#open-sign").count() == 0  # only the holder writes
