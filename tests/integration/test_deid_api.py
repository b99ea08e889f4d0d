"""De-identified export over HTTP: scoped, audited, burned-in risks held back."""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO

import pytest
from bench.clients import multipart_parts
from fastapi.testclient import TestClient
from pydicom import dcmread

from telerad.bootstrap import Platform
from telerad.domain.identity import Role
from telerad.synthetic import StudySpec, ct_series, to_bytes
from telerad.web.app import create_app


@pytest.fixture
def setup(platform: Platform) -> Iterator[tuple[TestClient, dict[str, str], StudySpec, StudySpec]]:
    here = platform.index.add_facility("Research Hospital")
    there = platform.index.add_facility("Other Hospital")
    mine = StudySpec(patient_id="RES-1", patient_name="PRIVATE^PERSON", birth_date="19610203")
    other = StudySpec(patient_id="OTH-1")
    datasets = list(ct_series(mine, slices=3, rows=16, cols=16))
    datasets[2].BurnedInAnnotation = "YES"
    for ds in datasets:
        assert platform.archive.store(here.id, to_bytes(ds)).ok
    assert platform.archive.store(there.id, to_bytes(next(ct_series(other, 1, 8, 8)))).ok
    auth = platform.auth
    user = auth.create_user("researcher", Role.FACILITY_USER, here.id)
    auditor = auth.create_user("aud", Role.AUDITOR)
    tokens = {"user": auth.issue_token(user), "auditor": auth.issue_token(auditor)}
    with TestClient(create_app(platform)) as client:
        yield client, tokens, mine, other


def _get(client: TestClient, token: str, url: str) -> object:
    return client.get(url, headers={"Authorization": f"Bearer {token}"})


def test_export_is_deidentified_consistently_and_holds_back_risks(
    platform: Platform, setup: tuple[TestClient, dict[str, str], StudySpec, StudySpec]
) -> None:
    client, tokens, mine, _ = setup
    url = f"/api/studies/{mine.study_uid}/deidentified"
    first = _get(client, tokens["user"], url)
    assert first.status_code == 200  # type: ignore[attr-defined]
    assert "1 instance(s) held back" in first.headers["warning"]  # type: ignore[attr-defined]
    parts = multipart_parts(first)  # type: ignore[arg-type]
    assert len(parts) == 2
    datasets = [dcmread(BytesIO(p)) for p in parts]
    for ds in datasets:
        assert "PRIVATE" not in str(ds.get("PatientName", ""))
        assert ds.PatientID != "RES-1"
        assert ds.StudyInstanceUID != mine.study_uid
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.get("PatientBirthDate", "") != "19610203"
    again = [dcmread(BytesIO(p)) for p in multipart_parts(_get(client, tokens["user"], url))]  # type: ignore[arg-type]
    assert {d.StudyInstanceUID for d in again} == {d.StudyInstanceUID for d in datasets}
    kept = _get(client, tokens["user"], url + "?option=retain-modified-dates")
    assert kept.status_code == 200  # type: ignore[attr-defined]
    bad = _get(client, tokens["user"], url + "?option=keep-everything")
    assert bad.status_code == 400  # type: ignore[attr-defined]
    exports = [r for r in platform.audit.repository.records() if r.event_id == "110106"]
    assert exports and exports[-1].actor_id == "researcher"
    assert exports[0].study_uid == mine.study_uid and "2 released, 1 held back" in exports[0].detail


def test_export_is_scoped(
    setup: tuple[TestClient, dict[str, str], StudySpec, StudySpec],
) -> None:
    client, tokens, _, other = setup
    hidden = _get(client, tokens["user"], f"/api/studies/{other.study_uid}/deidentified")
    missing = _get(client, tokens["user"], "/api/studies/1.2.3.4/deidentified")
    assert hidden.status_code == missing.status_code == 404  # type: ignore[attr-defined]
    refused = _get(client, tokens["auditor"], f"/api/studies/{other.study_uid}/deidentified")
    assert refused.status_code == 403  # type: ignore[attr-defined]
