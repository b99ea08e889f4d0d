"""In a real browser: a radiologist's worklist and the supervisor's board with its charts.

The platform runs in this process (uvicorn in a thread) so the test can put a study
on the reading worklist directly, as reconciliation does when a study is readable.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import uvicorn
from tests.conftest import free_port
from tests.e2e.test_viewer import browser  # noqa: F401 - the fixture
from tests.support import eventually

from telerad.bootstrap import Platform, open_platform
from telerad.config import Settings
from telerad.domain.identity import Role
from telerad.domain.readers import ReaderProfile, weekly_rule
from telerad.synthetic import StudySpec, ct_series, to_bytes
from telerad.web.app import create_app
from telerad.web.routes.worklist import vendor_dir
from telerad.workflow.model import Priority, ReadingStudy

pytestmark = pytest.mark.browser
PASSWORD = "worklist e2e password"
WAITING = "1.2.826.0.1.3680043.10.9.1"
DONE = "1.2.826.0.1.3680043.10.9.2"


def _study(p: Platform, uid: str, facility_id: int, ready: datetime) -> ReadingStudy:
    return ReadingStudy(
        uid=uid,
        facility_id=facility_id,
        jurisdiction="US-CA",
        modality="CT",
        body_part="HEAD",
        priority=Priority.STAT,
        ready_at=ready,
        deadline=p.reading.deadline(facility_id, Priority.STAT, ready),
        rvu=1.5,
    )


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Platform]]:
    if vendor_dir() is None:
        pytest.fail("vendor/web is missing: make install fetches Chart.js and htmx")
    p = open_platform(Settings(data_dir=tmp_path / "data", fsync=False))
    north = p.index.add_facility("North Hospital", country="US", state="CA")
    reader = p.auth.create_user("dr.wl", Role.RADIOLOGIST, password=PASSWORD, display_name="Dr Wl")
    p.identity.add_licences(reader.id, ["US-CA"])
    p.identity.grant_privileges(reader.id, [north.id])
    now = datetime.now(UTC)
    p.reading.store.put_profile(ReaderProfile(reader.id, modalities=frozenset({"CT"})), now)
    p.reading.store.add_shift(reader.id, weekly_rule("daily", "00:00", "24:00"))
    p.auth.create_user("boss", Role.FACILITY_ADMIN, north.id, password=PASSWORD)
    # One read done (for the charts), one waiting until the radiologist signs in.
    p.reading.seen(reader.id, token=True)
    p.reading.enqueue(_study(p, DONE, north.id, now - timedelta(minutes=40)))
    p.reading.complete(DONE, reader.id, now - timedelta(minutes=10))
    p.reading.signed_out(reader.id)
    # Its images are in the archive (the reading screen shows them beside the report).
    for ds in ct_series(StudySpec(study_uid=WAITING), slices=2, rows=8, cols=8):
        assert p.archive.store(north.id, to_bytes(ds)).ok
    p.reading.enqueue(_study(p, WAITING, north.id, now - timedelta(minutes=5)))
    assert p.reading.holder(WAITING) is None
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(p), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    eventually(lambda: server.started, 20, 0.05, "the app's server started")
    try:
        yield f"http://127.0.0.1:{port}", p
    finally:
        server.should_exit = True
        thread.join(10)
        p.close()


def _sign_in(page: object, base: str, username: str, target: str) -> None:
    page.goto(base + target)  # type: ignore[attr-defined]
    page.wait_for_url("**/login?**")  # type: ignore[attr-defined]
    page.fill("input[name=username]", username)  # type: ignore[attr-defined]
    page.fill("input[name=password]", PASSWORD)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_url(f"**{target}")  # type: ignore[attr-defined]


def test_radiologist_sees_the_assigned_study_with_its_reason_and_opens_it(
    site: tuple[str, Platform],
    browser: object,  # noqa: F811
) -> None:
    base, platform = site
    page = browser.new_page()  # type: ignore[attr-defined]
    try:
        _sign_in(page, base, "dr.wl", "/worklist")
        row = page.locator(f'tr[data-study-uid="{WAITING}"]')
        row.wait_for(timeout=15_000)
        assert "stat" in row.locator(".tier").inner_text()
        # The reason in one short line; the whole explanation one click away.
        why = row.locator(".why summary").inner_text()
        assert why.startswith("CT, licensed in US-CA, the only eligible reader; ")
        assert why.endswith(" min left")
        row.locator(".why summary").click()
        full = row.locator(".why pre").inner_text()
        assert "Why Dr Wl (reader" in full and "Why now:" in full
        # One click on the study opens the reading screen (the viewer and the report) and
        # claims it.
        row.locator("button.open").click()
        page.wait_for_url(f"**/reading/{WAITING}")
        src = page.locator("iframe#viewer").get_attribute("src") or ""
        assert parse_qs(urlparse(src).query)["StudyInstanceUIDs"] == [WAITING]
        assert platform.reading.worklist.holds[WAITING].claimed_at is not None
    finally:
        page.close()


def test_supervisor_board_shows_the_queue_and_draws_the_charts(
    site: tuple[str, Platform],
    browser: object,  # noqa: F811
) -> None:
    base, _platform = site
    page = browser.new_page()  # type: ignore[attr-defined]
    try:
        _sign_in(page, base, "boss", "/board")
        page.locator(f'tr[data-study-uid="{WAITING}"]').wait_for(timeout=15_000)
        assert page.locator("tr[data-reader-id] .bar").count() == 1
        page.wait_for_function("document.body.dataset.chartsReady === 'true'", timeout=15_000)
        bars = page.evaluate(
            "() => Chart.getChart('tat-chart').data.datasets.map(d => d.data.length)"
        )
        assert bars == [1, 1, 1]  # one tier (stat) with p50, p90, p95
        sla = page.evaluate("() => Chart.getChart('sla-chart').data")
        assert sla["labels"] == ["North Hospital"] and sla["datasets"][0]["data"] == [100]
        # The canvas has been painted (not blank).
        painted = page.evaluate(
            """() => { const c = document.getElementById('tat-chart');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"""
        )
        assert painted > 500
    finally:
        page.close()
