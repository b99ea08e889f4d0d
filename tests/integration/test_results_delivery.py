"""Results delivered through the outbox to a facility endpoint built on python-hl7's
asyncio MLLP server: in order, exactly once per control ID, through refusals,
garbage, connections closed mid-message, an endpoint down for a (simulated) hour;
dead letters listed and sent again from the CLI and the API. Time is a clock the
test moves (the retry waits), never a sleep."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from bench.facility_endpoint import FacilityEndpoint
from fastapi.testclient import TestClient
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from tests.conftest import run_cli
from tests.fakes.common import Clock
from tests.integration import results_support as sign

from telerad.bootstrap import Platform, open_platform
from telerad.config import Settings
from telerad.domain.audit import EventID
from telerad.domain.identity import Role
from telerad.domain.outbox import Channel, MessageState, Outcome
from telerad.services.access_audit import Actor
from telerad.services.outbox import OutboxFilter, OutboxMessage
from telerad.web.app import create_app

T0 = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
ADMIN = Actor("admin", "network-admin")
Clinic = tuple[Platform, FacilityEndpoint, int, Clock]


@pytest.fixture
def clinic(tmp_path: Path) -> Iterator[Clinic]:
    """A platform (its worker on a clock the test moves), a facility with an HL7 endpoint."""
    settings = Settings(
        data_dir=tmp_path / "data", fsync=False, results_connect_seconds=1, results_answer_seconds=1
    )
    platform = open_platform(settings)
    clock = Clock(T0)
    platform.outbox.clock = clock
    with FacilityEndpoint() as endpoint:
        facility = platform.index.add_facility("North Hospital", "NORTH").id
        platform.results.set_endpoint(
            ADMIN, None, facility, Channel.HL7, f"127.0.0.1:{endpoint.port}", False
        )
        yield platform, endpoint, facility, clock
    platform.close()


def _messages(platform: Platform, state: MessageState | None = None) -> list[OutboxMessage]:
    """The HL7 messages (other channels, when the platform has them, have their queues)."""
    states = frozenset({state}) if state else frozenset()
    f = OutboxFilter(states, channel=Channel.HL7, limit=1000)
    return sorted(platform.results.outbox.find(f), key=lambda m: m.id)


def _ids(platform: Platform) -> list[str]:
    return [m.message_id for m in _messages(platform)]


def _until_due(platform: Platform, clock: Clock) -> None:
    """Move the clock to when the facility's first pending message is due again."""
    pending = _messages(platform, MessageState.PENDING)
    if pending:
        clock.now = max(clock.now, pending[0].next_at)


