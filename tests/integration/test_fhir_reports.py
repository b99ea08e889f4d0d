"""FHIR DiagnosticReport on a real platform: a study with its order (a ServiceRequest),
held by a radiologist who signs it over /api/reports; the report read and searched
under /fhir/r4 (patient, subject:identifier, based-on, status, date) within the
caller's facilities, drafts invisible to all; and pushed to the facility's FHIR
endpoint, a small HTTP server in this test that accepts, answers 503, refuses with an
OperationOutcome until the message is a dead letter, then accepts it sent again —
the correction, with status corrected, on the same resource id."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome
from tests.fakes.common import Clock
from tests.integration.test_reports_api import PASSWORD, Desk, _reader
from tests.integration.test_reports_api import desk as desk  # the fixture

from telerad.adapters.fhir.diagnostic_report import parsed
from telerad.domain.audit import EventID
from telerad.domain.outbox import Channel, MessageState, Outcome, RetryPolicy
from telerad.services.access_audit import Actor
from telerad.services.outbox import OutboxFilter, OutboxMessage

FHIR_JSON = "application/fhir+json"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
ADMIN = Actor("admin", "network-admin")


def _get(d: Desk, who: str | None, url: str, **params: str) -> httpx.Response:
    headers = {"Accept": FHIR_JSON, **(d.as_(who) if who else {})}
    r: httpx.Response = d.client.get(url, params=params, headers=headers)
    assert r.headers["content-type"].startswith(FHIR_JSON), (r.status_code, r.text)
    return r


def _search(d: Desk, who: str, **params: str) -> list[dict[str, Any]]:
    r = _get(d, who, "/fhir/r4/DiagnosticReport", **params)
    assert r.status_code == 200, r.text
    Bundle.model_validate(r.json())
    return [e["resource"] for e in r.json()["entry"]]


def _order(d: Desk) -> int:
    body = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "identifier": [
            {"type": {"coding": [{"system": V2_0203, "code": "ACSN"}]}, "value": "ACC-R1"},
            {"type": {"coding": [{"system": V2_0203, "code": "PLAC"}]}, "value": "PL-77"},
        ],
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "70450"}]},
        "subject": {"identifier": {"value": "P-1"}, "display": "Doe, Jane"},
    }
    r = d.client.post(
        "/fhir/r4/ServiceRequest",
        content=json.dumps(body),
        headers={"Content-Type": FHIR_JSON, **d.as_("north.tech")},
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _draft(d: Desk) -> dict[str, Any]:
    ana = d.as_("ana")
    report = d.client.post("/api/reports", json={"study_instance_uid": d.uid}, headers=ana).json()
    saved = d.client.put(
        f"/api/reports/{report['id']}",
        json={
            "version": report["version"],
            "sections": {**report["sections"], "impression": "No acute abnormality."},
            "fields": {**report["fields"], "hemorrhage": "absent", "midline-shift": "0"},
        },
        headers=ana,
    )
    assert saved.status_code == 200, saved.text
    result: dict[str, Any] = saved.json()
    return result


def _sign(d: Desk, report: dict[str, Any], final: bool) -> dict[str, Any]:
    signed = d.client.post(
        f"/api/reports/{report['id']}/sign",
        json={"version": report["version"], "final": final, "password": PASSWORD,
              "code": d.code()},
        headers=d.as_("ana"),
    )  # fmt: skip
    assert signed.status_code == 200, signed.text
    result: dict[str, Any] = signed.json()
    return result


def _correct(d: Desk, report: dict[str, Any]) -> dict[str, Any]:
    """Corrected by another radiologist of the facility (without a TOTP code: each of
    ana's codes is taken once, and the server takes one step of drift)."""
    north = d.platform.index.facility_by_name("North")
    assert north is not None
    cleo = _reader(d.platform, "cleo", north.id)
    d.tokens["cleo"] = d.platform.auth.issue_token(cleo)
    fixed = d.client.post(
        f"/api/reports/{report['id']}/corrections",
        json={"version": report["version"], "reason": "the shift was missed",
              "sections": {"impression": "Midline shift of 4 mm."},
              "fields": {"hemorrhage": "absent", "midline-shift": "4"},
              "password": PASSWORD},
        headers=d.as_("cleo"),
    )  # fmt: skip
    assert fixed.status_code == 200, fixed.text
    result: dict[str, Any] = fixed.json()
    return result


def test_signed_reports_are_read_and_searched_within_the_callers_facilities(desk: Desk) -> None:
    d = desk
    order_id = _order(d)
    draft = _draft(d)
    fhir_id = f"telerad-{draft['id']}"
    for who in ("ana", "north.tech"):  # a draft is FHIR-visible to nobody
        assert _get(d, who, f"/fhir/r4/DiagnosticReport/{fhir_id}").status_code == 404
        assert _search(d, who, patient="P-1") == []

    prelim = _sign(d, draft, final=False)
    read = _get(d, "north.tech", f"/fhir/r4/DiagnosticReport/{fhir_id}")
    assert read.status_code == 200, read.text
    dr = read.json()
    parsed(dr)
    assert dr["id"] == fhir_id and dr["status"] == "preliminary"
    assert dr["basedOn"][0]["reference"] == f"http://testserver/fhir/r4/ServiceRequest/{order_id}"
    assert dr["basedOn"][0]["identifier"]["value"] == "PL-77"
    assert dr["code"]["coding"][0]["code"] == "70450"
    assert dr["subject"]["identifier"]["system"] == "urn:telerad:patient:North"
    assert dr["subject"]["identifier"]["value"] == "P-1"
    assert dr["effectiveDateTime"] == "2026-01-01" and dr["conclusion"] == "No acute abnormality."
    study = next(c for c in dr["contained"] if c["resourceType"] == "ImagingStudy")
    assert study["identifier"][0]["value"] == f"urn:oid:{d.uid}"
    coded = {o["code"]["text"]: o for o in dr["contained"] if o["resourceType"] == "Observation"}
    assert coded["Intracranial haemorrhage"]["valueCodeableConcept"]["text"] == "absent"
    assert coded["Midline shift"]["valueQuantity"]["unit"] == "mm"
    reads = [
        r
        for r in d.platform.audit.repository.records()
        if r.event_id == EventID.PROCEDURE_RECORD.code and f"report {draft['id']} " in r.detail
        and r.detail.endswith(": read") and r.actor_id == "north.tech"
    ]  # fmt: skip
    assert len(reads) == 1

    _sign(d, prelim, final=True)
    found = {
        "patient": _search(d, "north.tech", patient="P-1"),
        "patient ref": _search(d, "north.tech", patient="Patient/P-1"),
        "subject:identifier": _search(
            d, "north.tech", **{"subject:identifier": "urn:telerad:patient:North|P-1"}
        ),
        "based-on": _search(d, "north.tech", **{"based-on": f"ServiceRequest/{order_id}"}),
        "status": _search(d, "north.tech", status="final,corrected"),
        "date": _search(d, "north.tech", date="ge2026-01-01", **{"_count": "5"}),
        "month": _search(d, "ana", date="2026-01"),
    }
    for name, entries in found.items():
        assert [(e["id"], e["status"]) for e in entries] == [(fhir_id, "final")], name
    nothing = {
        "another patient": _search(d, "north.tech", patient="P-2"),
        "another system": _search(d, "north.tech", **{"subject:identifier": "urn:x|P-1"}),
        "another order": _search(d, "north.tech", **{"based-on": f"ServiceRequest/{order_id + 9}"}),
        "preliminary": _search(d, "north.tech", status="preliminary"),
        "earlier": _search(d, "north.tech", date="lt2026-01-01"),
        "later": _search(d, "north.tech", date="gt2026-01-01"),
        "another facility": _search(d, "south.tech", patient="P-1"),
        "another's reader": _search(d, "ben"),
    }
    for name, entries in nothing.items():
        assert entries == [], name
    for who in ("south.tech", "ben"):
        assert _get(d, who, f"/fhir/r4/DiagnosticReport/{fhir_id}").status_code == 404
    assert _get(d, "north.tech", "/fhir/r4/DiagnosticReport/12").status_code == 404
    bad = _get(d, "north.tech", "/fhir/r4/DiagnosticReport", status="done")
    assert bad.status_code == 400
    assert OperationOutcome.model_validate(bad.json()).issue[0].code == "value"
    assert _get(d, "north.tech", "/fhir/r4/DiagnosticReport", date="01/02/2026").status_code == 400
    anonymous = _get(d, None, f"/fhir/r4/DiagnosticReport/{fhir_id}")
    assert anonymous.status_code == 401 and anonymous.json()["resourceType"] == "OperationOutcome"


class _Receiver(BaseHTTPRequestHandler):
    """A facility's FHIR server: keeps each request, answers with the next scripted answer."""

    server: _Facility

    def do_PUT(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.received.append((self.path, dict(self.headers), json.loads(body)))
        status, answer = self.server.answers.pop(0) if self.server.answers else (200, {})
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", FHIR_JSON)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


class _Facility(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Receiver)
        self.received: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.answers: list[tuple[int, dict[str, Any]]] = []


@pytest.fixture
def facility_fhir() -> Iterator[_Facility]:
    server = _Facility()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def _fhir_messages(d: Desk) -> list[OutboxMessage]:
    found = d.platform.results.outbox.find(OutboxFilter(channel=Channel.FHIR, limit=100))
    return sorted(found, key=lambda m: m.id)


def test_signatures_are_pushed_to_the_facility_fhir_endpoint(
    desk: Desk, facility_fhir: _Facility
) -> None:
    d, p, server = desk, desk.platform, facility_fhir
    clock = Clock(datetime.now(UTC) + timedelta(minutes=1))  # what is signed now is due
    p.outbox.clock = clock
    p.outbox.policy = RetryPolicy(refusals=2)
    north = p.index.facility_by_name("North")
    assert north is not None
    base = f"http://127.0.0.1:{server.server_address[1]}/fhir"
    p.results.set_endpoint(ADMIN, None, north.id, Channel.FHIR, base, False)
    order_id = _order(d)

    server.answers = [(201, {"resourceType": "DiagnosticReport"})]
    prelim = _sign(d, _draft(d), final=False)
    p.outbox.run()  # (other channels' messages go too)
    fhir_id = f"telerad-{prelim['id']}"
    path, headers, body = server.received[-1]
    assert path == f"/fhir/DiagnosticReport/{fhir_id}"
    assert headers["Content-Type"] == FHIR_JSON
    (first,) = _fhir_messages(d)
    assert headers["X-Request-ID"] == first.message_id and first.state is MessageState.SENT
    parsed(body)
    assert body["id"] == fhir_id and body["status"] == "preliminary"
    assert body["basedOn"][0]["reference"].endswith(f"/fhir/r4/ServiceRequest/{order_id}")

    # The facility's server is down for a while: failed, retried, then accepted.
    server.answers = [(503, {}), (200, {})]
    final = _sign(d, prelim, final=True)
    p.outbox.run()  # (other channels' messages go too)
    second = _fhir_messages(d)[-1]
    assert second.state is MessageState.PENDING and second.attempts == 1
    assert second.refusals == 0 and "HTTP 503" in second.last_error
    clock.after(minutes=1)
    p.outbox.run()  # (other channels' messages go too)
    assert _fhir_messages(d)[-1].state is MessageState.SENT
    assert [b["status"] for _, _, b in server.received] == ["preliminary", "final", "final"]

    # A refusal with an OperationOutcome: refused, and dead after the policy's refusals.
    refusal = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "invalid", "diagnostics": "unknown patient"}],
    }
    server.answers = [(400, refusal), (422, refusal)]
    _correct(d, final)
    p.outbox.run()  # (other channels' messages go too)
    clock.after(minutes=1)
    p.outbox.run()  # (other channels' messages go too)
    third = _fhir_messages(d)[-1]
    assert third.state is MessageState.DEAD and third.refusals == 2
    assert third.last_error == "HTTP 422: unknown patient"
    trace = [
        t for t in p.results.deliveries(ADMIN, None, prelim["id"]) if t.message.channel == "fhir"
    ]
    assert [t.message.report_version for t in trace] == [
        m.report_version for m in (first, second, third)
    ]
    assert [a.outcome for a in trace[2].attempts] == [Outcome.REFUSED, Outcome.REFUSED]
    assert trace[1].attempts[0].outcome is Outcome.FAILED

    # Sent again by an administrator, the correction lands on the same resource.
    server.answers = [(200, {})]
    p.results.retry(ADMIN, None, third.id)
    p.outbox.run()  # (other channels' messages go too)
    assert _fhir_messages(d)[-1].state is MessageState.SENT
    path, _, corrected = server.received[-1]
    assert path == f"/fhir/DiagnosticReport/{fhir_id}"
    parsed(corrected)
    assert corrected["id"] == fhir_id and corrected["status"] == "corrected"
    assert corrected["conclusion"] == "Midline shift of 4 mm."
    shift = next(
        o
        for o in corrected["contained"]
        if o["resourceType"] == "Observation" and o["code"]["text"] == "Midline shift"
    )
    assert shift["status"] == "corrected" and shift["valueQuantity"]["value"] == 4
    exports = [
        r
        for r in p.audit.repository.records()
        if r.event_id == EventID.EXPORT.code and "fhir message" in r.detail
    ]
    assert len(exports) == 4  # three accepted, one dead letter


