"""The reconciliation queue over HTTP: listed, resolved, scoped, audited; and its page."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from telerad.bootstrap import Platform
from telerad.domain.identity import Role
from telerad.domain.orders import Order, PatientDemographics
from telerad.services.orders import Origin
from telerad.synthetic import StudySpec, ct_series, to_bytes
from telerad.web.app import create_app


@dataclass
class Setup:
    client: TestClient
    tokens: dict[str, str]
    mine: StudySpec
    other: StudySpec


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def setup(platform: Platform) -> Iterator[Setup]:
    here = platform.index.add_facility("Here Hospital")
    there = platform.index.add_facility("There Hospital")
    mine, other = StudySpec(accession="NOPE1"), StudySpec(accession="NOPE2")
    for facility, spec in ((here, mine), (there, other)):
        for ds in ct_series(spec, slices=3, rows=8, cols=8):
            assert platform.archive.store(facility.id, to_bytes(ds)).ok
    later = datetime.now(UTC) + timedelta(minutes=5)
    platform.reconciler.clock = lambda: later
    platform.reconciler.run()
    platform.orders.place(
        Order(
            here.id, "REAL1", PatientDemographics("X1"), platform.orders.catalogue.resolve("71250")
        ),
        Origin("HL7", "RIS"),
    )
    auth = platform.auth
    clerk = auth.create_user("clerk", Role.FACILITY_USER, here.id)
    reader = auth.create_user("reader", Role.RADIOLOGIST)
    auth.identity.grant_privilege(reader.id, here.id) if hasattr(
        auth.identity, "grant_privilege"
    ) else None
    tokens = {"clerk": auth.issue_token(clerk), "reader": auth.issue_token(reader)}
    with TestClient(create_app(platform)) as client:
        yield Setup(client, tokens, mine, other)


def test_the_queue_lists_only_the_callers_facility(setup: Setup) -> None:
    answer = setup.client.get("/api/reconciliation", headers=bearer(setup.tokens["clerk"]))
    assert answer.status_code == 200
    [item] = answer.json()
    assert item["study_instance_uid"] == setup.mine.study_uid
    assert item["state"] == "unmatched"
    assert item["problems"] == ["no open order with accession number NOPE1"]
    hidden = setup.client.get(
        f"/api/reconciliation/{setup.other.study_uid}", headers=bearer(setup.tokens["clerk"])
    )
    missing = setup.client.get("/api/reconciliation/1.2.3", headers=bearer(setup.tokens["clerk"]))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()


def test_a_person_matches_a_study_to_its_order(platform: Platform, setup: Setup) -> None:
    url = f"/api/reconciliation/{setup.mine.study_uid}/assign"
    unknown = setup.client.post(
        url, json={"accession_number": "NONE"}, headers=bearer(setup.tokens["clerk"])
    )
    assert unknown.status_code == 422 and "no order" in unknown.json()["detail"]
    done = setup.client.post(
        url, json={"accession_number": "REAL1"}, headers=bearer(setup.tokens["clerk"])
    )
    assert done.status_code == 200
    assert done.json()["matched_by"] == "a person" and done.json()["order_id"] is not None
    order = platform.orders.by_accession(done.json()["facility_id"], "REAL1")
    assert order is not None and order.study_instance_uid == setup.mine.study_uid
    foreign = setup.client.post(
        f"/api/reconciliation/{setup.other.study_uid}/assign",
        json={"accession_number": "REAL1"},
        headers=bearer(setup.tokens["clerk"]),
    )
    assert foreign.status_code == 404


def test_release_needs_a_tier_and_write_permission(platform: Platform, setup: Setup) -> None:
    url = f"/api/reconciliation/{setup.mine.study_uid}/release"
    bad = setup.client.post(
        url, json={"priority": "whenever"}, headers=bearer(setup.tokens["clerk"])
    )
    assert bad.status_code == 422
    refused = setup.client.post(
        url, json={"priority": "stat"}, headers=bearer(setup.tokens["reader"])
    )
    assert refused.status_code == 403  # radiologists read orders, they do not resolve them
    done = setup.client.post(url, json={"priority": "stat"}, headers=bearer(setup.tokens["clerk"]))
    assert done.status_code == 200 and done.json()["released_as"] == "stat"
    platform.reconciler.run()
    state = setup.client.get(
        f"/api/reconciliation/{setup.mine.study_uid}", headers=bearer(setup.tokens["clerk"])
    )
    assert state.json()["state"] == "ready"
    again = setup.client.post(url, json={"priority": "stat"}, headers=bearer(setup.tokens["clerk"]))
    assert again.status_code == 409
    details = [r.detail for r in platform.audit.repository.records()]
    assert "released to reading as stat" in details


def test_the_page_shows_the_queue(setup: Setup) -> None:
    page = setup.client.get("/reconciliation", headers=bearer(setup.tokens["clerk"]))
    assert page.status_code == 200
    assert setup.mine.study_uid in page.text
    assert "no open order with accession number NOPE1" in page.text
    assert setup.other.study_uid not in page.text
