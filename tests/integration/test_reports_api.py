"""Reports over HTTP (``/api/reports``) on a real platform: the holder writes and signs,
others get 404/403, a stale write 409 with the current report, failed checks 422
with the findings, a wrong password 403 (audited); a final completes the worklist
entry; the facility's staff then read the signed report. And the reading screen."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from fastapi.testclient import TestClient

from telerad.bootstrap import Platform
from telerad.domain.audit import EventID
from telerad.domain.identity import Role, User
from telerad.domain.readers import ReaderProfile, weekly_rule
from telerad.synthetic import StudySpec, ct_series, to_bytes
from telerad.web.app import create_app
from telerad.workflow.model import Priority, ReadingStudy

PASSWORD = "correct horse battery"


@dataclass
class Desk:
    platform: Platform
    client: TestClient
    uid: str
    ana: User
    seed: str
    tokens: dict[str, str]
    used: int = 0

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def code(self) -> str:
        """A code not taken yet: each is taken once, so the next one is a step later
        (the server takes one step of drift)."""
        code = pyotp.TOTP(self.seed).at(datetime.now(UTC) + timedelta(seconds=30 * self.used))
        self.used += 1
        return code


def _reader(p: Platform, name: str, facility_id: int) -> User:
    user = p.auth.create_user(
        name, Role.RADIOLOGIST, password=PASSWORD, display_name=f"Dr {name.title()}"
    )
    p.identity.add_licences(user.id, ["US-CA"])
    p.identity.grant_privileges(user.id, [facility_id])
    p.reading.store.put_profile(
        ReaderProfile(user.id, modalities=frozenset({"CT"})), datetime.now(UTC)
    )
    p.reading.store.add_shift(user.id, weekly_rule("daily", "00:00", "24:00"))
    return user


@pytest.fixture
def desk(platform: Platform) -> Desk:
    p = platform
    north = p.index.add_facility("North", country="US", state="CA").id
    south = p.index.add_facility("South", country="US", state="CA").id
    spec = StudySpec(
        patient_id="P-1", accession="ACC-R1", description="CT HEAD WITHOUT CONTRAST", sex="M"
    )
    for ds in ct_series(spec, slices=3, rows=8, cols=8):
        assert p.archive.store(north, to_bytes(ds)).ok
    ana, ben = _reader(p, "ana", north), _reader(p, "ben", south)
    seed = p.auth.enroll_totp(ana).split("secret=")[1].split("&")[0]
    users = {
        "ana": ana,
        "ben": ben,
        "north.tech": p.auth.create_user("north.tech", Role.FACILITY_USER, north),
        "south.tech": p.auth.create_user("south.tech", Role.FACILITY_USER, south),
    }
    tokens = {name: p.auth.issue_token(user) for name, user in users.items()}
    client = TestClient(create_app(p))
    d = Desk(p, client, spec.study_uid, ana, seed, tokens)
    assert client.get("/api/worklist", headers=d.as_("ana")).status_code == 200  # signed in
    ready = datetime.now(UTC) - timedelta(minutes=5)
    p.reading.enqueue(
        ReadingStudy(
            uid=spec.study_uid,
            facility_id=north,
            jurisdiction="US-CA",
            modality="CT",
            priority=Priority.STAT,
            ready_at=ready,
            deadline=p.reading.deadline(north, Priority.STAT, ready),
            rvu=1.5,
            body_part="HEAD",
        )
    )
    assert p.reading.holder(spec.study_uid) == ana.id
    return d


def test_the_holder_writes_and_signs_and_the_facility_reads_it(desk: Desk) -> None:
    c, ana = desk.client, desk.as_("ana")
    for who, status in (("ben", 404), ("north.tech", 403)):
        assert (
            c.post(
                "/api/reports", json={"study_instance_uid": desk.uid}, headers=desk.as_(who)
            ).status_code
            == status
        )
    started = c.post("/api/reports", json={"study_instance_uid": desk.uid}, headers=ana)
    assert started.status_code == 201, started.text
    report = started.json()
    assert report["status"] == "draft" and report["template_id"] == "ct-head"
    rid, version = report["id"], report["version"]
    template = desk.platform.reports.templates.get("ct-head")
    assert template is not None
    impression = next(s.id for s in template.sections if s.heading and s.heading.value == "19005-8")

    sections = {**report["sections"], impression: "No acute intracranial abnormality."}
    fields = {**report["fields"], "hemorrhage": "absent"}  # the template requires it
    saved = c.put(
        f"/api/reports/{rid}",
        json={"version": version, "sections": sections, "fields": fields},
        headers=ana,
    )
    assert saved.status_code == 200 and saved.json()["version"] == version + 1
    stale = c.put(
        f"/api/reports/{rid}", json={"version": version, "sections": {impression: "x"}}, headers=ana
    )
    assert stale.status_code == 409
    assert stale.json()["current"]["sections"][impression] == "No acute intracranial abnormality."
    unknown = c.put(
        f"/api/reports/{rid}", json={"version": version + 1, "sections": {"nope": "x"}}, headers=ana
    )
    assert unknown.status_code == 409 and "has no nope" in unknown.json()["detail"]
    version += 1

    wrong = c.post(
        f"/api/reports/{rid}/sign",
        json={"version": version, "password": "wrong", "code": "000000"},
        headers=ana,
    )
    assert wrong.status_code == 403
    refused = [
        r
        for r in desk.platform.audit.repository.records()
        if r.event_id == EventID.PROCEDURE_RECORD.code and "refused" in r.detail
    ]
    assert len(refused) == 1

    # The patient is male: a uterus in the findings stops the signature until fixed.
    findings = next(s.id for s in template.sections if s.heading and s.heading.value == "59776-5")
    bad = {**sections, findings: "The uterus is unremarkable."}
    version = c.put(
        f"/api/reports/{rid}",
        json={"version": version, "sections": bad, "fields": fields},
        headers=ana,
    ).json()["version"]
    blocked = c.post(  # the checks answer before the password is asked for
        f"/api/reports/{rid}/sign",
        json={"version": version, "password": "", "code": ""},
        headers=ana,
    )
    assert blocked.status_code == 422
    assert [f["check"] for f in blocked.json()["findings"]] == ["sex-anatomy"]
    version = c.put(
        f"/api/reports/{rid}",
        json={"version": version, "sections": sections, "fields": fields},
        headers=ana,
    ).json()["version"]

    assert (
        c.get(f"/api/reports/{rid}", headers=desk.as_("north.tech")).status_code == 404
    )  # a draft
    signed = c.post(
        f"/api/reports/{rid}/sign",
        json={"version": version, "password": PASSWORD, "code": desk.code()},
        headers=ana,
    )
    assert signed.status_code == 200, signed.text
    assert signed.json()["status"] == "final"
    assert desk.platform.reading.holder(desk.uid) is None
    assert desk.platform.reading.explain(desk.uid).state == "completed"  # type: ignore[union-attr]

    tech = desk.as_("north.tech")
    listed = c.get("/api/reports", params={"study": desk.uid}, headers=tech).json()
    assert [(r["id"], r["status"]) for r in listed] == [(rid, "final")]
    assert (
        c.get(f"/api/reports/{rid}", headers=tech).json()["sections"][impression]
        == "No acute intracranial abnormality."
    )
    assert c.get(f"/api/reports/{rid}", headers=desk.as_("south.tech")).status_code == 404
    assert (
        c.get("/api/reports", params={"study": desk.uid}, headers=desk.as_("south.tech")).json()
        == []
    )

    added = c.post(
        f"/api/reports/{rid}/addenda",
        json={
            "version": signed.json()["version"],
            "text": "Also: sinusitis.",
            "password": PASSWORD,
            "code": desk.code(),
        },
        headers=ana,
    )
    assert added.status_code == 200 and added.json()["status"] == "appended"
    assert added.json()["addenda"] == ["Also: sinusitis."]


def test_the_reading_screen_shows_viewer_and_editor(desk: Desk) -> None:
    page = desk.client.get(f"/reading/{desk.uid}", headers=desk.as_("ana"))
    assert page.status_code == 200, page.text
    html = page.text
    assert f'src="/viewer?StudyInstanceUIDs={desk.uid}"' in html
    assert 'hx-post="/reading/' in html and "Sign final" in html and "DOE, JANE" in html
    assert page.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    report = desk.client.post(
        "/api/reports", json={"study_instance_uid": desk.uid}, headers=desk.as_("ana")
    ).json()  # the page started it: the same draft
    assert report["version"] == 1 and f'name="report" value="{report["id"]}"' in html
    saved = desk.client.post(
        f"/reading/{desk.uid}/save",
        data={"report": report["id"], "version": 1, "s.impression": "Normal."},
        headers=desk.as_("ana"),
    )
    assert saved.status_code == 200 and "Saved · version 2" in saved.text
    other = desk.client.get(f"/reading/{desk.uid}", headers=desk.as_("north.tech"))
    assert other.status_code == 200 and "Sign final" not in other.text
    assert desk.client.get(f"/reading/{desk.uid}", headers=desk.as_("ben")).status_code == 404


def test_the_reading_screen_switches_template_and_takes_an_addendum(desk: Desk) -> None:
    c, ana = desk.client, desk.as_("ana")
    assert c.get(f"/reading/{desk.uid}", headers=ana).status_code == 200
    report = c.post("/api/reports", json={"study_instance_uid": desk.uid}, headers=ana).json()
    same = c.post(
        f"/reading/{desk.uid}/save",
        data={"report": report["id"], "version": 1, "template_id": "ct-head", "s.impression": "x"},
        headers=ana,
    )
    assert same.status_code == 200 and "HX-Refresh" not in same.headers  # typing: no reload
    switched = c.post(
        f"/reading/{desk.uid}/save",
        data={"report": report["id"], "version": 2, "template_id": "generic"},
        headers=ana,
    )
    assert switched.headers.get("HX-Refresh") == "true"  # another template: its form
    report = c.get(f"/api/reports/{report['id']}", headers=ana).json()
    assert report["template_id"] == "generic"
    back = c.post(
        f"/reading/{desk.uid}/save",
        data={"report": report["id"], "version": report["version"], "template_id": "ct-head",
              "s.impression": "Normal.", "f.hemorrhage": "absent"},
        headers=ana,
    )  # fmt: skip
    assert back.status_code == 200 and "Saved" in back.text
    version = report["version"] + 1
    signed = c.post(
        f"/api/reports/{report['id']}/sign",
        json={"version": version, "password": PASSWORD, "code": desk.code()},
        headers=ana,
    )
    assert signed.status_code == 200, signed.text
    page = c.get(f"/reading/{desk.uid}", headers=ana).text
    assert "Add an addendum" in page and "Sign final" not in page
    wrong = c.post(
        f"/reading/{desk.uid}/addendum",
        data={"report": report["id"], "version": version + 1, "text": "More.", "password": "no"},
        headers=ana,
    )
    assert wrong.status_code == 422 and "Not added" in wrong.text
    added = c.post(
        f"/reading/{desk.uid}/addendum",
        data={"report": report["id"], "version": version + 1, "text": "More.",
              "password": PASSWORD, "code": desk.code()},
        headers=ana,
    )  # fmt: skip
    assert added.status_code == 204 and added.headers["HX-Refresh"] == "true"
    final = c.get(f"/api/reports/{report['id']}", headers=ana).json()
    assert final["status"] == "appended" and final["addenda"] == ["More."]
    assert "More." in c.get(f"/reading/{desk.uid}", headers=desk.as_("north.tech")).text


def test_report_show_prints_the_signed_report_and_its_versions(desk: Desk) -> None:
    from typer.testing import CliRunner

    from telerad.cli.main import app

    c, ana = desk.client, desk.as_("ana")
    report = c.post("/api/reports", json={"study_instance_uid": desk.uid}, headers=ana).json()
    sections = {**report["sections"], "impression": "No bleed — normal study."}
    fields = {**report["fields"], "hemorrhage": "absent"}
    saved = c.put(
        f"/api/reports/{report['id']}",
        json={"version": 1, "sections": sections, "fields": fields},
        headers=ana,
    )
    runner = CliRunner()
    data_dir = str(desk.platform.settings.data_dir)
    url = desk.platform.settings.database_url or ""
    args = ["report", "show", "ACC-R1", "--data-dir", data_dir] + (
        ["--database-url", url] if url else []
    )
    draft_only = runner.invoke(app, args)
    assert draft_only.exit_code == 1 and "no signed report" in draft_only.output  # drafts stay
    c.post(
        f"/api/reports/{report['id']}/sign",
        json={"version": saved.json()["version"], "password": PASSWORD, "code": desk.code()},
        headers=ana,
    )
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0, shown.output
    assert "FINAL" in shown.output and "No bleed — normal study." in shown.output
    assert "Intracranial haemorrhage: absent" in shown.output
    assert "sign-final (signed)" in shown.output
    # No facility endpoint; the archive step (the SR and PDF into the study) is listed.
    assert "archive" in shown.output and "hl7" not in shown.output