def test_a_server_that_does_not_answer_in_time_fails_the_attempt() -> None:
    """A server that takes the connection and never answers: failed (retried), not refused."""
    import socket

    from telerad.adapters.fhir.sender import FhirSender
    from telerad.domain.outbox import Endpoint

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        endpoint = Endpoint(1, Channel.FHIR, f"http://127.0.0.1:{port}/fhir")
        payload = json.dumps({"resourceType": "DiagnosticReport", "id": "telerad-1"})
        sent = FhirSender(connect_timeout=1, answer_timeout=0.3).send(endpoint, "m-1", payload)
    assert sent.outcome is Outcome.FAILED and "no answer in time" in sent.detail
    closed = FhirSender(connect_timeout=1, answer_timeout=1).send(endpoint, "m-1", payload)
    assert closed.outcome is Outcome.FAILED and closed.detail.startswith(f"http://127.0.0.1:{port}")


def test_the_capability_statement_offers_diagnostic_report(desk: Desk) -> None:
    from fhir.resources.R4B.capabilitystatement import CapabilityStatement

    r = _get(desk, None, "/fhir/r4/metadata")
    CapabilityStatement.model_validate(r.json())
    (dr,) = [x for x in r.json()["rest"][0]["resource"] if x["type"] == "DiagnosticReport"]
    assert [i["code"] for i in dr["interaction"]] == ["read", "search-type"]
    assert {p["name"] for p in dr["searchParam"]} >= {
        "patient", "subject:identifier", "based-on", "status", "date"
    }  # fmt: skip
