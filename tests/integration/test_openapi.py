"""The REST API describes itself: paths, and how requests authenticate."""

from __future__ import annotations

from fastapi.testclient import TestClient

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
