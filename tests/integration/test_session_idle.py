"""An idle session is not a sign-out (issue 9, fault 3).

A stroke MR was "reassigned: reader signed out" when the browser session expired
and came back 103 minutes overdue. Now: a page's own polling does not keep a
session alive, the page can ask how long it has and keep it, and a session that
lapses makes the radiologist away — their study stays with them when nobody
else may read it, and the supervisor sees an alert.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from telerad.bootstrap import Platform
from telerad.domain.identity import Role
from telerad.domain.readers import ReaderProfile, weekly_rule
from telerad.domain.reading_entries import AlertKind
from telerad.web.app import create_app
from telerad.workflow.model import Priority, ReadingStudy

PASSWORD = "an idle radiologist's passphrase"
ORIGIN = {"Origin": "http://testserver"}
BACKGROUND = {"X-Telerad-Background": "1"}
UID = "1.2.826.0.1.3680043.10.3.1"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


def _sign_in(browser: TestClient) -> None:
    signed_in = browser.post(
        "/login", data={"username": "ana", "password": PASSWORD}, headers=ORIGIN,
        follow_redirects=False,
    )  # fmt: skip
    assert signed_in.status_code == 303
    assert browser.get("/worklist").status_code == 200


def test_idle_sessions_warn_end_and_leave_the_reader_away(platform: Platform) -> None:
    p, clock = platform, Clock()
    p.auth.clock = clock
    p.reading.clock = clock
    north = p.index.add_facility("North", country="US", state="CA")
    ana = p.auth.create_user("ana", Role.RADIOLOGIST, password=PASSWORD, display_name="Dr Ana")
    p.identity.add_licences(ana.id, ["US-CA"])
    p.identity.grant_privileges(ana.id, [north.id])
    p.reading.store.put_profile(ReaderProfile(ana.id, modalities=frozenset({"MR"})), clock())
    p.reading.store.add_shift(ana.id, weekly_rule("daily", "00:00", "24:00"))
    browser = TestClient(create_app(p))
    _sign_in(browser)
    p.reading.enqueue(
        ReadingStudy(
            uid=UID, facility_id=north.id, jurisdiction="US-CA", modality="MR",
            priority=Priority.STROKE, ready_at=clock(),
            deadline=p.reading.deadline(north.id, Priority.STROKE, clock()),
        )
    )  # fmt: skip
    assert p.reading.holder(UID) == ana.id

    # 25 minutes of the page polling by itself: it does not count as her activity.
    for _ in range(25):
        clock.now += timedelta(minutes=1)
        assert browser.get("/worklist/rows", headers=BACKGROUND).status_code == 200
    left = browser.get("/api/auth/session", headers=BACKGROUND).json()
    assert left["seconds_left"] == 5 * 60 and left["idle_minutes"] == 30
    # The warning's "Stay signed in": the idle clock starts again.
    kept = browser.post("/api/auth/session", headers=ORIGIN)
    assert kept.status_code == 200 and kept.json()["seconds_left"] == 30 * 60
    assert browser.post("/api/auth/session").status_code == 403  # not from our pages

    # Then she walks away: the session lapses.
    clock.now += timedelta(minutes=31)
    assert browser.get("/api/auth/session", headers=BACKGROUND).status_code == 401
    p.reading.tick(clock())
    assert p.reading.holder(UID) == ana.id  # nobody else reads MR: it stays with her
    assert ana.id in p.reading.worklist.away
    alerts = p.reading.board(None, clock()).alerts
    [alert] = [a for a in alerts if a.kind is AlertKind.READER_AWAY]
    assert alert.study_uid == UID and "Dr Ana is away" in alert.detail
    assert AlertKind.BREACHED in {a.kind for a in alerts}  # 56 min: past its 20 min target
    history = p.reading.store.history(UID)
    assert history is not None and "signed out" not in " ".join(e.detail for e in history.events)
    # She signs in again: the study is attended again.
    _sign_in(browser)
    alerts = p.reading.board(None, clock()).alerts
    assert AlertKind.READER_AWAY not in {a.kind for a in alerts}
    assert ana.id not in p.reading.worklist.away
