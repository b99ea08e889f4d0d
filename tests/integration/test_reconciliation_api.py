"""The reconciliation queue over HTTP: listed, resolved, scoped, audited; and its page."""

from __future__ import annotations

import re
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


def _order(
    platform: Platform, facility: str, accession: str, patient: PatientDemographics
) -> Order:
    fac = platform.index.facility_by_name(facility)
    assert fac is not None
    return platform.orders.place(
        Order(fac.id, accession, patient, platform.orders.catalogue.resolve("71250")),
        Origin("HL7", "RIS"),
    )


def _row(html: str, uid: str) -> str:
    found = re.search(rf'<tr data-study="{re.escape(uid)}">.*?</tr>', html, re.S)
    assert found, html
    return found.group(0)


@pytest.fixture
def candidates(platform: Platform, setup: Setup) -> dict[str, Order]:
    jane = PatientDemographics(setup.mine.patient_id, "DOE^JANE", "19700101", "F")
    cancelled = _order(platform, "Here Hospital", "GONE1", jane)
    platform.orders.cancel(cancelled, Origin("HL7", "RIS"))
    return {
        "patient": _order(platform, "Here Hospital", "PAT1", jane),
        "same patient": _order(platform, "Here Hospital", "NOPE1X", jane),
        "elsewhere": _order(platform, "There Hospital", "THERE1", jane),
    }


def test_the_page_shows_patient_study_viewer_link_and_orders_to_pick(
    setup: Setup, candidates: dict[str, Order]
) -> None:
    page = setup.client.get("/reconciliation", headers=bearer(setup.tokens["clerk"]))
    row = _row(page.text, setup.mine.study_uid)
    assert "DOE, JANE" in row and "born 1970-01-01" in row and f"ID {setup.mine.patient_id}" in row
    assert "2026-01-01 · CT" in row and "/CT/" not in row
    assert f'href="/viewer?StudyInstanceUIDs={setup.mine.study_uid}"' in row
    offered = re.findall(r'<option value="([^"]+)">', row)
    assert sorted(offered) == ["NOPE1X", "PAT1"]  # open, same facility, same patient
    assert 'name="accession_number" placeholder' not in row  # nothing to type
    assert '<a href="/reconciliation">Reconciliation</a>' in page.text  # in the navigation


def test_picking_an_order_answers_the_row_with_the_outcome(
    platform: Platform, setup: Setup, candidates: dict[str, Order]
) -> None:
    url = f"/reconciliation/{setup.mine.study_uid}/assign"
    headers = {**bearer(setup.tokens["clerk"]), "HX-Request": "true"}
    done = setup.client.post(url, data={"accession_number": "PAT1"}, headers=headers)
    assert done.status_code == 200
    row = _row(done.text, setup.mine.study_uid)
    assert "Matched to order PAT1" in row and "<form" not in row
    order = platform.orders.get(candidates["patient"].id or 0)
    assert order is not None and order.study_instance_uid == setup.mine.study_uid


def test_an_error_comes_back_in_the_row_it_concerns(
    setup: Setup, candidates: dict[str, Order]
) -> None:
    url = f"/reconciliation/{setup.mine.study_uid}/assign"
    clerk = {**bearer(setup.tokens["clerk"]), "HX-Request": "true"}
    taken = setup.client.post(url, data={"accession_number": "THERE1"}, headers=clerk)
    assert taken.status_code == 422  # another facility's order does not exist here
    row = _row(taken.text, setup.mine.study_uid)
    assert '<p class="error" role="alert">no order with accession number THERE1</p>' in row
    assert "<option" in row  # the row can be resolved again
    reader = {**bearer(setup.tokens["reader"]), "HX-Request": "true"}
    refused = setup.client.post(url, data={"accession_number": "PAT1"}, headers=reader)
    assert refused.status_code == 403
    assert "needs orders:write" in _row(refused.text, setup.mine.study_uid)
    release = setup.client.post(
        f"/reconciliation/{setup.other.study_uid}/release", data={"priority": "stat"}, headers=clerk
    )
    assert release.status_code == 404 and setup.other.study_uid in release.text
    assert "no such study in reconciliation" in release.text
    assert "DOE" not in release.text  # nothing of the other facility's study


def test_the_page_says_which_studies_are_still_arriving(platform: Platform, setup: Setup) -> None:
    """It said "Nothing waits" while studies were still coming in."""
    here = platform.index.facility_by_name("Here Hospital")
    assert here is not None
    coming = StudySpec(accession="SOON1")
    for ds in ct_series(coming, slices=2, rows=8, cols=8):
        assert platform.archive.store(here.id, to_bytes(ds)).ok
    platform.reconciler.clock = lambda: datetime.now(UTC)  # just arrived: not stable yet
    platform.reconciler.run()
    page = setup.client.get("/reconciliation", headers=bearer(setup.tokens["clerk"])).text
    assert "1 study is still arriving" in page
    assert coming.study_uid not in page  # not in the queue (yet)
