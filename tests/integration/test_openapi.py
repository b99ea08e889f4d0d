"""The REST API describes itself: paths, and how requests authenticate."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from tests.conftest import ROOT

from telerad.bootstrap import Platform
from telerad.web.app import create_app


def test_openapi_describes_the_api_and_its_security(platform: Platform) -> None:
    with TestClient(create_app(platform)) as client:
        schema = client.get("/openapi.json").json()
        assert client.get("/docs").status_code == 200
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    for path in (
        "/dicom-web/studies",
        "/dicom-web/studies/{study}/series/{series}/instances/{sop}/frames/{frames}",
        "/api/auth/token",
        "/api/me",
        "/api/break-glass",
        "/api/studies/{study}/deidentified",
    ):
        assert path in paths, path
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer"
    assert schemes["session"] == {"type": "apiKey", "in": "cookie", "name": "telerad_session"}
    assert {"bearer": []} in schema["security"]


def test_docs_load_swagger_ui_from_this_server_only(platform: Platform) -> None:
    """/docs works without internet: every script, style sheet and icon is served here."""
    with TestClient(create_app(platform)) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        html = page.text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets, html
        assert not re.search(r"https?://", html), "the page names another host"
        assert {
            "/static/swagger-ui/swagger-ui-bundle.js",
            "/static/swagger-ui/swagger-ui.css",
        } <= set(assets)
        types = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
        for url in assets:
            served = client.get(url)
            assert served.status_code == 200, f"{url}: run make install"
            suffix = url[url.rindex(".") :]
            assert served.headers["content-type"].startswith(types[suffix]), url
            assert (
                served.content == (ROOT / "vendor/swagger-ui" / url.rsplit("/", 1)[1]).read_bytes()
            )
        assert "'/openapi.json'" in html or '"/openapi.json"' in html
        assert client.get("/static/swagger-ui/package.json").status_code == 404
        assert client.get("/redoc").status_code == 404  # it would load its script from a CDN