def test_every_signature_goes_out_in_order_once_and_strictly_valid(clinic: Clinic) -> None:
    platform, endpoint, facility, clock = clinic
    prelim = sign.signed(platform, facility, 1, T0, final=False)
    final = sign.finalised(platform, prelim, T0 + timedelta(hours=6))
    appended = sign.appended(platform, final, "Discussed with Dr House.", T0 + timedelta(hours=7))
    sign.corrected(platform, appended, T0 + timedelta(hours=8))
    other = sign.signed(platform, facility, 2, T0 + timedelta(hours=9))
    clock.now = T0 + timedelta(hours=9)
    platform.outbox.run()
    assert endpoint.accepted_ids() == _ids(platform)  # queue order, each once
    statuses = [str(r.message.segment("OBR")[25]) for r in endpoint.accepted]
    assert statuses == ["P", "F", "C", "C", "F"]
    for received in endpoint.accepted:
        er7 = str(received.message).replace("\n", "\r")
        parsed = parse_message(er7, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
        assert parsed.validate() is True
    assert all(m.state is MessageState.SENT for m in _messages(platform))
    traces = platform.results.deliveries(ADMIN, None, other.id or 0)
    [trace] = traces
    assert trace.message.destination == f"127.0.0.1:{endpoint.port}"
    assert [a.outcome for a in trace.attempts] == [Outcome.ACCEPTED]
    assert "MSA|AA|" + trace.message.message_id in trace.attempts[0].answer
    exports = [
        r
        for r in platform.audit.repository.records()
        if r.event is EventID.EXPORT and " hl7 message " in r.detail
    ]
    assert len(exports) == 5 and "accepted" in exports[0].detail


def test_a_refusal_then_acceptance_and_the_next_message_waits_its_turn(clinic: Clinic) -> None:
    platform, endpoint, facility, clock = clinic
    endpoint.then("error")
    sign.signed(platform, facility, 1, T0)
    sign.signed(platform, facility, 2, T0)
    platform.outbox.run()  # the first refused; the second not tried behind it
    first, second = _messages(platform)
    assert (first.state, first.attempts, first.refusals) == (MessageState.PENDING, 1, 1)
    assert first.last_error.startswith("AE: Unknown patient")
    assert first.next_at == T0 + timedelta(seconds=2) and second.attempts == 0
    platform.outbox.run()  # not due yet
    assert _messages(platform)[0].attempts == 1
    clock.after(seconds=2)
    platform.outbox.run()
    assert endpoint.accepted_ids() == [first.message_id, second.message_id]
    trace = platform.results.trace(ADMIN, None, first.id)
    assert [a.outcome for a in trace.attempts] == [Outcome.REFUSED, Outcome.ACCEPTED]


@pytest.mark.parametrize("behaviour", ["garbage", "mid", "half", "close", "silent", "reject"])
def test_garbage_cut_answers_and_silence_are_retried_until_accepted(
    clinic: Clinic, behaviour: str
) -> None:
    platform, endpoint, facility, clock = clinic
    endpoint.then(behaviour, behaviour)
    sign.signed(platform, facility, 1, T0)
    for expected_attempts in (1, 2):
        platform.outbox.run()
        [m] = _messages(platform)
        assert m.state is MessageState.PENDING and m.attempts == expected_attempts
        _until_due(platform, clock)
    platform.outbox.run()
    [m] = _messages(platform)
    assert m.state is MessageState.SENT and m.attempts == 3
    assert endpoint.accepted_ids() == [m.message_id]
    waits = [a.at for a in platform.results.trace(ADMIN, None, m.id).attempts]
    assert waits[2] - waits[1] == 2 * (waits[1] - waits[0])  # the wait doubles


def test_an_endpoint_down_for_an_hour_gets_everything_afterwards_in_order(clinic: Clinic) -> None:
    platform, endpoint, facility, clock = clinic
    endpoint.down()
    for n in range(1, 6):
        sign.signed(platform, facility, n, T0 + timedelta(minutes=n))
    clock.now = T0 + timedelta(minutes=5)
    passes = 0
    while clock.now < T0 + timedelta(hours=1, minutes=5):
        platform.outbox.run()
        passes += 1
        _until_due(platform, clock)
    head, *rest = _messages(platform)
    assert head.attempts == passes > 15  # only the head was tried, again and again
    assert head.refusals == 0 and "cannot connect" in head.last_error
    assert all(m.attempts == 0 for m in rest)
    assert platform.results.counts(None)[MessageState.DEAD] == 0
    endpoint.up()
    _until_due(platform, clock)
    platform.outbox.run()
    assert endpoint.accepted_ids() == _ids(platform) and len(_ids(platform)) == 5
    assert endpoint.first_arrivals() == endpoint.accepted_ids()  # no duplicates


def test_repeated_refusals_make_a_dead_letter_that_the_cli_sends_again(clinic: Clinic) -> None:
    platform, endpoint, facility, clock = clinic
    endpoint.then(*["reject"] * 5)
    sign.signed(platform, facility, 1, T0)
    sign.signed(platform, facility, 2, T0)
    while _messages(platform, MessageState.DEAD) == []:
        platform.outbox.run()
        _until_due(platform, clock)
    [dead] = _messages(platform, MessageState.DEAD)
    assert (dead.attempts, dead.refusals) == (5, 5) and dead.last_error.startswith("AR: ")
    # The dead letter no longer holds the facility's queue: the next went at once.
    assert endpoint.accepted_ids() == [_ids(platform)[1]]
    listed = run_cli(platform.settings.data_dir, "outbox", "list", "--state", "dead")
    assert listed.returncode == 0 and dead.message_id in listed.stdout
    again = run_cli(platform.settings.data_dir, "outbox", "retry", str(dead.id))
    assert again.returncode == 0, again.stderr
    assert "pending again" in again.stdout
    _until_due(platform, clock)  # the command queued it on the real clock
    platform.outbox.run()
    assert endpoint.accepted_ids() == [_ids(platform)[1], dead.message_id]
    shown = run_cli(platform.settings.data_dir, "outbox", "show", str(dead.id))
    assert shown.stdout.count("refused") == 5 and "accepted" in shown.stdout


def test_a_day_undelivered_is_a_dead_letter_and_the_api_sends_it_again(clinic: Clinic) -> None:
    platform, endpoint, facility, clock = clinic
    endpoint.down()
    report = sign.signed(platform, facility, 1, T0)
    while _messages(platform, MessageState.DEAD) == []:
        platform.outbox.run()
        _until_due(platform, clock)
    [dead] = _messages(platform)
    assert dead.refusals == 0 and clock.now - T0 >= timedelta(hours=24)
    endpoint.up()
    auth = platform.auth
    here = auth.create_user("here-admin", Role.FACILITY_ADMIN, facility)
    elsewhere = platform.index.add_facility("South Clinic").id
    there = auth.create_user("there-admin", Role.FACILITY_ADMIN, elsewhere)
    clerk = auth.create_user("clerk", Role.FACILITY_USER, facility)
    ours, theirs = auth.issue_token(here), auth.issue_token(there)
    with TestClient(create_app(platform)) as client:
        answer = client.get("/api/outbox?state=dead", headers={"Authorization": f"Bearer {ours}"})
        assert answer.status_code == 200
        [item] = answer.json()
        assert (item["id"], item["state"], item["message_id"]) == (dead.id, "dead", dead.message_id)
        assert "payload" not in item
        hidden = client.get("/api/outbox?state=dead", headers={"Authorization": f"Bearer {theirs}"})
        assert hidden.json() == []
        for url in (f"/api/outbox/{dead.id}", f"/api/outbox/{dead.id}/retry"):
            call = client.post if url.endswith("retry") else client.get
            other = call(url, headers={"Authorization": f"Bearer {theirs}"})
            assert other.status_code == 404  # as if it did not exist
        staff = client.get(
            "/api/outbox", headers={"Authorization": f"Bearer {auth.issue_token(clerk)}"}
        )
        assert staff.status_code == 403
        page = client.get("/outbox", headers={"Authorization": f"Bearer {ours}"})
        assert (
            page.status_code == 200 and dead.message_id in page.text and "Send again" in page.text
        )
        retried = client.post(
            f"/api/outbox/{dead.id}/retry", headers={"Authorization": f"Bearer {ours}"}
        )
        assert retried.status_code == 200 and retried.json()["state"] == "pending"
        again = client.post(
            f"/api/outbox/{dead.id}/retry", headers={"Authorization": f"Bearer {ours}"}
        )
        assert again.status_code == 409
        _until_due(platform, clock)  # the request queued it on the real clock
        platform.outbox.run()
        trace = client.get(
            f"/api/reports/{report.id}/deliveries", headers={"Authorization": f"Bearer {ours}"}
        ).json()
        [one] = trace
        assert one["message"]["state"] == "sent" and one["payload"].startswith("MSH|^~\\&|")
        assert one["attempts"][-1]["outcome"] == "accepted"
        assert {a["outcome"] for a in one["attempts"][:-1]} == {"failed"}
    assert endpoint.accepted_ids() == [dead.message_id]


def test_no_endpoint_no_message_and_an_endpoint_added_later_gets_what_waits(clinic: Clinic) -> None:
    platform, endpoint, _, clock = clinic
    south = platform.index.add_facility("South Clinic").id
    sign.signed(platform, south, 1, T0)
    assert _messages(platform) == []  # no endpoint: nothing queued (the report is kept)
    platform.results.set_endpoint(ADMIN, None, south, Channel.HL7, "127.0.0.1:1", False)
    sign.signed(platform, south, 2, T0)
    platform.outbox.run()
    [m] = _messages(platform)
    assert m.state is MessageState.PENDING and "cannot connect" in m.last_error
    platform.results.set_endpoint(
        ADMIN, None, south, Channel.HL7, f"127.0.0.1:{endpoint.port}", False
    )
    _until_due(platform, clock)
    platform.outbox.run()
    assert endpoint.accepted_ids() == [m.message_id]
