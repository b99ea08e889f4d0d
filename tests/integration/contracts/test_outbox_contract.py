"""The outbox's promises, on the fake, SQLite and PostgreSQL: messages queued by a
report's write, per facility and channel only the oldest pending one claimable, one
claim at a time, attempts kept, dead letters and their retry; on PostgreSQL,
workers claiming at once never share a message nor send a facility's second
before its first."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from tests.fakes.outbox import FakeEndpoints, FakeOutbox
from tests.fakes.reports import FakeReports

from telerad.bootstrap import Platform
from telerad.domain import reports as r
from telerad.domain.outbox import Channel, Endpoint, MessageState, Outcome
from telerad.domain.reports import Content, Report
from telerad.services.outbox import Attempt, EndpointStore, OutboxFilter, OutboxStore
from telerad.services.reports import Outgoing, ReportStore
from telerad.storage.db.outbox_repository import SqlEndpoints, SqlOutbox
from telerad.storage.db.report_repository import SqlReports

NOW = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


@dataclass
class Setup:
    reports: ReportStore
    outbox: OutboxStore
    endpoints: EndpointStore
    facilities: tuple[int, int]
    platform: Platform | None


@pytest.fixture(params=["fake", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def setup(request: pytest.FixtureRequest) -> Setup:
    if request.param == "fake":
        reports = FakeReports()
        return Setup(reports, FakeOutbox().attach(reports), FakeEndpoints(), (1, 2), None)
    platform: Platform = request.getfixturevalue(
        "platform" if request.param == "sqlite" else "pg_platform"
    )
    north = platform.index.add_facility("North", "NORTH").id
    south = platform.index.add_facility("South", "SOUTH").id
    engine = platform.engine
    return Setup(
        SqlReports(engine), SqlOutbox(engine), SqlEndpoints(engine), (north, south), platform
    )


def _signed(s: Setup, facility: int, uid: str, *channels: str) -> Report:
    """A report signed final, queueing one message per channel."""
    content = Content("ct-head", "1", {"impression": "No bleed."})
    stored = s.reports.add(r.new_report(uid, facility, uid[-4:], content, 7, "N^R", NOW), "P1")
    final = r.sign(stored, True, 1, 7, "N^R", NOW)
    outgoing = [Outgoing(c, f"{uid}-{c}", f"MSH|{uid}|{c}", NOW) for c in channels]
    return s.reports.write(final, 1, outgoing)


def _accept(s: Setup, claim_at: datetime = NOW) -> list[str]:
    """Claim what is due and accept all of it; the message ids, in claim order."""
    done = []
    for c in s.outbox.claim(claim_at, LEASE, 10):
        attempt = Attempt(claim_at, "ris:2575", Outcome.ACCEPTED, "AA", "MSH|ACK")
        assert s.outbox.record(c, attempt, None)
        done.append(c.message.message_id)
    return done


def test_only_the_oldest_pending_message_of_a_facility_and_channel_is_claimed(
    setup: Setup,
) -> None:
    north, south = setup.facilities
    first = _signed(setup, north, "1.2.1.0001", "hl7", "fhir")
    _signed(setup, north, "1.2.1.0002", "hl7")
    _signed(setup, south, "1.2.1.0003", "hl7")
    claims = setup.outbox.claim(NOW, LEASE, 10)
    assert [c.message.message_id for c in claims] == [
        "1.2.1.0001-hl7",
        "1.2.1.0001-fhir",  # another channel of the same facility: its own queue
        "1.2.1.0003-hl7",
    ]
    head = claims[0].message
    assert (head.facility_id, head.report_id, head.report_version) == (north, first.id, 2)
    assert head.state is MessageState.PENDING and head.payload == "MSH|1.2.1.0001|hl7"
    assert head.study_instance_uid == "1.2.1.0001" and head.queued_at == NOW
    # Claimed: nobody else gets them, and north's second hl7 message waits for its first.
    assert setup.outbox.claim(NOW + timedelta(seconds=1), LEASE, 10) == []
    assert setup.outbox.record(
        claims[0], Attempt(NOW, "ris:2575", Outcome.ACCEPTED, "AA", "MSH|ACK"), None
    )
    assert _accept(setup, NOW + timedelta(seconds=2)) == ["1.2.1.0002-hl7"]
    sent = setup.outbox.get(head.id)
    assert sent is not None and sent.state is MessageState.SENT and sent.sent_at == NOW
    assert (sent.attempts, sent.answer, sent.destination) == (1, "MSH|ACK", "ris:2575")


def test_failures_wait_their_turn_then_die_and_a_retry_puts_them_back_first(
    setup: Setup,
) -> None:
    north, _ = setup.facilities
    _signed(setup, north, "1.2.2.0001", "hl7")
    _signed(setup, north, "1.2.2.0002", "hl7")
    [claim] = setup.outbox.claim(NOW, LEASE, 10)
    refused = Attempt(NOW, "ris:2575", Outcome.REFUSED, "AE: unknown patient", "MSH|AE")
    assert setup.outbox.record(claim, refused, NOW + timedelta(seconds=2))
    assert setup.outbox.claim(NOW + timedelta(seconds=1), LEASE, 10) == []  # not due yet
    [again] = setup.outbox.claim(NOW + timedelta(seconds=2), LEASE, 10)
    assert again.message.id == claim.message.id
    assert (again.message.attempts, again.message.refusals) == (1, 1)
    assert again.message.last_error == "AE: unknown patient"
    down = Attempt(NOW + timedelta(seconds=2), "ris:2575", Outcome.FAILED, "connection refused")
    assert setup.outbox.record(again, down, None)  # given up: a dead letter
    dead = setup.outbox.get(claim.message.id)
    assert dead is not None and dead.state is MessageState.DEAD
    assert (dead.attempts, dead.refusals) == (2, 1)
    assert [a.outcome for a in setup.outbox.attempts(dead.id)] == [
        Outcome.REFUSED,
        Outcome.FAILED,
    ]
    assert setup.outbox.attempts(dead.id)[0] == refused
    # The dead letter no longer holds the queue back.
    [second] = setup.outbox.claim(NOW + timedelta(seconds=3), LEASE, 10)
    assert second.message.message_id == "1.2.2.0002-hl7"
    assert setup.outbox.retry(second.message.id, NOW) is None  # only a dead letter is retried
    later = NOW + timedelta(hours=1)
    back = setup.outbox.retry(dead.id, later)
    assert back is not None and back.state is MessageState.PENDING
    assert (back.attempts, back.refusals, back.queued_at, back.next_at) == (0, 0, later, later)
    # Once the message in flight is done, the retried one (older) goes first.
    accepted = Attempt(later, "ris:2575", Outcome.ACCEPTED, "AA", "ACK")
    assert setup.outbox.record(second, accepted, None)
    assert _accept(setup, later) == ["1.2.2.0001-hl7"]


def test_an_expired_claim_is_taken_over_and_the_old_one_cannot_record(setup: Setup) -> None:
    north, _ = setup.facilities
    _signed(setup, north, "1.2.3.0001", "hl7")
    [stale] = setup.outbox.claim(NOW, LEASE, 10)
    [fresh] = setup.outbox.claim(NOW + LEASE, LEASE, 10)  # the first worker went quiet
    assert fresh.message.id == stale.message.id and fresh.token != stale.token
    late = Attempt(NOW + LEASE, "ris:2575", Outcome.ACCEPTED, "AA", "ACK")
    assert not setup.outbox.record(stale, late, None)
    assert setup.outbox.record(fresh, late, None)
    assert not setup.outbox.record(fresh, late, None)  # a claim records once
    assert len(setup.outbox.attempts(fresh.message.id)) == 1


def test_listing_by_state_facility_report_and_counts(setup: Setup) -> None:
    north, south = setup.facilities
    a = _signed(setup, north, "1.2.4.0001", "hl7")
    _signed(setup, south, "1.2.4.0002", "hl7")
    _accept(setup)
    _signed(setup, north, "1.2.4.0003", "hl7")
    everything = setup.outbox.find(OutboxFilter())
    assert [m.message_id for m in everything] == [
        "1.2.4.0003-hl7",
        "1.2.4.0002-hl7",
        "1.2.4.0001-hl7",
    ]
    pending = OutboxFilter(states=frozenset({MessageState.PENDING}))
    assert [m.message_id for m in setup.outbox.find(pending)] == ["1.2.4.0003-hl7"]
    north_only = OutboxFilter(facility_ids=frozenset({north}), limit=1, offset=1)
    assert [m.message_id for m in setup.outbox.find(north_only)] == ["1.2.4.0001-hl7"]
    by_report = OutboxFilter(report_id=a.id, channel=Channel.HL7)
    assert [m.message_id for m in setup.outbox.find(by_report)] == ["1.2.4.0001-hl7"]
    assert setup.outbox.find(OutboxFilter(channel=Channel.FHIR)) == []
    assert setup.outbox.counts() == {
        MessageState.PENDING: 1,
        MessageState.SENT: 2,
        MessageState.DEAD: 0,
    }
    assert setup.outbox.counts(frozenset({south}))[MessageState.SENT] == 1
    assert setup.outbox.get(10_000) is None


def test_endpoints_one_per_facility_and_kind(setup: Setup) -> None:
    north, south = setup.facilities
    e = setup.endpoints
    assert e.endpoint(north, Channel.HL7) is None
    e.put(Endpoint(north, Channel.HL7, "ris.north:2575"))
    e.put(Endpoint(north, Channel.HL7, "ris.north:2576", tls=True))  # replaced
    e.put(Endpoint(north, Channel.DICOM, "PACS@pacs.north:104"))
    e.put(Endpoint(south, Channel.FHIR, "https://ehr.south/fhir"))
    assert e.endpoint(north, Channel.HL7) == Endpoint(north, Channel.HL7, "ris.north:2576", True)
    assert [x.kind for x in e.endpoints(north)] == [Channel.DICOM, Channel.HL7]
    assert len(e.endpoints()) == 3
    assert e.remove(north, Channel.DICOM) and not e.remove(north, Channel.DICOM)
    assert e.endpoint(north, Channel.DICOM) is None


@pytest.mark.postgres
def test_workers_claiming_at_once_on_postgresql_never_share_a_message_or_reorder(
    pg_platform: Platform,
) -> None:
    engine = pg_platform.engine
    reports = SqlReports(engine)
    facilities = [pg_platform.index.add_facility(f"F{n}", f"F{n}").id for n in range(4)]
    s = Setup(reports, SqlOutbox(engine), SqlEndpoints(engine), (0, 0), pg_platform)
    expected: dict[int, list[str]] = {f: [] for f in facilities}
    for n in range(60):
        facility = facilities[n % 4]
        _signed(s, facility, f"1.2.9.{n:04d}", "hl7")
        expected[facility].append(f"1.2.9.{n:04d}-hl7")
    in_flight: dict[int, str] = {}
    delivered: dict[int, list[str]] = {f: [] for f in facilities}
    problems: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        store = SqlOutbox(engine)  # its own store, its own connections
        idle = 0
        while idle < 20:
            claims = store.claim(datetime.now(UTC), LEASE, 2)
            idle = 0 if claims else idle + 1
            for c in claims:
                m = c.message
                with lock:
                    if m.facility_id in in_flight:
                        problems.append(f"{m.message_id} while {in_flight[m.facility_id]}")
                    in_flight[m.facility_id] = m.message_id
                with lock:
                    del in_flight[m.facility_id]  # before the commit that frees the next
                    delivered[m.facility_id].append(m.message_id)
                attempt = Attempt(datetime.now(UTC), "x:1", Outcome.ACCEPTED, "AA", "ACK")
                if not store.record(c, attempt, None):
                    problems.append(f"{m.message_id}: claim lost")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert problems == []
    assert delivered == expected  # each once, in order per facility
    assert s.outbox.counts()[MessageState.SENT] == 60
