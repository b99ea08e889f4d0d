"""Orders, stations and slots over REST: every route, its errors, and cross-tenant probes.

Alpha's staff place and schedule orders; Beta's staff probe them by id, accession,
facility name and slot id, and must get the answer they would get for something
that does not exist at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from tests.conftest import run_cli

from telerad.bootstrap import Platform, open_platform
from telerad.config import Settings
from telerad.domain.audit import EventID
from telerad.domain.identity import Permission, Role
from telerad.domain.orders import Order, PatientDemographics
from telerad.services.orders import Origin
from telerad.services.people import Administration
from telerad.web.app import create_app


@dataclass
class World:
    platform: Platform
    client: TestClient
    tokens: dict[str, str]

    def call(self, who: str, method: str, url: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return self.client.request(method, url, headers=headers, **kw)

    def get(self, who: str, url: str, **kw: Any) -> httpx.Response:
        return self.call(who, "GET", url, **kw)

    def post(self, who: str, url: str, body: Any = None) -> httpx.Response:
        return self.call(who, "POST", url, json=body)

    def put(self, who: str, url: str, body: Any) -> httpx.Response:
        return self.call(who, "PUT", url, json=body)


def accession() -> str:
    return "A" + uuid.uuid4().hex[:12].upper()


def order_body(acc: str | None = None, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "accession_number": acc or accession(),
        "patient": {
            "patient_id": "PID-1",
            "name": "DOE^JANE",
            "birth_date": "19700102",
            "sex": "F",
        },
        "procedure": {"code": "70450"},
        "priority": "routine",
        "reason": "headache",
        "ordering_physician": "HOUSE^GREGORY",
    }
    body.update(changes)
    return body


def make_world(platform: Platform) -> Iterator[World]:
    admin = Administration(platform.index, platform.auth, platform.audit)
    admin.add_facility("Alpha Hospital", "t")
    admin.add_facility("Beta Clinic", "t")
    users = {
        "tech_a": admin.add_user("tech_a", Role.FACILITY_USER, "t", facility="Alpha Hospital"),
        "fadmin_a": admin.add_user("fadmin_a", Role.FACILITY_ADMIN, "t", facility="Alpha Hospital"),
        "tech_b": admin.add_user("tech_b", Role.FACILITY_USER, "t", facility="Beta Clinic"),
        "rad_a": admin.add_user("rad_a", Role.RADIOLOGIST, "t", privileges=["Alpha Hospital"]),
        "svc_a": admin.add_user("svc_a", Role.SERVICE, "t", facility="Alpha Hospital"),
        "admin": admin.add_user("admin", Role.NETWORK_ADMIN, "t"),
        "auditor": admin.add_user("auditor", Role.AUDITOR, "t"),
    }
    auth = platform.auth
    tokens = {name: auth.issue_token(user) for name, user in users.items()}
    # A RIS integration: a service account whose token may only write orders.
    tokens["ris_a"] = auth.issue_token(users["svc_a"], frozenset({Permission.ORDERS_WRITE}))
    tokens["pacs_a"] = auth.issue_token(users["svc_a"], frozenset({Permission.READ}))
    with TestClient(create_app(platform)) as client:
        yield World(platform, client, tokens)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One platform for the module: tests use their own accessions, patients and AEs."""
    data = tmp_path_factory.mktemp("orders") / "data"
    platform = open_platform(Settings(data_dir=data, fsync=False))
    yield from make_world(platform)
    platform.close()


def place(w: World, who: str = "tech_a", **changes: Any) -> dict[str, Any]:
    r = w.post(who, "/api/orders", order_body(**changes))
    assert r.status_code == 201, r.text
    return dict(r.json())


