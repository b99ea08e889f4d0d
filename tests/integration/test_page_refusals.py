"""A page that is not for the signed-in account answers a page saying so; APIs keep JSON."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from telerad.bootstrap import Platform
from telerad.domain.identity import Role
from telerad.web.app import create_app

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture
def client(platform: Platform) -> Iterator[tuple[TestClient, dict[str, str]]]:
    clinic = platform.index.add_facility("Clinic")
    auth = platform.auth
    users = {
        "tech": auth.create_user("tech", Role.FACILITY_USER, clinic.id),
        "reader": auth.create_user("reader", Role.RADIOLOGIST),
        "auditor": auth.create_user("auditor", Role.AUDITOR),
    }
    tokens = {name: auth.issue_token(user) for name, user in users.items()}
    with TestClient(create_app(platform), follow_redirects=False) as c:
        yield c, tokens


def _get(c: TestClient, url: str, token: str | None, accept: str) -> object:
    headers = {"Accept": accept}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return c.get(url, headers=headers)


@pytest.mark.parametrize(
    ("who", "url", "reason"),
    [
        ("tech", "/worklist", "only radiologists have a reading worklist"),
        ("tech", "/board", "the board is for network and facility administrators"),
        ("reader", "/board", "the board is for network and facility administrators"),
        ("auditor", "/reconciliation", "needs orders:read"),
    ],
)
def test_a_browser_gets_a_page_saying_why(
    client: tuple[TestClient, dict[str, str]], who: str, url: str, reason: str
) -> None:
    c, tokens = client
    page = c.get(url, headers={"Accept": BROWSER, "Authorization": f"Bearer {tokens[who]}"})
    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html")
    assert reason in page.text
    assert '<a href="/">Back to the study list</a>' in page.text
    assert f"/login?next={url}" in page.text
    assert f"signed in as <strong>{who}</strong>" in page.text


def test_apis_and_non_browsers_keep_json(client: tuple[TestClient, dict[str, str]]) -> None:
    c, tokens = client
    bearer = {"Authorization": f"Bearer {tokens['tech']}"}
    for url, accept in (
        ("/api/worklist", BROWSER),  # an API, even asked for by a browser
        ("/api/worklist/board", BROWSER),
        ("/worklist", "application/json"),  # a page, asked for by a script
    ):
        answer = c.get(url, headers={"Accept": accept, **bearer})
        assert answer.status_code == 403, url
        assert answer.headers["content-type"] == "application/json", url
        assert "detail" in answer.json()


def test_a_browser_without_a_session_goes_to_sign_in(
    client: tuple[TestClient, dict[str, str]],
) -> None:
    c, _ = client
    for url in ("/worklist", "/board", "/reconciliation", "/"):
        answer = c.get(url, headers={"Accept": BROWSER})
        assert answer.status_code == 303, url
        assert answer.headers["location"] == "/login?next=" + url.replace("/", "%2F")
    api = c.get("/api/reconciliation", headers={"Accept": BROWSER})
    assert api.status_code == 401 and api.headers["content-type"] == "application/json"
