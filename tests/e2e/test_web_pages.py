"""The study list and the viewer's routing over HTTP (FastAPI's TestClient, no browser)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from fastapi.testclient import TestClient

from telerad.bootstrap import Platform, open_platform
from telerad.config import Settings
from telerad.synthetic import StudySpec, ct_series, mr_series, to_bytes
from telerad.web.app import create_app
from telerad.web.routes.viewer import STUDY_CONTEXT


def _store(p: Platform, facility: str, datasets: Iterator[object]) -> None:
    fac = p.index.facility_by_name(facility) or p.index.add_facility(facility)
    for ds in datasets:
        assert p.archive.store(fac.id, to_bytes(ds)).ok  # type: ignore[arg-type]


@pytest.fixture
def studies(platform: Platform) -> dict[str, StudySpec]:
    specs = {
        "ct": StudySpec(
            patient_id="P100",
            patient_name="DOE^JANE",
            accession="ACC100",
            study_date="20250110",
            description="CT CHEST",
        ),
        "mr": StudySpec(
            patient_id="P200",
            patient_name="SMITH^JOHN",
            accession="ACC200",
            study_date="20250320",
            description="MR BRAIN",
        ),
    }
    _store(platform, "North Clinic", ct_series(specs["ct"], slices=3, rows=16, cols=16))
    _store(platform, "South Hospital", mr_series(specs["mr"], slices=2, rows=16, cols=16))
    return specs


@pytest.fixture
def client(platform: Platform) -> TestClient:
    return TestClient(create_app(platform))


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr data-study-uid="([^"]+)"', html)


def test_study_list_shows_studies_with_links_to_the_viewer(
    client: TestClient, studies: dict[str, StudySpec]
) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert set(_rows(html)) == {s.study_uid for s in studies.values()}
    assert "DOE, JANE" in html and "SMITH, JOHN" in html
    assert "2025-01-10" in html and "ACC200" in html
    assert "North Clinic" in html and "South Hospital" in html
    links = re.findall(r'href="(/viewer\?[^"]+)"', html)
    uids = {
        parse_qs(urlparse(link.replace("&amp;", "&")).query)["StudyInstanceUIDs"][0]
        for link in links
    }
    assert uids == {s.study_uid for s in studies.values()}
    css = client.get("/static/telerad.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"patient_name": "doe"}, {"ct"}),
        ({"patient_name": "john"}, {"mr"}),  # given name matches too
        ({"patient_id": "P2"}, {"mr"}),
        ({"accession": "ACC100"}, {"ct"}),
        ({"date_from": "2025-03-01"}, {"mr"}),
        ({"date_to": "2025-02-01"}, {"ct"}),
        ({"date_from": "2025-01-01", "date_to": "2025-12-31"}, {"ct", "mr"}),
        ({"modality": "MR"}, {"mr"}),
        ({"modality": "US"}, set()),
        ({"patient_name": "doe", "modality": "MR"}, set()),
    ],
)
def test_study_list_search(
    client: TestClient, studies: dict[str, StudySpec], params: dict[str, str], expected: set[str]
) -> None:
    page = client.get("/", params=params)
    assert page.status_code == 200
    assert set(_rows(page.text)) == {studies[k].study_uid for k in expected}


def test_study_list_refuses_a_bad_date_with_a_reason(
    client: TestClient, studies: dict[str, StudySpec]
) -> None:
    page = client.get("/", params={"date_from": "31/01/2025"})
    assert page.status_code == 400
    assert "is not a date" in page.text
    reversed_range = client.get("/", params={"date_from": "2025-12-01", "date_to": "2025-01-01"})
    assert reversed_range.status_code == 400
    assert "after" in reversed_range.text


def test_study_list_pages(platform: Platform, client: TestClient) -> None:
    specs = [StudySpec(patient_id=f"PG{i:02d}", accession=f"PG{i:02d}") for i in range(5)]
    for spec in specs:
        _store(platform, "North Clinic", ct_series(spec, slices=1, rows=8, cols=8))
    seen: list[str] = []
    url: str | None = "/?size=2"
    pages = 0
    while url:
        html = client.get(url).text
        seen += _rows(html)
        found = re.search(r'<a rel="next" href="([^"]+)"', html)
        url = found.group(1).replace("&amp;", "&") if found else None
        pages += 1
    assert pages == 3
    assert sorted(seen) == sorted(s.study_uid for s in specs)


def test_viewer_serves_ohif_and_generates_its_configuration(
    platform: Platform, client: TestClient
) -> None:
    viewer_dir = platform.settings.viewer_dir
    if viewer_dir is None:
        pytest.fail("the OHIF build is missing: run `make install`")
    page = client.get("/viewer", params={"StudyInstanceUIDs": "1.2.3"})
    assert page.status_code == 200
    # OHIF's page as built, with only the study-context line and session warning added.
    original = (viewer_dir / "index.html").read_text()
    assert page.text.replace(STUDY_CONTEXT, "", 1) == original
    assert STUDY_CONTEXT + "</head>" in page.text
    for name in ("viewer-banner.css", "session.js", "viewer-banner.js"):
        assert client.get(f"/static/{name}").status_code == 200
    assert client.get("/viewer/dicomweb").text == page.text
    bundle = re.search(r'src="/(app\.bundle\.[0-9a-f]+\.js)"', page.text)
    assert bundle
    js = client.get("/" + bundle.group(1))
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert js.content == (viewer_dir / bundle.group(1)).read_bytes()
    wasm = next(viewer_dir.glob("*.wasm"))
    assert client.get("/" + wasm.name).headers["content-type"] == "application/wasm"
    assert client.get("/app.bundle.css").headers["content-type"].startswith("text/css")
    assert client.get("/assets/favicon.ico").status_code == 200
    # Cross-origin isolated, or chromium refuses the decoders' worker scripts.
    worker = next(viewer_dir.glob("histogram-worker.bundle.*.js"))
    for response in (page, js, client.get("/" + worker.name), client.get("/assets/favicon.ico")):
        assert response.headers["cross-origin-embedder-policy"] == "require-corp"
        assert response.headers["cross-origin-opener-policy"] == "same-origin"

    config = client.get("/app-config.js", headers={"host": "pacs.example:9000"})
    assert config.status_code == 200
    text = config.text
    assert '"qidoRoot": "http://pacs.example:9000/dicom-web"' in text
    assert '"wadoRoot": "http://pacs.example:9000/dicom-web"' in text
    wado_uri = re.search(r'"wadoUriRoot": "http://pacs.example:9000(/[^"]*)"', text)
    assert wado_uri, text
    assert '"showStudyList": false' in text and '"routerBasename": "/"' in text
    assert '"dicomUploadEnabled": false' in text
    assert "@ohif/extension-default.dataSourcesModule.dicomweb" in text
    # WADO-URI answers where the configuration says it is.
    spec = StudySpec()
    ds = next(ct_series(spec, slices=1, rows=16, cols=16))
    assert platform.archive.store(platform.default_facility().id, to_bytes(ds)).ok
    params = {
        "requestType": "WADO",
        "studyUID": spec.study_uid,
        "seriesUID": ds.SeriesInstanceUID,
        "objectUID": ds.SOPInstanceUID,
    }
    image = client.get(wado_uri.group(1), params=params)
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    # The platform's own paths stay its own.
    assert "<title>Studies" in client.get("/").text
    assert client.get("/healthz").headers["content-type"] == "application/json"


def test_viewer_without_the_build_answers_503(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", fsync=False, viewer_dir=tmp_path / "none")
    p = open_platform(settings)
    try:
        response = TestClient(create_app(p)).get("/viewer")
        assert response.status_code == 503
        assert "make install" in response.text
    finally:
        p.close()