# -- orders ---------------------------------------------------------------------------
def test_place_then_find_by_accession_with_status_and_empty_study_uid(world: World) -> None:
    acc = accession()
    r = world.post("tech_a", "/api/orders", order_body(acc))
    assert r.status_code == 201, r.text
    created = r.json()
    assert r.headers["location"] == f"/api/orders/{created['id']}"
    assert created["facility"] == "Alpha Hospital"
    # The catalogue fills in what the code means.
    assert created["procedure"]["modality"] == "CT"
    assert created["procedure"]["rvu"] == pytest.approx(0.85)
    assert created["procedure"]["subspecialty"] == "neuro"

    found = world.get("tech_a", f"/api/orders?accession={acc}")
    assert found.status_code == 200
    order = found.json()  # a lookup by accession answers the order itself
    assert order["status"] == "ordered"
    assert order["study_instance_uid"] == ""
    assert order["accession_number"] == acc and order["id"] == created["id"]

    detail = world.get("tech_a", f"/api/orders/{created['id']}").json()
    assert [(h["event"], h["source"]) for h in detail["history"]] == [("placed", "REST")]
    assert "tech_a" in detail["history"][0]["detail"]


def test_reads_and_writes_are_audited(world: World) -> None:
    order = place(world)
    world.get("tech_a", f"/api/orders/{order['id']}")
    world.get("tech_a", f"/api/orders?accession={order['accession_number']}")
    records = list(world.platform.audit.repository.records())
    mine = [r for r in records if r.event_id == EventID.ORDER_RECORD.code]
    assert {(r.action, r.actor_id) for r in mine} >= {("C", "tech_a"), ("R", "tech_a")}
    read = next(r for r in mine if r.action == "R")
    assert read.patient_id == "PID-1" and read.facility == "Alpha Hospital"
    queries = [r for r in records if r.event_id == EventID.QUERY.code]
    assert any(order["accession_number"] in r.detail for r in queries)


def test_duplicate_accession_is_409_with_the_reason(world: World) -> None:
    acc = accession()
    place(world, acc=acc)
    again = world.post("tech_a", "/api/orders", order_body(acc))
    assert again.status_code == 409
    assert acc in again.json()["detail"] and "already" in again.json()["detail"]
    # Accession numbers are per facility: Beta may use the same one.
    assert world.post("tech_b", "/api/orders", order_body(acc)).status_code == 201


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"accession_number": "X" * 17}, "accession_number"),
        ({"accession_number": "A\\B"}, "accession_number"),
        ({"patient": {"patient_id": ""}}, "patient_id"),
        ({"patient": {"patient_id": "P", "birth_date": "1970-01-02"}}, "birth_date"),
        ({"patient": {"patient_id": "P", "sex": "X"}}, "sex"),
        ({"procedure": {"code": "C" * 65}}, "code"),
        ({"priority": "whenever"}, "priority"),
        ({"requested_study_uid": "not.a.uid"}, "requested_study_uid"),
        ({"scheduled_at": "2030-01-01T10:00:00"}, "scheduled_at"),  # no time zone
        ({"colour": "blue"}, "colour"),
    ],
)
def test_invalid_bodies_are_422_naming_the_field(
    world: World, change: dict[str, Any], field: str
) -> None:
    r = world.post("tech_a", "/api/orders", order_body(**change))
    assert r.status_code == 422, r.text
    assert any(field in error["loc"] for error in r.json()["detail"]), r.json()


def test_missing_procedure_is_422(world: World) -> None:
    body = order_body()
    del body["procedure"]
    r = world.post("tech_a", "/api/orders", body)
    assert r.status_code == 422
    assert any("procedure" in e["loc"] for e in r.json()["detail"])


def test_stat_stroke_reason_is_lifted_to_the_stroke_tier(world: World) -> None:
    order = place(world, priority="stat", reason="code stroke, left hemiparesis")
    assert order["priority"] == "stroke"
    follow_up = place(world, priority="routine", reason="history of stroke")
    assert follow_up["priority"] == "routine"


def test_unknown_code_takes_the_modality_and_its_rvu(world: World) -> None:
    order = place(world, procedure={"code": "LOCAL-77", "modality": "mr", "description": "x"})
    assert order["procedure"]["modality"] == "MR"
    assert order["procedure"]["rvu"] == pytest.approx(1.5)  # modality_rvu.MR


