"""The outbox's rules over fakes: the retry policy, endpoint addresses, the worker
(in order per facility, claims, what each outcome does, audit) and the results
service (scope, audit, retry)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from tests.fakes.audit import FakeAuditRepository
from tests.fakes.common import Clock
from tests.fakes.outbox import FakeEndpoints, FakeOutbox
from tests.fakes.reports import FakeReports

from telerad.domain import reports as r
from telerad.domain.audit import EventID
from telerad.domain.outbox import (
    Channel,
    Delivery,
    Endpoint,
    MessageState,
    OutboxError,
    Outcome,
    RetryPolicy,
    host_port,
)
from telerad.domain.reports import Content, Report
from telerad.services.access_audit import Actor
from telerad.services.audit import AuditService
from telerad.services.outbox import Announcing, OutboxFilter, OutboxWorker, combined
from telerad.services.reports import Outgoing, ReportFacts
from telerad.services.results import NotFound, ResultsService

T0 = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
ADMIN = Actor("admin", "network-admin", source="10.0.0.1")


@dataclass
class Peer:
    """A sender that answers from a script (then accepts) and notes what it was sent."""

    script: list[Outcome] = field(default_factory=list)
    sent: list[tuple[int, str]] = field(default_factory=list)

    def send(self, endpoint: Endpoint, message_id: str, payload: str) -> Delivery:
        self.sent.append((endpoint.facility_id, message_id))
        outcome = self.script.pop(0) if self.script else Outcome.ACCEPTED
        return Delivery(outcome, outcome.value, "MSA|AA" if outcome is Outcome.ACCEPTED else "")


@dataclass
class World:
    reports: FakeReports
    outbox: FakeOutbox
    endpoints: FakeEndpoints
    audit: AuditService
    peer: Peer
    worker: OutboxWorker
    results: ResultsService
    clock: Clock


@pytest.fixture
def world() -> World:
    clock = Clock(T0)
    reports = FakeReports()
    outbox = FakeOutbox().attach(reports)
    endpoints = FakeEndpoints()
    for facility in (1, 2):
        endpoints.put(Endpoint(facility, Channel.HL7, f"ris{facility}:2575"))
    audit = AuditService(FakeAuditRepository(clock))
    peer = Peer()
    worker = OutboxWorker(outbox, endpoints, {Channel.HL7: peer}, audit, clock=clock, threads=1)
    names = {1: "North", 2: "South"}
    results = ResultsService(outbox, endpoints, audit, names.get, clock, worker.wake)
    return World(reports, outbox, endpoints, audit, peer, worker, results, clock)


def _queue(w: World, facility: int, n: int) -> str:
    content = Content("ct-head", "1", {"impression": "No bleed."})
    stored = w.reports.add(r.new_report(f"1.2.{n}", facility, f"A{n}", content, 7, "N", T0), "P")
    final = r.sign(stored, True, 1, 7, "N", w.clock.now)
    w.reports.write(final, 1, [Outgoing("hl7", f"m{n}", f"MSH|{n}", w.clock.now)])
    return f"m{n}"


def test_waits_double_up_to_the_longest_and_give_up_by_refusals_or_age() -> None:
    policy = RetryPolicy(timedelta(seconds=2), timedelta(minutes=5), refusals=3)
    assert [policy.wait(n).total_seconds() for n in (1, 2, 3, 8, 9, 100)] == [
        2,
        4,
        8,
        256,
        300,
        300,
    ]
    assert policy.next_try(1, 0, T0, T0) == T0 + timedelta(seconds=2)
    assert policy.next_try(3, 3, T0, T0) is None  # refused three times
    assert policy.next_try(50, 0, T0, T0 + timedelta(hours=23)) is not None  # down, not old
    assert policy.next_try(51, 0, T0, T0 + timedelta(hours=24)) is None


def test_endpoint_addresses_are_checked_by_kind() -> None:
    assert host_port("ris.north:2575") == ("ris.north", 2575)
    assert host_port("[::1]:2575") == ("::1", 2575)
    Endpoint(1, Channel.FHIR, "https://ehr.example/fhir/r4")
    Endpoint(1, Channel.DICOM, "PACS@10.0.0.5:104")
    for kind, bad in [
        (Channel.HL7, "ris.north"),
        (Channel.HL7, "ris:99999"),
        (Channel.FHIR, "ftp://x"),
        (Channel.DICOM, "10.0.0.5:104"),
        (Channel.DICOM, "A_TITLE_LONGER_THAN_16@h:104"),
    ]:
        with pytest.raises(OutboxError):
            Endpoint(1, kind, bad)


def test_each_facility_in_order_refusals_retried_and_deliveries_audited(world: World) -> None:
    w = world
    a1, b1, a2 = _queue(w, 1, 1), _queue(w, 2, 2), _queue(w, 1, 3)
    w.peer.script = [Outcome.REFUSED]  # the first attempt (north's first message)
    assert w.worker.run() == 2  # north's head refused, south's accepted; north's second waits
    assert w.peer.sent == [(1, a1), (2, b1)]
    w.clock.after(seconds=2)
    w.worker.run()
    assert w.peer.sent[2:] == [(1, a1), (1, a2)]
    exports = [x for x in w.audit.repository.records() if x.event is EventID.EXPORT]
    assert len(exports) == 3 and all("accepted" in x.detail for x in exports)
    assert "MSH|" not in " ".join(x.detail for x in exports)  # ids only, never the payload


def test_a_dead_letter_is_audited_lets_the_queue_move_and_is_sent_again(world: World) -> None:
    w = world
    w.worker.policy = RetryPolicy(refusals=1)
    first, second = _queue(w, 1, 1), _queue(w, 1, 2)
    w.peer.script = [Outcome.REFUSED]
    w.worker.run()
    assert w.peer.sent == [(1, first), (1, second)]  # dead at once; the next went
    [dead] = w.results.messages(ADMIN, None, OutboxFilter(frozenset({MessageState.DEAD})))
    records = list(w.audit.repository.records())
    assert any(x.event is EventID.EXPORT and "dead letter" in x.detail for x in records)
    assert any(x.event is EventID.QUERY and "outbox (state dead)" in x.detail for x in records)
    with pytest.raises(NotFound):
        w.results.retry(ADMIN, frozenset({2}), dead.id)  # another facility's admin
    w.results.retry(ADMIN, frozenset({1}), dead.id)
    assert w.worker.wake.is_set()  # the worker is told at once
    with pytest.raises(OutboxError, match="not a dead letter"):
        w.results.retry(ADMIN, None, dead.id)
    w.worker.run()
    assert w.peer.sent[-1] == (1, first)
    assert [m.state for m in w.results.messages(ADMIN, None, OutboxFilter())] == [
        MessageState.SENT,
        MessageState.SENT,
    ]


def test_no_endpoint_or_no_sender_fails_the_attempt_and_is_retried(world: World) -> None:
    w = world
    w.endpoints.remove(1, Channel.HL7)
    _queue(w, 1, 1)
    w.worker.run()
    [m] = w.outbox.find(OutboxFilter())
    assert m.state is MessageState.PENDING and m.last_error == "the facility has no hl7 endpoint"
    w.worker.senders = {}
    w.endpoints.put(Endpoint(1, Channel.HL7, "ris:2575"))
    w.clock.after(seconds=2)
    w.worker.run()
    [m] = w.outbox.find(OutboxFilter())
    assert m.attempts == 2 and "does not send hl7" in m.last_error


def test_a_claim_is_one_workers_until_its_lease_runs_out(world: World) -> None:
    w = world
    _queue(w, 1, 1)
    [claim] = w.outbox.claim(T0, timedelta(seconds=30), 10)
    assert w.worker.run() == 0  # another worker holds it
    w.clock.after(seconds=30)
    assert w.worker.run() == 1 and len(w.peer.sent) == 1  # the lease ran out
    attempt_of_the_first = w.outbox.attempts(claim.message.id)[0]
    assert not w.outbox.record(claim, attempt_of_the_first, None)


def test_endpoints_are_set_in_scope_and_audited_as_configuration(world: World) -> None:
    w = world
    e = w.results.set_endpoint(ADMIN, None, 1, Channel.HL7, " ris.new:2576 ", True)
    assert (e.address, e.tls) == ("ris.new:2576", True)
    with pytest.raises(OutboxError):
        w.results.set_endpoint(ADMIN, None, 1, Channel.HL7, "nowhere", False)
    with pytest.raises(NotFound):
        w.results.set_endpoint(ADMIN, frozenset({2}), 1, Channel.HL7, "x:1", False)
    with pytest.raises(NotFound):
        w.results.set_endpoint(ADMIN, None, 99, Channel.HL7, "x:1", False)
    assert [x.facility_id for x in w.results.endpoints_of(frozenset({2}))] == [2]
    assert w.results.remove_endpoint(ADMIN, None, 2, Channel.HL7)
    alerts = [x for x in w.audit.repository.records() if x.event is EventID.SECURITY_ALERT]
    assert [x.detail for x in alerts] == [
        "results endpoint of North: hl7 ris.new:2576 (TLS)",
        "results endpoint of South removed: hl7",
    ]
    assert alerts[0].source_address == "10.0.0.1"


def test_a_write_that_queues_wakes_the_worker_and_deliveries_combine() -> None:
    reports, wake = FakeReports(), threading.Event()
    store = Announcing(reports, wake)
    content = Content("ct-head", "1", {"impression": "x"})
    stored = store.add(r.new_report("1.2", 1, "A", content, 7, "N", T0), "P")
    saved = r.save(stored, content, 1, 7, "N", T0)
    store.write(saved, 1)
    assert not wake.is_set()  # nothing queued
    store.write(r.sign(saved, True, 2, 7, "N", T0), 2, [Outgoing("hl7", "m", "MSH|", T0)])
    assert wake.is_set() and store.get(stored.id or 0) is not None

    def one(kind: str) -> object:
        return lambda report, facts, now: [Outgoing(kind, kind, "", now)]

    both = combined(one("hl7"), one("fhir"))  # type: ignore[arg-type]
    facts = ReportFacts("1.2", 1, "A", "P", "N", "F", 1, "CT", "", "", "", None)
    assert [o.channel for o in both(Report("1.2", 1, "A", ()), facts, T0)] == ["hl7", "fhir"]
