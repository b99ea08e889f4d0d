"""The worklist over HTTP: a radiologist's queue, actions, the board, TAT; who sees what.

Cross-tenant probes: a radiologist of another facility, a facility admin of another
facility, staff without the admin permission and anonymous callers get 404/403/401,
never another facility's study.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from telerad.bootstrap import Platform
from telerad.domain.identity import Permission, Role, User
from telerad.domain.readers import ReaderProfile, weekly_rule
from telerad.web.app import create_app
from telerad.workflow.model import Priority, ReadingStudy

NORTH_UID = "1.2.826.0.1.3680043.10.1.1"
SOUTH_UID = "1.2.826.0.1.3680043.10.1.2"


@dataclass
class Net:
    platform: Platform
    client: TestClient
    north: int
    south: int
    ana: User  # radiologist at North
    ben: User  # radiologist at South
    tokens: dict[str, str]

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def _reader(p: Platform, name: str, facility_id: int, password: str | None = None) -> User:
    user = p.auth.create_user(
        name, Role.RADIOLOGIST, password=password, display_name=f"Dr {name.title()}"
    )
    p.identity.add_licences(user.id, ["US-CA"])
    p.identity.grant_privileges(user.id, [facility_id])
    now = datetime.now(UTC)
    p.reading.store.put_profile(ReaderProfile(user.id, modalities=frozenset({"CT"})), now)
    p.reading.store.add_shift(user.id, weekly_rule("daily", "00:00", "24:00"))
    return user


def _study(p: Platform, uid: str, facility_id: int, ready: datetime) -> ReadingStudy:
    return ReadingStudy(
        uid=uid,
        facility_id=facility_id,
        jurisdiction="US-CA",
        modality="CT",
        priority=Priority.STAT,
        ready_at=ready,
        deadline=p.reading.deadline(facility_id, Priority.STAT, ready),
        rvu=1.5,
        body_part="HEAD",
    )


@pytest.fixture
def net(platform: Platform) -> Net:
    p = platform
    north = p.index.add_facility("North", country="US", state="CA").id
    south = p.index.add_facility("South", country="US", state="CA").id
    ana, ben = _reader(p, "ana", north), _reader(p, "ben", south)
    users = {
        "ana": ana,
        "ben": ben,
        "north.admin": p.auth.create_user("north.admin", Role.FACILITY_ADMIN, north),
        "south.admin": p.auth.create_user("south.admin", Role.FACILITY_ADMIN, south),
        "north.tech": p.auth.create_user("north.tech", Role.FACILITY_USER, north),
        "root": p.auth.create_user("root", Role.NETWORK_ADMIN),
        "auditor": p.auth.create_user("auditor", Role.AUDITOR),
    }
    tokens = {name: p.auth.issue_token(user) for name, user in users.items()}
    client = TestClient(create_app(p))
    n = Net(p, client, north, south, ana, ben, tokens)
    # Both radiologists use the API: signed in from now on.
    for who in ("ana", "ben"):
        assert client.get("/api/worklist", headers=n.as_(who)).status_code == 200
    ready = datetime.now(UTC) - timedelta(minutes=5)
    p.reading.enqueue(_study(p, NORTH_UID, north, ready))
    p.reading.enqueue(_study(p, SOUTH_UID, south, ready))
    assert p.reading.holder(NORTH_UID) == ana.id and p.reading.holder(SOUTH_UID) == ben.id
    return n


def test_radiologist_sees_own_queue_with_reason_and_viewer_link(net: Net) -> None:
    body = net.client.get("/api/worklist", headers=net.as_("ana")).json()
    assert body["reader_id"] == net.ana.id
    [item] = body["items"]
    assert item["study_uid"] == NORTH_UID
    assert (item["priority"], item["state"], item["facility"]) == ("stat", "assigned", "North")
    assert item["viewer_url"] == f"/viewer?StudyInstanceUIDs={NORTH_UID}"
    assert "Dr Ana" in item["reason"] and "privileged at facility" in item["reason"]
    assert 50 < item["minutes_left"] <= 55  # STAT: 60 min from ready, 5 gone


def test_claim_release_complete_over_the_api(net: Net) -> None:
    url = f"/api/worklist/{NORTH_UID}"
    ana = net.as_("ana")
    claimed = net.client.post(url + "/claim", headers=ana)
    assert claimed.status_code == 200 and claimed.json()["item"]["state"] == "opened"
    # Nobody else at North reads CT: a release keeps it with ana.
    released = net.client.post(url + "/release", headers=ana).json()
    assert released["item"]["reader_id"] == net.ana.id
    assert net.client.post(url + "/complete", headers=ana).json()["item"] is None
    assert net.client.get("/api/worklist", headers=ana).json()["items"] == []
    again = net.client.post(url + "/complete", headers=ana)
    assert again.status_code == 404
    explained = net.client.get(url + "/explain", headers=ana).json()
    assert explained["state"] == "completed"
    assert [h["kind"] for h in explained["history"]] == [
        "assigned",
        "claimed",
        "completed",
    ]
    stats = net.client.get("/api/stats/tat?days=1", headers=net.as_("root")).json()
    assert [(t["priority"], t["reads"], t["sla_met"]) for t in stats["tat_minutes"]] == [
        ("stat", 1, 1)
    ]
    assert [(f["facility"], f["met"], f["reads"]) for f in stats["sla"]] == [("North", 1, 1)]
    assert 4.9 < stats["tat_minutes"][0]["p50"] < 10


def test_a_radiologist_cannot_touch_another_facilitys_study(net: Net) -> None:
    ben = net.as_("ben")
    for action in ("claim", "release", "complete"):
        r = net.client.post(f"/api/worklist/{NORTH_UID}/{action}", headers=ben)
        assert r.status_code == 404, (action, r.text)
        assert "North" not in r.text
    assert net.client.get(f"/api/worklist/{NORTH_UID}/explain", headers=ben).status_code == 404
    assert [
        i["study_uid"] for i in net.client.get("/api/worklist", headers=ben).json()["items"]
    ] == [SOUTH_UID]
    assert net.platform.reading.worklist.holder(NORTH_UID) == net.ana.id


def test_not_the_holder_is_a_conflict(net: Net) -> None:
    # A second radiologist at North who does not hold the study.
    p = net.platform
    cid = _reader(p, "cid", net.north)
    token = {"Authorization": f"Bearer {p.auth.issue_token(cid)}"}
    r = net.client.post(f"/api/worklist/{NORTH_UID}/claim", headers=token)
    assert r.status_code == 409 and "held by reader" in r.json()["detail"], r.text


def test_board_scopes(net: Net) -> None:
    def uids(who: str) -> list[str]:
        r = net.client.get("/api/worklist/board", headers=net.as_(who))
        assert r.status_code == 200, r.text
        return [i["study_uid"] for i in r.json()["items"]]

    assert sorted(uids("root")) == sorted([NORTH_UID, SOUTH_UID])
    assert uids("north.admin") == [NORTH_UID]
    assert uids("south.admin") == [SOUTH_UID]
    north_board = net.client.get("/api/worklist/board", headers=net.as_("north.admin")).json()
    assert [r["name"] for r in north_board["readers"]] == ["Dr Ana"]
    for who in ("ana", "north.tech", "auditor"):
        assert net.client.get("/api/worklist/board", headers=net.as_(who)).status_code == 403
        assert net.client.get("/api/stats/tat", headers=net.as_(who)).status_code == 403
    assert net.client.get("/api/worklist/board").status_code == 401
    assert net.client.get("/api/worklist").status_code == 401
    for who in ("root", "north.admin", "auditor"):
        assert net.client.get("/api/worklist", headers=net.as_(who)).status_code == 403


def test_stats_of_another_facility_are_not_found(net: Net) -> None:
    r = net.client.get(f"/api/stats/tat?facility={net.south}", headers=net.as_("north.admin"))
    assert r.status_code == 404
    ok = net.client.get(f"/api/stats/tat?facility={net.north}", headers=net.as_("north.admin"))
    assert ok.status_code == 200 and ok.json()["facility_id"] == net.north
    explain = net.client.get(f"/api/worklist/{SOUTH_UID}/explain", headers=net.as_("north.admin"))
    assert explain.status_code == 404
    mine = net.client.get(f"/api/worklist/{NORTH_UID}/explain", headers=net.as_("north.admin"))
    assert mine.status_code == 200 and mine.json()["history"][0]["reader_id"] == net.ana.id


def test_a_token_without_the_reading_scope_gets_no_worklist(net: Net) -> None:
    token = net.platform.auth.issue_token(net.ana, frozenset({Permission.READ}))
    r = net.client.get("/api/worklist", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403


def test_token_use_anywhere_counts_as_signed_in(net: Net) -> None:
    reading = net.platform.reading
    reading.signed_out(net.ana.id)
    assert reading.worklist.holder(NORTH_UID) is None
    assert not reading.worklist.roster.get(net.ana.id).signed_in
    assert net.client.get("/dicom-web/studies", headers=net.as_("ana")).status_code in (200, 204)
    reading.tick()
    assert reading.worklist.roster.get(net.ana.id).signed_in
    assert reading.worklist.holder(NORTH_UID) == net.ana.id


def test_pages_render_for_their_people(net: Net) -> None:
    page = net.client.get("/worklist", headers=net.as_("ana"))
    assert page.status_code == 200
    assert re.search(rf'<tr data-study-uid="{re.escape(NORTH_UID)}"', page.text)
    assert "privileged at facility" in page.text
    # One click opens and claims: the study is a form posting to /worklist/{uid}/open.
    assert f'action="/worklist/{NORTH_UID}/open"' in page.text
    assert SOUTH_UID not in page.text
    rows = net.client.get("/worklist/rows", headers=net.as_("ana"))
    assert rows.status_code == 200 and NORTH_UID in rows.text
    board = net.client.get("/board/rows", headers=net.as_("north.admin"))
    assert board.status_code == 200
    assert NORTH_UID in board.text and SOUTH_UID not in board.text
    assert "Dr Ana" in board.text
    assert net.client.get("/board", headers=net.as_("root")).status_code == 200
    assert net.client.get("/board", headers=net.as_("ana")).status_code == 403
    assert net.client.get("/worklist", headers=net.as_("root")).status_code == 403
    # The page's action: release (nobody else at North reads CT), answered with the rows
    # and why it stayed.
    acted = net.client.post(f"/worklist/{NORTH_UID}/release", headers=net.as_("ana"))
    assert acted.status_code == 200
    assert "Not handed on: Nobody else on the roster may read it." in acted.text
    # One click on the study: claimed, and on to the viewer.
    opened = net.client.post(
        f"/worklist/{NORTH_UID}/open", headers=net.as_("ana"), follow_redirects=False
    )
    assert opened.status_code == 303
    assert opened.headers["location"] == f"/reading/{NORTH_UID}"  # viewer and report
    assert net.platform.reading.worklist.holds[NORTH_UID].claimed_at is not None
    again = net.client.post(
        f"/worklist/{NORTH_UID}/open", headers=net.as_("ana"), follow_redirects=False
    )
    assert again.status_code == 303  # opening it again just opens it
    taken = net.client.post(
        f"/worklist/{SOUTH_UID}/open", headers=net.as_("ana"), follow_redirects=False
    )
    assert taken.status_code == 404  # another facility's study: as if unknown


def test_vendored_scripts_are_served_without_a_cdn(net: Net) -> None:
    from telerad.web.routes.worklist import vendor_dir

    folder = vendor_dir()
    if folder is None or not (folder / "chart.umd.min.js").is_file():
        pytest.fail("vendor/web is missing: make install fetches Chart.js and htmx")
    for name in ("chart.umd.min.js", "htmx.min.js"):
        r = net.client.get(f"/static/vendor/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert net.client.get("/static/vendor/../pyproject.toml").status_code == 404
    assert net.client.get("/static/vendor/nothing.js").status_code == 404


def test_signing_out_hands_the_readers_studies_on_at_once(net: Net) -> None:
    p = net.platform
    cara = _reader(p, "cara", net.north, password="a long enough passphrase 1")
    browser = TestClient(create_app(p))
    signed_in = browser.post(
        "/login",
        data={"username": "cara", "password": "a long enough passphrase 1"},
        headers={"Origin": "http://testserver"},
        follow_redirects=False,
    )
    assert signed_in.status_code == 303
    assert browser.get("/api/worklist").status_code == 200  # her session: signed in
    p.reading.signed_out(net.ana.id)  # Ana leaves: her North study goes to Cara
    assert p.reading.holder(NORTH_UID) == cara.id
    out = browser.post("/logout", headers={"Origin": "http://testserver"}, follow_redirects=False)
    assert out.status_code == 303
    assert p.reading.holder(NORTH_UID) != cara.id  # handed on at once, not at the next tick