def test_revise_and_cancel(world: World) -> None:
    order = place(world)
    url = f"/api/orders/{order['id']}"
    body = order_body(order["accession_number"], priority="urgent", reason="worse headache")
    revised = world.put("tech_a", url, body)
    assert revised.status_code == 200, revised.text
    assert revised.json()["priority"] == "urgent" and revised.json()["reason"] == "worse headache"
    moved = world.put("tech_a", url, order_body(accession()))
    assert moved.status_code == 422 and "accession" in moved.json()["detail"]
    elsewhere = world.put("admin", url, {**body, "facility": "Beta Clinic"})
    assert elsewhere.status_code == 422

    cancelled = world.post("tech_a", f"{url}/cancel", {"reason": "patient declined"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = world.post("tech_a", f"{url}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]
    assert world.put("tech_a", url, body).status_code == 409
    history = world.get("tech_a", url).json()["history"]
    assert [h["event"] for h in history] == ["placed", "revised", "cancelled"]
    assert "patient declined" in history[-1]["detail"]


def test_list_filters_and_paging(world: World) -> None:
    ct = [place(world, patient={"patient_id": "LIST-1"}) for _ in range(3)]
    mr = place(world, patient={"patient_id": "LIST-1"}, procedure={"code": "70551"})
    world.post("tech_a", f"/api/orders/{ct[0]['id']}/cancel")

    def ids(query: str) -> list[int]:
        r = world.get("tech_a", "/api/orders?" + query)
        assert r.status_code == 200, r.text
        return [o["id"] for o in r.json()]

    everyone = [o["id"] for o in (*ct, mr)]
    assert ids("patient_id=LIST-1") == everyone
    assert ids("patient_id=LIST-1&modality=mr") == [mr["id"]]
    assert ids("patient_id=LIST-1&status=cancelled") == [ct[0]["id"]]
    assert ids("patient_id=LIST-1&status=ordered&status=cancelled") == everyone
    assert ids("patient_id=LIST-1&limit=2") == everyone[:2]
    assert ids("patient_id=LIST-1&limit=2&offset=2") == everyone[2:]
    assert world.get("tech_a", "/api/orders?status=lost").status_code == 422
    assert world.get("tech_a", "/api/orders?limit=0").status_code == 422


# -- permissions ------------------------------------------------------------------------
def test_who_may_read_and_write(world: World) -> None:
    order = place(world)
    url = f"/api/orders/{order['id']}"
    assert world.get("rad_a", url).status_code == 200  # reads where privileged
    assert world.post("rad_a", "/api/orders", order_body()).status_code == 403
    assert world.get("auditor", url).status_code == 403  # no patient data
    assert world.get("auditor", "/api/orders").status_code == 403
    assert world.post("fadmin_a", "/api/orders", order_body()).status_code == 201
    assert world.client.get(url).status_code == 401


def test_a_ris_posts_orders_with_a_scoped_service_token(world: World) -> None:
    r = world.post("ris_a", "/api/orders", order_body())
    assert r.status_code == 201, r.text
    assert r.json()["facility"] == "Alpha Hospital"
    assert world.get("ris_a", f"/api/orders/{r.json()['id']}").status_code == 403  # write only
    refused = world.post("pacs_a", "/api/orders", order_body())
    assert refused.status_code == 403 and "orders:write" in refused.json()["detail"]


def test_network_admin_names_the_facility(world: World) -> None:
    r = world.post("admin", "/api/orders", order_body())
    assert r.status_code == 422 and "facility" in r.json()["detail"]
    named = world.post("admin", "/api/orders", order_body(facility="Beta Clinic"))
    assert named.status_code == 201 and named.json()["facility"] == "Beta Clinic"
    assert world.post("admin", "/api/orders", order_body(facility="Nowhere")).status_code == 422


def test_an_accession_at_two_facilities_needs_the_facility_named(world: World) -> None:
    acc = place(world)["accession_number"]
    world.post("admin", "/api/orders", order_body(acc, facility="Beta Clinic"))
    both = world.get("admin", f"/api/orders?accession={acc}")
    assert both.status_code == 409 and "facility=" in both.json()["detail"]
    named = world.get("admin", f"/api/orders?accession={acc}&facility=Beta%20Clinic")
    assert named.status_code == 200 and named.json()["facility"] == "Beta Clinic"
    assert (
        world.get("tech_a", f"/api/orders?accession={acc}").json()["facility"] == "Alpha Hospital"
    )


# -- cross-tenant probes ----------------------------------------------------------------
def test_beta_cannot_tell_alphas_orders_exist(world: World) -> None:
    alpha = place(world)
    hidden, missing = alpha["id"], 10_000_000
    body = order_body(alpha["accession_number"])
    for method, suffix, payload in (
        ("GET", "", None),
        ("PUT", "", body),
        ("POST", "/cancel", None),
        ("POST", "/schedule", {"slot_id": 1}),
    ):
        a = world.call("tech_b", method, f"/api/orders/{hidden}{suffix}", json=payload)
        b = world.call("tech_b", method, f"/api/orders/{missing}{suffix}", json=payload)
        assert a.status_code == b.status_code == 404, (method, suffix)
        assert a.json() == b.json()
    acc = alpha["accession_number"]
    hidden_acc = world.get("tech_b", f"/api/orders?accession={acc}")
    missing_acc = world.get("tech_b", "/api/orders?accession=NO-SUCH")
    assert hidden_acc.status_code == missing_acc.status_code == 404
    assert hidden_acc.json() == missing_acc.json()
    assert world.get("tech_b", "/api/orders?facility=Alpha%20Hospital").json() == []
    assert all(o["facility"] == "Beta Clinic" for o in world.get("tech_b", "/api/orders").json())
    there = world.post("tech_b", "/api/orders", order_body(facility="Alpha Hospital"))
    nowhere = world.post("tech_b", "/api/orders", order_body(facility="Nowhere"))
    assert there.status_code == nowhere.status_code == 422
    assert there.json()["detail"].replace("Alpha Hospital", "X") == nowhere.json()[
        "detail"
    ].replace("Nowhere", "X")
    # Nothing changed at Alpha.
    assert world.get("tech_a", f"/api/orders/{hidden}").json()["status"] == "ordered"


# -- stations, slots and appointments ---------------------------------------------------
def open_day(w: World, ae: str, modality: str = "CT", who: str = "tech_a") -> list[dict[str, Any]]:
    assert w.post(who, "/api/stations", {"ae_title": ae, "modality": modality}).status_code == 201
    opened = w.post(
        who, f"/api/stations/{ae}/slots", {"date": "2030-06-03", "start": "08:00", "end": "10:00"}
    )
    assert opened.status_code == 201, opened.text
    slots = w.get(who, f"/api/stations/{ae}/slots?date=2030-06-03")
    assert slots.status_code == 200
    return list(slots.json())


def test_stations_are_per_facility(world: World) -> None:
    r = world.post(
        "tech_a", "/api/stations", {"ae_title": "CT_A", "modality": "ct", "name": "CT 1"}
    )
    assert r.status_code == 201
    assert r.json() == {
        "ae_title": "CT_A",
        "modality": "CT",
        "name": "CT 1",
        "facility": "Alpha Hospital",
    }
    taken = world.post("fadmin_a", "/api/stations", {"ae_title": "CT_A", "modality": "CT"})
    assert taken.status_code == 409 and "CT_A" in taken.json()["detail"]
    bad = world.post("tech_a", "/api/stations", {"ae_title": "CT\\A", "modality": "CT"})
    assert bad.status_code == 422
    alphas = world.get("tech_a", "/api/stations").json()
    assert "CT_A" in [s["ae_title"] for s in alphas]
    assert {s["facility"] for s in alphas} == {"Alpha Hospital"}
    assert "CT_A" not in [s["ae_title"] for s in world.get("tech_b", "/api/stations").json()]
    assert "CT_A" in [s["ae_title"] for s in world.get("admin", "/api/stations").json()]
    assert world.get("rad_a", "/api/stations").status_code == 200
    assert (
        world.post("rad_a", "/api/stations", {"ae_title": "X", "modality": "CT"}).status_code == 403
    )
    # Beta cannot see or fill Alpha's station.
    for method, body in (("GET", None), ("POST", {"date": "2030-06-03"})):
        a = world.call("tech_b", method, "/api/stations/CT_A/slots?date=2030-06-03", json=body)
        b = world.call("tech_b", method, "/api/stations/NOPE/slots?date=2030-06-03", json=body)
        assert a.status_code == b.status_code == 404 and a.json() == b.json()


def test_slots_open_for_a_day_or_a_range_in_a_time_zone(world: World) -> None:
    slots = open_day(world, "CT_Z")
    assert len(slots) == 4 and not any(s["booked"] for s in slots)
    assert (
        slots[0]["start"] == "2030-06-03T08:00:00Z" and slots[-1]["end"] == "2030-06-03T10:00:00Z"
    )
    again = world.post("tech_a", "/api/stations/CT_Z/slots", {"date": "2030-06-03", "end": "10:00"})
    assert again.json() == {"station": "CT_Z", "added": 0, "requested": 4}
    # Two days in New York: 08:00 EDT is 12:00 UTC.
    ny = world.post(
        "tech_a",
        "/api/stations/CT_Z/slots",
        {
            "date": "2030-06-04",
            "until": "2030-06-05",
            "start": "08:00",
            "end": "09:00",
            "minutes": 20,
            "timezone": "America/New_York",
        },
    )
    assert ny.json()["added"] == 6
    local = world.get(
        "tech_a", "/api/stations/CT_Z/slots?date=2030-06-05&timezone=America/New_York"
    )
    assert [s["start"] for s in local.json()] == [
        "2030-06-05T12:00:00Z",
        "2030-06-05T12:20:00Z",
        "2030-06-05T12:40:00Z",
    ]
    for body in (
        {"date": "2030-06-03", "timezone": "Mars/Olympus"},
        {"date": "2030-06-03", "start": "10:00", "end": "09:00"},
        {"date": "2030-06-03", "until": "2030-08-01"},
        {"date": "2030-06-03", "minutes": 2},
    ):
        assert world.post("tech_a", "/api/stations/CT_Z/slots", body).status_code == 422, body


def test_book_refuse_double_booking_and_modality_mismatch_cancel_frees(world: World) -> None:
    slots = open_day(world, "CT_S")
    first, second = place(world), place(world)
    booked = world.post(
        "tech_a", f"/api/orders/{first['id']}/schedule", {"slot_id": slots[0]["id"]}
    )
    assert booked.status_code == 200, booked.text
    assert booked.json()["status"] == "scheduled"
    assert booked.json()["station_ae"] == "CT_S"
    assert booked.json()["scheduled_at"] == slots[0]["start"]
    now = world.get("tech_a", "/api/stations/CT_S/slots?date=2030-06-03").json()
    assert now[0]["booked"] and now[0]["order_id"] == first["id"]

    twice = world.post(
        "tech_a", f"/api/orders/{second['id']}/schedule", {"slot_id": slots[0]["id"]}
    )
    assert twice.status_code == 409 and "already booked" in twice.json()["detail"]
    mr = place(world, procedure={"code": "70551"})  # an MR brain
    wrong = world.post("tech_a", f"/api/orders/{mr['id']}/schedule", {"slot_id": slots[1]["id"]})
    assert wrong.status_code == 409 and "MR" in wrong.json()["detail"]
    missing = world.post("tech_a", f"/api/orders/{second['id']}/schedule", {"slot_id": 999_999})
    assert missing.status_code == 422

    # Rescheduling moves the booking; cancelling frees the slot.
    moved = world.post("tech_a", f"/api/orders/{first['id']}/schedule", {"slot_id": slots[1]["id"]})
    assert moved.status_code == 200 and moved.json()["scheduled_at"] == slots[1]["start"]
    world.post("tech_a", f"/api/orders/{first['id']}/cancel")
    after = world.get("tech_a", "/api/stations/CT_S/slots?date=2030-06-03").json()
    assert not any(s["booked"] for s in after)
    assert (
        world.post(
            "tech_a", f"/api/orders/{second['id']}/schedule", {"slot_id": slots[1]["id"]}
        ).json()["status"]
        == "scheduled"
    )
    scheduled = world.get("tech_a", "/api/orders?station=CT_S&status=scheduled").json()
    assert [o["id"] for o in scheduled] == [second["id"]]
    day = world.get(
        "tech_a", "/api/orders?status=scheduled&scheduled_from=2030-06-03&scheduled_to=2030-06-04"
    ).json()
    assert [o["id"] for o in day] == [second["id"]]
    assert world.get("tech_a", "/api/orders?scheduled_from=2030-06-04").json() == []


def test_beta_cannot_book_alphas_slots(world: World) -> None:
    slots = open_day(world, "CT_X")
    beta_order = place(world, who="tech_b")
    url = f"/api/orders/{beta_order['id']}/schedule"
    there = world.post("tech_b", url, {"slot_id": slots[0]["id"]})
    nowhere = world.post("tech_b", url, {"slot_id": 999_999})
    assert there.status_code == nowhere.status_code == 422
    assert there.json()["detail"].split()[0] == nowhere.json()["detail"].split()[0] == "slot"
    assert there.json()["detail"].replace(str(slots[0]["id"]), "N") == nowhere.json()[
        "detail"
    ].replace("999999", "N")
    # Even a network admin cannot book Beta's order onto Alpha's station.
    assert world.post("admin", url, {"slot_id": slots[0]["id"]}).status_code == 422
    assert not world.get("tech_a", "/api/stations/CT_X/slots?date=2030-06-03").json()[0]["booked"]


def test_openapi_lists_the_order_routes(world: World) -> None:
    paths = world.client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/orders",
        "/api/orders/{order_id}",
        "/api/orders/{order_id}/cancel",
        "/api/orders/{order_id}/schedule",
        "/api/stations",
        "/api/stations/{ae}/slots",
        "/fhir/r4/ServiceRequest",
        "/fhir/r4/ServiceRequest/{sr_id}",
        "/fhir/r4/metadata",
    ):
        assert path in paths, path
    assert set(paths["/api/orders"]) == {"get", "post"}


# -- PostgreSQL ---------------------------------------------------------------------------
@pytest.mark.postgres
def test_orders_api_on_postgresql(pg_platform: Platform) -> None:
    """The same flow on PostgreSQL, with values at the columns' limits."""
    for w in make_world(pg_platform):
        long = order_body(
            "Z" * 16,
            patient={
                "patient_id": "P" * 64,
                "name": "N" * 324,
                "birth_date": "19991231",
                "sex": "O",
            },
            procedure={"code": "C" * 64, "description": "D" * 128, "modality": "CT"},
            placer_order_number="L" * 64,
            ordering_physician="Q" * 324,
            requested_study_uid="1." + "2" * 62,
            scheduled_at=datetime(2030, 6, 3, 9, tzinfo=UTC).isoformat(),
        )
        r = w.post("tech_a", "/api/orders", long)
        assert r.status_code == 201, r.text
        order = r.json()
        assert w.post("tech_a", "/api/orders", long).status_code == 409
        found = w.get("tech_a", "/api/orders?accession=" + "Z" * 16).json()
        assert found["patient"]["patient_id"] == "P" * 64 and found["study_instance_uid"] == ""
        assert found["scheduled_at"] == "2030-06-03T09:00:00Z"
        slots = open_day(w, "PG_CT")
        ok = w.post("tech_a", f"/api/orders/{order['id']}/schedule", {"slot_id": slots[2]["id"]})
        assert ok.status_code == 200 and ok.json()["scheduled_at"] == "2030-06-03T09:00:00Z"
        other = place(w)
        clash = w.post("tech_a", f"/api/orders/{other['id']}/schedule", {"slot_id": slots[2]["id"]})
        assert clash.status_code == 409
        assert w.get("tech_b", f"/api/orders/{order['id']}").status_code == 404
        w.post("tech_a", f"/api/orders/{order['id']}/cancel")
        assert not any(
            s["booked"] for s in w.get("tech_a", "/api/stations/PG_CT/slots?date=2030-06-03").json()
        )
        window = w.get(
            "tech_a",
            "/api/orders?scheduled_from=2030-06-03T08:30:00Z&scheduled_to=2030-06-03T09:30:00Z",
        )
        assert [o["id"] for o in window.json()] == [order["id"]]


# -- command line -----------------------------------------------------------------------
telerad = run_cli


def test_cli_stations_slots_and_orders(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert telerad(data, "facility", "add", "Gamma Imaging").returncode == 0
    added = telerad(
        data, "station", "add", "GCT1", "--facility", "Gamma Imaging", "--modality", "ct"
    )
    assert added.returncode == 0, added.stderr
    assert "GCT1 (CT)" in added.stdout
    taken = telerad(
        data, "station", "add", "GCT1", "--facility", "Gamma Imaging", "--modality", "CT"
    )
    assert taken.returncode == 2 and "already registered" in taken.stderr
    unknown = telerad(data, "station", "add", "X", "--facility", "Nowhere", "--modality", "CT")
    assert unknown.returncode == 2 and "no facility named Nowhere" in unknown.stderr

    opened = telerad(
        data, "slots", "open", "GCT1", "--date", "2030-06-03", "--from", "08:00", "--to", "09:00",
        "--minutes", "15", "--tz", "Europe/Berlin",
    )  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    assert "4 slot(s) of 15 min opened on GCT1" in opened.stdout
    again = telerad(
        data, "slots", "open", "GCT1", "--date", "2030-06-03", "--to", "09:00", "--minutes", "15",
        "--tz", "Europe/Berlin",
    )  # fmt: skip
    assert "0 slot(s)" in again.stdout and "(4 already open)" in again.stdout
    bad = telerad(data, "slots", "open", "GCT1", "--date", "2030-06-03", "--tz", "Mars/Base")
    assert bad.returncode == 2 and "time zone" in bad.stderr

    platform = open_platform(Settings(data_dir=data, fsync=False))
    try:
        gamma = platform.index.facility_by_name("Gamma Imaging")
        assert gamma is not None
        order = platform.orders.place(
            Order(
                gamma.id,
                "CLI-ACC-1",
                PatientDemographics("CLI-P", "SECRET^NAME"),
                platform.orders.catalogue.resolve("70450"),
            ),
            Origin("test", "pytest"),
        )
        slot = platform.orders.store.slots(
            platform.orders.store.stations()[0].id,
            datetime(2030, 6, 3, tzinfo=UTC),
            datetime(2030, 6, 4, tzinfo=UTC),
        )[0]
        assert order.id is not None
    finally:
        platform.close()
    listed = telerad(data, "slots", "list", "GCT1", "--date", "2030-06-03", "--tz", "Europe/Berlin")
    assert listed.returncode == 0 and "08:45" in listed.stdout and "free" in listed.stdout
    assert str(slot.id) in listed.stdout

    orders = telerad(data, "order", "list", "--facility", "Gamma Imaging", "--status", "ordered")
    assert orders.returncode == 0, orders.stderr
    assert "CLI-ACC-1" in orders.stdout and "1 order(s)" in orders.stdout
    assert "SECRET" not in orders.stdout  # identifiers only, no names
    none = telerad(data, "order", "list", "--status", "cancelled")
    assert "CLI-ACC-1" not in none.stdout and "0 order(s)" in none.stdout
