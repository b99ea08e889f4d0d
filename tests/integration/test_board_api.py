"""The supervisor's board over HTTP: alerts seen and acknowledged, studies assigned by
hand to an eligible reader, SLA figures that count live breaches (issue 9, faults 2, 4, 5).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from tests.integration.test_worklist_api import NORTH_UID, Net, _reader, _study, net

from telerad.domain.readers import ReaderProfile
from telerad.storage.db import tables as t
from telerad.workflow.model import Priority

__all__ = ["net"]  # the fixture, shared with test_worklist_api

US_UID = "1.2.826.0.1.3680043.10.1.9"


def _audit_details(net: Net) -> list[str]:
    with net.platform.engine.connect() as conn:
        return [r.detail for r in conn.execute(select(t.audit_record.c.detail))]


def test_a_study_nobody_may_read_is_an_alert_and_is_assigned_by_hand(net: Net) -> None:
    p, root = net.platform, net.as_("root")
    ready = datetime.now(UTC) - timedelta(minutes=1)
    study = _study(p, US_UID, net.north, ready)
    p.reading.enqueue(study.__class__(**{**study.__dict__, "modality": "US"}))
    assert p.reading.holder(US_UID) is None  # nobody reads US

    board = net.client.get("/api/worklist/board", headers=root).json()
    [alert] = [a for a in board["alerts"] if a["study_uid"] == US_UID]
    assert alert["kind"] == "no-reader" and alert["acknowledged_at"] is None
    assert alert["detail"].startswith("No reader: nobody on the roster is")
    assert "reading US" in alert["detail"]
    [row] = [i for i in board["items"] if i["study_uid"] == US_UID]
    assert row["state"] == "waiting" and "reading US" in row["summary"]  # never empty
    page = net.client.get("/board/rows", headers=root).text
    assert 'class="alert alert-no-reader' in page and "Acknowledge" in page

    # Who could take it: every reader, and why each may not.
    found = net.client.get(f"/api/worklist/{US_UID}/candidates", headers=root).json()
    reasons = {r["name"]: r["reasons"] for r in found["readers"]}
    assert reasons["Dr Ana"] == ["no US competence"]
    assert "no privileges at facility" in " ".join(reasons["Dr Ben"])
    refused = net.client.post(
        f"/api/worklist/{US_UID}/assign", json={"reader_id": net.ana.id}, headers=root
    )
    assert refused.status_code == 409 and "no US competence" in refused.json()["detail"]

    # Ana is credentialed for ultrasound: the supervisor gives it to her.
    now = datetime.now(UTC)
    p.reading.store.put_profile(ReaderProfile(net.ana.id, modalities=frozenset({"CT", "US"})), now)
    given = net.client.post(
        f"/api/worklist/{US_UID}/assign", json={"reader_id": net.ana.id}, headers=root
    )
    assert given.status_code == 200, given.text
    assert given.json()["reader_id"] == net.ana.id
    assert "assigned by supervisor root" in given.json()["summary"]
    assert p.reading.holder(US_UID) == net.ana.id
    after = net.client.get("/api/worklist/board", headers=root).json()
    assert [a for a in after["alerts"] if a["study_uid"] == US_UID] == []  # its cause went
    assert any("assigned by hand to Dr Ana" in d for d in _audit_details(net))
    history = net.client.get(f"/api/worklist/{US_UID}/explain", headers=root).json()
    assert [h["kind"] for h in history["history"]] == ["no-reader", "assigned"]


def test_reassigning_a_held_study_and_facility_scope(net: Net) -> None:
    p = net.platform
    cara = _reader(p, "cara", net.north)
    p.reading.seen(cara.id, token=True)
    holder = p.reading.holder(NORTH_UID)
    other = cara.id if holder == net.ana.id else net.ana.id
    # The other facility's admin sees nothing of North's study, as if it did not exist.
    for path in (f"/api/worklist/{NORTH_UID}/candidates", f"/board/{NORTH_UID}/assign"):
        assert net.client.get(path, headers=net.as_("south.admin")).status_code == 404
    foreign = net.client.post(
        f"/api/worklist/{NORTH_UID}/assign",
        json={"reader_id": other},
        headers=net.as_("south.admin"),
    )
    assert foreign.status_code == 404 and "North" not in foreign.text
    assert (
        net.client.post(
            f"/api/worklist/{NORTH_UID}/assign", json={"reader_id": other}, headers=net.as_("ana")
        ).status_code
        == 403
    )  # radiologists do not assign
    # North's admin moves it; the board's form does the same.
    form = net.client.get(f"/board/{NORTH_UID}/assign", headers=net.as_("north.admin")).text
    assert f'value="{other}"' in form
    moved = net.client.post(
        f"/board/{NORTH_UID}/assign", data={"reader_id": str(other)}, headers=net.as_("north.admin")
    )
    assert moved.status_code == 200 and "Assigned to" in moved.text
    assert p.reading.holder(NORTH_UID) == other
    explained = net.client.get(f"/api/worklist/{NORTH_UID}/explain", headers=net.as_("root"))
    assert "reassigned by supervisor north.admin" in [
        h["detail"] for h in explained.json()["history"]
    ]


def test_alerts_are_acknowledged_and_audited(net: Net) -> None:
    p, root = net.platform, net.as_("root")
    late = datetime.now(UTC) - timedelta(hours=2)  # STAT, 60 min: past its deadline
    p.reading.enqueue(_study(p, "1.2.826.0.1.3680043.10.1.7", net.north, late))
    p.reading.tick()
    alerts = net.client.get("/api/worklist/board", headers=root).json()["alerts"]
    kinds = {a["kind"] for a in alerts if a["study_uid"] == "1.2.826.0.1.3680043.10.1.7"}
    assert {"breached", "breach-risk"} <= kinds
    breached = next(a for a in alerts if a["kind"] == "breached")
    assert (
        net.client.post(
            f"/api/worklist/alerts/{breached['id']}/acknowledge", headers=net.as_("south.admin")
        ).status_code
        == 404
    )  # not theirs
    done = net.client.post(f"/api/worklist/alerts/{breached['id']}/acknowledge", headers=root)
    assert done.status_code == 200 and done.json()["acknowledged_at"] is not None
    again = net.client.get("/api/worklist/board", headers=root).json()["alerts"]
    kept = next(a for a in again if a["id"] == breached["id"])
    assert kept["acknowledged_at"] is not None  # seen, still live until it is read
    assert any("breached alert acknowledged" in d for d in _audit_details(net))
    html = net.client.post(f"/board/alerts/{breached['id']}/acknowledge", headers=root)
    assert html.status_code == 200 and "acknowledged" in html.text
    missing = net.client.post("/api/worklist/alerts/999999/acknowledge", headers=root)
    assert missing.status_code == 404


def test_sla_counts_open_studies_past_their_deadline_as_breaches(net: Net) -> None:
    """The chart showed 100 % while two studies were breached."""
    p, root = net.platform, net.as_("north.admin")
    now = datetime.now(UTC)
    # One read on time...
    p.reading.complete(NORTH_UID, net.ana.id)
    # ...and one still open, past its deadline.
    late = _study(p, "1.2.826.0.1.3680043.10.1.8", net.north, now - timedelta(hours=3))
    p.reading.enqueue(late.__class__(**{**late.__dict__, "priority": Priority.STAT}))
    stats = net.client.get("/api/stats/tat", headers=root).json()
    [north] = stats["sla"]
    assert (north["reads"], north["met"], north["open_breached"]) == (2, 1, 1)
    assert north["compliance"] == 0.5
    [stat] = stats["tat_minutes"]
    assert (stat["reads"], stat["open_breached"], stat["sla_met"]) == (1, 1, 1)
    assert stat["p50"] is not None


def test_the_viewer_and_the_rows_show_the_order_and_the_patient(net: Net) -> None:
    """Reason for exam, age and sex, ordering physician and facility on each row and
    above the viewer's images (issue 9, fault 6)."""
    from telerad.domain.orders import Order, PatientDemographics
    from telerad.services.orders import Origin
    from telerad.synthetic import StudySpec, ct_series, to_bytes

    p = net.platform
    spec = StudySpec(accession="CTX1", patient_name="DOE^JANE", birth_date="19790315")
    spec.study_date = "20260310"
    for ds in ct_series(spec, slices=2, rows=8, cols=8):
        assert p.archive.store(net.north, to_bytes(ds)).ok
    order = Order(
        net.north, "CTX1", PatientDemographics(spec.patient_id),
        p.orders.catalogue.resolve("70450"), Priority.STAT,
        reason="fall, on anticoagulants", ordering_physician="HOUSE^GREGORY",
    )  # fmt: skip
    p.orders.place(order, Origin("HL7", "RIS"))
    p.orders.match(
        p.orders.by_accession(net.north, "CTX1"), spec.study_uid, "accession", Origin("HL7", "RIS")
    )  # type: ignore[arg-type]
    p.reading.enqueue(_study(p, spec.study_uid, net.north, datetime.now(UTC)))
    assert p.reading.holder(spec.study_uid) == net.ana.id

    shown = net.client.get(f"/api/worklist/context/{spec.study_uid}", headers=net.as_("ana"))
    assert shown.status_code == 200
    c = shown.json()
    assert (c["patient_name"], c["age"], c["sex"]) == ("DOE, JANE", "46 y", "F")
    assert (c["reason_for_exam"], c["ordering_physician"]) == (
        "fall, on anticoagulants",
        "HOUSE, GREGORY",
    )
    assert (c["facility"], c["priority"], c["yours"], c["accession"]) == (
        "North",
        "stat",
        True,
        "CTX1",
    )
    # Another facility's radiologist: as if it did not exist.
    assert (
        net.client.get(
            f"/api/worklist/context/{spec.study_uid}", headers=net.as_("ben")
        ).status_code
        == 404
    )
    [item] = [
        i
        for i in net.client.get("/api/worklist", headers=net.as_("ana")).json()["items"]
        if i["study_uid"] == spec.study_uid
    ]
    assert (item["reason_for_exam"], item["age"], item["sex"], item["facility"]) == (
        "fall, on anticoagulants",
        "46 y",
        "F",
        "North",
    )
    page = net.client.get("/worklist?priority=stat&sort=deadline", headers=net.as_("ana")).text
    assert "fall, on anticoagulants" in page and "ordered by HOUSE, GREGORY" in page
    assert "46 y F" in page
    routine_only = net.client.get("/worklist/rows?priority=routine", headers=net.as_("ana")).text
    assert spec.study_uid not in routine_only and "Nothing matches these filters" in routine_only


def test_the_board_filters_and_sorts_its_queue(net: Net) -> None:
    p, root = net.platform, net.as_("root")
    ready = datetime.now(UTC) - timedelta(minutes=1)
    us = _study(p, US_UID, net.north, ready)
    p.reading.enqueue(us.__class__(**{**us.__dict__, "modality": "US"}))
    everything = net.client.get("/board/rows", headers=root).text
    assert NORTH_UID in everything and US_UID in everything
    only_us = net.client.get("/board/rows?modality=US", headers=root).text
    assert f'<tr data-study-uid="{US_UID}"' in only_us
    assert f'<tr data-study-uid="{NORTH_UID}"' not in only_us
    assert "1 of 3 open" in only_us
    south = net.client.get(f"/board/rows?facility={net.south}&sort=deadline", headers=root).text
    assert f'<tr data-study-uid="{US_UID}"' not in south  # alerts stay, whatever the filter
    page = net.client.get("/board", headers=root).text
    assert 'id="board-view"' in page and "<option>US</option>" in page
