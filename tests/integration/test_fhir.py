"""FHIR R4 ServiceRequest over HTTP: create, read, update, search, metadata, errors, tenancy.

Every response body is parsed with fhir.resources (R4B models, whose ServiceRequest,
Bundle, OperationOutcome and CapabilityStatement are R4's), so a response that is
not valid FHIR fails here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.servicerequest import ServiceRequest

from telerad.bootstrap import Platform, open_platform
from telerad.config import Settings
from telerad.domain.audit import EventID
from telerad.domain.identity import Permission, Role
from telerad.services.people import Administration
from telerad.web.app import create_app

FHIR_JSON = "application/fhir+json"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
CPT = "http://www.ama-assn.org/go/cpt"


@dataclass
class World:
    platform: Platform
    client: TestClient
    tokens: dict[str, str]

    def call(self, who: str | None, method: str, url: str, body: Any = None) -> httpx.Response:
        headers = {"Accept": FHIR_JSON}
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        content = None
        if body is not None:
            headers["Content-Type"] = FHIR_JSON
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
        r = self.client.request(method, url, headers=headers, content=content)
        assert r.headers["content-type"].startswith(FHIR_JSON), (r.status_code, r.text)
        return r


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = tmp_path_factory.mktemp("fhir") / "data"
    platform = open_platform(Settings(data_dir=data, fsync=False))
    admin = Administration(platform.index, platform.auth, platform.audit)
    admin.add_facility("Alpha Hospital", "t")
    admin.add_facility("Beta Clinic", "t")
    users = {
        "tech_a": admin.add_user("tech_a", Role.FACILITY_USER, "t", facility="Alpha Hospital"),
        "tech_b": admin.add_user("tech_b", Role.FACILITY_USER, "t", facility="Beta Clinic"),
        "rad_a": admin.add_user("rad_a", Role.RADIOLOGIST, "t", privileges=["Alpha Hospital"]),
        "svc_a": admin.add_user("svc_a", Role.SERVICE, "t", facility="Alpha Hospital"),
        "admin": admin.add_user("admin", Role.NETWORK_ADMIN, "t"),
        "auditor": admin.add_user("auditor", Role.AUDITOR, "t"),
    }
    tokens = {name: platform.auth.issue_token(user) for name, user in users.items()}
    tokens["ris_a"] = platform.auth.issue_token(
        users["svc_a"], frozenset({Permission.ORDERS_WRITE, Permission.ORDERS_READ})
    )
    with TestClient(create_app(platform)) as client:
        yield World(platform, client, tokens)
    platform.close()


def accession() -> str:
    return "F" + uuid.uuid4().hex[:12].upper()


def service_request(acc: str | None = None, **changes: Any) -> dict[str, Any]:
    sr: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "priority": "routine",
        "identifier": [
            {
                "type": {"coding": [{"system": V2_0203, "code": "ACSN"}]},
                "value": acc or accession(),
            },
            {"type": {"coding": [{"system": V2_0203, "code": "PLAC"}]}, "value": "PL-1"},
        ],
        "contained": [
            {
                "resourceType": "Patient",
                "id": "pat",
                "identifier": [
                    {"type": {"coding": [{"system": V2_0203, "code": "MR"}]}, "value": "MRN-7"}
                ],
                "name": [{"family": "Roe", "given": ["Rita", "Ann"]}],
                "birthDate": "1980-03-04",
                "gender": "female",
            }
        ],
        "subject": {"reference": "#pat"},
        "code": {"coding": [{"system": CPT, "code": "70450", "display": "CT head"}]},
        "reasonCode": [{"text": "headache"}],
        "requester": {"display": "House, Gregory"},
        "occurrenceDateTime": "2030-06-03T09:30:00Z",
    }
    sr.update(changes)
    return sr


def create(w: World, who: str = "tech_a", **changes: Any) -> dict[str, Any]:
    body = {k: v for k, v in service_request(**changes).items() if v is not None}
    r = w.call(who, "POST", "/fhir/r4/ServiceRequest", body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def outcome(r: httpx.Response) -> dict[str, Any]:
    OperationOutcome.model_validate(r.json())
    return dict(r.json()["issue"][0])


def ident(sr: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(
        i for i in sr["identifier"] if i.get("type", {}).get("coding", [{}])[0].get("code") == kind
    )


def test_metadata_is_a_capability_statement(world: World) -> None:
    r = world.call(None, "GET", "/fhir/r4/metadata")  # no sign-in needed
    assert r.status_code == 200
    cs = CapabilityStatement.model_validate(r.json())
    assert cs.fhirVersion == "4.0.1"
    [rest] = r.json()["rest"]
    sr, dr = rest["resource"]
    assert (sr["type"], dr["type"]) == ("ServiceRequest", "DiagnosticReport")
    assert {i["code"] for i in sr["interaction"]} == {"read", "create", "update", "search-type"}
    assert {"identifier", "patient.identifier", "status"} <= {p["name"] for p in sr["searchParam"]}


def test_create_then_read_maps_every_field(world: World) -> None:
    acc = accession()
    r = world.call("tech_a", "POST", "/fhir/r4/ServiceRequest", service_request(acc))
    assert r.status_code == 201, r.text
    created = ServiceRequest.model_validate(r.json())
    assert r.headers["location"].endswith(f"/fhir/r4/ServiceRequest/{created.id}")

    read = world.call("tech_a", "GET", f"/fhir/r4/ServiceRequest/{created.id}")
    assert read.status_code == 200
    ServiceRequest.model_validate(read.json())
    sr = read.json()
    assert sr["status"] == "active" and sr["intent"] == "order" and sr["priority"] == "routine"
    accession_id = ident(sr, "ACSN")
    assert accession_id["value"] == acc
    assert accession_id["system"] == "urn:telerad:accession:Alpha%20Hospital"
    assert ident(sr, "PLAC")["value"] == "PL-1"
    [patient] = sr["contained"]
    assert sr["subject"]["reference"] == "#" + patient["id"]
    assert patient["identifier"][0]["value"] == "MRN-7"
    assert patient["name"] == [{"family": "Roe", "given": ["Rita", "Ann"]}]
    assert patient["birthDate"] == "1980-03-04" and patient["gender"] == "female"
    assert sr["code"]["coding"][0] == {"system": CPT, "code": "70450", "display": "CT head"}
    assert sr["reasonCode"] == [{"text": "headache"}]
    assert sr["requester"] == {"display": "House, Gregory"}
    assert sr["occurrenceDateTime"] == "2030-06-03T09:30:00Z"
    assert sr["orderDetail"][0]["coding"][0]["code"] == "CT"  # from the catalogue

    # The same order over REST, as the RIS placed it.
    order = world.client.get(
        f"/api/orders?accession={acc}",
        headers={"Authorization": f"Bearer {world.tokens['tech_a']}"},
    ).json()
    assert order["id"] == int(created.id or 0)
    assert order["patient"] == {
        "patient_id": "MRN-7",
        "name": "Roe^Rita^Ann",
        "birth_date": "19800304",
        "sex": "F",
    }
    assert order["ordering_physician"] == "House^Gregory"
    assert order["placer_order_number"] == "PL-1"
    assert order["status"] == "ordered" and order["study_instance_uid"] == ""
    records = list(world.platform.audit.repository.records())
    reads = [r for r in records if r.event_id == EventID.ORDER_RECORD.code and r.action == "R"]
    assert any(r.actor_id == "tech_a" and "FHIR" in r.detail for r in reads)


def test_subject_by_identifier_and_stat_trauma_triage(world: World) -> None:
    sr = create(
        world,
        contained=None,
        subject={"identifier": {"value": "MRN-9"}, "display": "Poe, Edgar"},
        priority="stat",
        reasonCode=[{"coding": [{"display": "MVC, polytrauma"}]}],
    )
    assert sr["priority"] == "stat"
    tier = {e["url"].rsplit("/", 1)[1]: e["valueCode"] for e in sr["extension"]}
    assert tier["triage-priority"] == "trauma" and tier["order-status"] == "ordered"
    assert sr["contained"][0]["identifier"][0]["value"] == "MRN-9"
    assert sr["subject"]["display"] == "Poe, Edgar"


def _without_none(sr: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sr.items() if v is not None}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"resourceType": "Patient", "id": "x"}, 400, "structure"),
        (service_request(subject=None), 400, "structure"),
        (service_request(status=None), 400, "structure"),
        (service_request(priority="whenever"), 400, "code-invalid"),
        (service_request(colour="blue"), 400, "structure"),
        (service_request(code=None), 422, "required"),
        (service_request(code={"text": "a CT please"}), 422, "required"),
        (service_request(identifier=[{"value": "NO-TYPE"}]), 422, "required"),
        (service_request(subject={"reference": "Patient/12"}), 422, "required"),
        (service_request(subject={"reference": "#nobody"}), 422, "not-found"),
        (service_request(status="draft"), 422, "business-rule"),
        (service_request(intent="proposal"), 422, "business-rule"),
        (service_request(acc="TOO-LONG-ACCESSION-1"), 422, "value"),
    ],
)
def test_invalid_resources_answer_an_operation_outcome(
    world: World, body: dict[str, Any], status: int, code: str
) -> None:
    r = world.call("tech_a", "POST", "/fhir/r4/ServiceRequest", _without_none(body))
    assert r.status_code == status, r.text
    issue = outcome(r)
    assert issue["code"] == code and issue["severity"] == "error" and issue["diagnostics"]


def test_not_json_and_wrong_media_type(world: World) -> None:
    r = world.call("tech_a", "POST", "/fhir/r4/ServiceRequest", b"{not json")
    assert r.status_code == 400 and outcome(r)["code"] == "structure"
    xml = world.client.post(
        "/fhir/r4/ServiceRequest",
        content=b"<ServiceRequest/>",
        headers={
            "Authorization": f"Bearer {world.tokens['tech_a']}",
            "Content-Type": "application/fhir+xml",
        },
    )
    assert xml.status_code == 415 and outcome(xml)["code"] == "not-supported"


def test_duplicate_accession_is_409(world: World) -> None:
    acc = accession()
    create(world, acc=acc)
    again = world.call("tech_a", "POST", "/fhir/r4/ServiceRequest", service_request(acc))
    assert again.status_code == 409
    issue = outcome(again)
    assert issue["code"] == "duplicate" and acc in issue["diagnostics"]


def test_search_by_identifier_patient_and_status_with_paging(world: World) -> None:
    patient = "MRN-" + uuid.uuid4().hex[:8]
    contained = [{"resourceType": "Patient", "id": "p", "identifier": [{"value": patient}]}]
    made = [
        create(world, contained=contained, subject={"reference": "#p"}, priority="urgent")
        for _ in range(3)
    ]
    acc = ident(made[0], "ACSN")["value"]

    def search(who: str, query: str) -> list[dict[str, Any]]:
        r = world.call(who, "GET", "/fhir/r4/ServiceRequest?" + query)
        assert r.status_code == 200, r.text
        bundle = Bundle.model_validate(r.json())
        assert bundle.type == "searchset"
        return [e["resource"] for e in r.json().get("entry", [])]

    assert [s["id"] for s in search("tech_a", f"identifier={acc}")] == [made[0]["id"]]
    system = "urn:telerad:accession:Alpha%20Hospital"
    assert len(search("tech_a", f"identifier={system}|{acc}")) == 1
    assert len(search("admin", f"identifier={system}|{acc}")) == 1
    other = "urn:telerad:accession:Beta%20Clinic"
    assert search("admin", f"identifier={other}|{acc}") == []
    ids = [s["id"] for s in made]
    assert [s["id"] for s in search("tech_a", f"patient.identifier={patient}")] == ids
    assert [s["id"] for s in search("rad_a", f"patient.identifier=x|{patient}")] == ids
    assert search("tech_a", f"patient.identifier={patient}&status=revoked") == []
    assert len(search("tech_a", f"patient.identifier={patient}&status=active")) == 3

    page = world.call(
        "tech_a", "GET", f"/fhir/r4/ServiceRequest?patient.identifier={patient}&_count=2"
    )
    links = {link["relation"]: link["url"] for link in page.json()["link"]}
    assert len(page.json()["entry"]) == 2 and "next" in links
    rest = world.call("tech_a", "GET", links["next"].split("testserver", 1)[1])
    assert [e["resource"]["id"] for e in rest.json()["entry"]] == ids[2:]
    assert "next" not in {link["relation"] for link in rest.json()["link"]}
    bad = world.call("tech_a", "GET", "/fhir/r4/ServiceRequest?status=lost")
    assert bad.status_code == 400 and outcome(bad)["code"] == "value"


def test_update_revises_and_revoked_cancels(world: World) -> None:
    sr = create(world)
    url = f"/fhir/r4/ServiceRequest/{sr['id']}"
    changed = {**sr, "priority": "urgent", "reasonCode": [{"text": "worse"}]}
    r = world.call("tech_a", "PUT", url, changed)
    assert r.status_code == 200, r.text
    ServiceRequest.model_validate(r.json())
    assert r.json()["priority"] == "urgent" and r.json()["reasonCode"] == [{"text": "worse"}]
    wrong_id = world.call("tech_a", "PUT", url, {**changed, "id": "999"})
    assert wrong_id.status_code == 400
    new_acc = [{"type": {"coding": [{"system": V2_0203, "code": "ACSN"}]}, "value": accession()}]
    assert world.call("tech_a", "PUT", url, {**changed, "identifier": new_acc}).status_code == 422

    revoked = world.call("tech_a", "PUT", url, {**changed, "status": "revoked"})
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    again = world.call("tech_a", "PUT", url, changed)
    assert again.status_code == 409 and outcome(again)["code"] == "conflict"


def test_permissions_and_sign_in(world: World) -> None:
    sr = create(world, who="ris_a")  # a RIS with a scoped service token
    url = f"/fhir/r4/ServiceRequest/{sr['id']}"
    anonymous = world.call(None, "GET", url)
    assert anonymous.status_code == 401 and outcome(anonymous)["code"] == "login"
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert world.call("rad_a", "GET", url).status_code == 200
    denied = world.call("rad_a", "POST", "/fhir/r4/ServiceRequest", service_request())
    assert denied.status_code == 403 and outcome(denied)["code"] == "forbidden"
    assert world.call("auditor", "GET", url).status_code == 403


def test_facility_from_tag_or_accession_system_for_network_accounts(world: World) -> None:
    unnamed = world.call("admin", "POST", "/fhir/r4/ServiceRequest", service_request())
    assert unnamed.status_code == 422 and outcome(unnamed)["code"] == "required"
    tagged = create(
        world,
        who="admin",
        meta={"tag": [{"system": "urn:telerad:facility", "code": "Beta Clinic"}]},
    )
    assert tagged["meta"]["tag"][0]["code"] == "Beta Clinic"
    acc = accession()
    by_system = create(
        world,
        who="admin",
        identifier=[
            {
                "type": {"coding": [{"system": V2_0203, "code": "ACSN"}]},
                "system": "urn:telerad:accession:Beta%20Clinic",
                "value": acc,
            }
        ],
    )
    assert ident(by_system, "ACSN")["system"].endswith("Beta%20Clinic")


def test_beta_cannot_tell_alphas_requests_exist(world: World) -> None:
    sr = create(world)
    acc = ident(sr, "ACSN")["value"]
    for method, body in (("GET", None), ("PUT", {**sr})):
        hidden = world.call("tech_b", method, f"/fhir/r4/ServiceRequest/{sr['id']}", body)
        missing_body = {**sr, "id": "99999999"} if body else None
        missing = world.call("tech_b", method, "/fhir/r4/ServiceRequest/99999999", missing_body)
        assert hidden.status_code == missing.status_code == 404
        assert outcome(hidden)["diagnostics"].replace(sr["id"], "N") == outcome(missing)[
            "diagnostics"
        ].replace("99999999", "N")
    found = world.call("tech_b", "GET", f"/fhir/r4/ServiceRequest?identifier={acc}")
    assert found.json().get("entry", []) == []
    tag = {"tag": [{"system": "urn:telerad:facility", "code": "Alpha Hospital"}]}
    there = world.call("tech_b", "POST", "/fhir/r4/ServiceRequest", service_request(meta=tag))
    tag["tag"][0]["code"] = "Nowhere"
    nowhere = world.call("tech_b", "POST", "/fhir/r4/ServiceRequest", service_request(meta=tag))
    assert there.status_code == nowhere.status_code == 422
    assert outcome(there)["diagnostics"].replace("Alpha Hospital", "X") == outcome(nowhere)[
        "diagnostics"
    ].replace("Nowhere", "X")
    # And Alpha's request is untouched.
    assert world.call("tech_a", "GET", f"/fhir/r4/ServiceRequest/{sr['id']}").json() == sr
