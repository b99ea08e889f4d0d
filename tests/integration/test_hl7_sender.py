"""The MLLP sender (adapters/hl7/sender.py) against a facility endpoint built on
python-hl7's asyncio MLLP server: what each answer — or its absence — comes to,
over plain TCP and TLS."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from bench.facility_endpoint import FacilityEndpoint, endpoint_with
from tests.conftest import free_port
from tests.integration.test_tls import PKI, _make_pki

from telerad.adapters.hl7.sender import MllpSender, judge
from telerad.adapters.tls import client_context, server_context
from telerad.domain.outbox import Channel, Endpoint, Outcome

ORU = (
    "MSH|^~\\&|TELERAD|NET|RIS|NORTH|20261203020000+0000||ORU^R01^ORU_R01|{id}|P|2.5.1"
    "|||||UNICODE UTF-8\rPID|1||P1^^^^MR||Ødegård^Zoë\rOBR|1||A1|CT^CT head|||20261203"
    "||||||||||A1|||||RAD|F\rOBX|1|TX|19005-8^Impressions^LN|1|No bleed — 日本語.||||||F\r"
)


@pytest.fixture
def endpoint() -> Iterator[FacilityEndpoint]:
    with FacilityEndpoint() as e:
        yield e


def _send(e: FacilityEndpoint, control_id: str = "M1", timeout: float = 2.0) -> Any:
    sender = MllpSender(connect_timeout=2, answer_timeout=timeout)
    target = Endpoint(1, Channel.HL7, f"127.0.0.1:{e.port}")
    return sender.send(target, control_id, ORU.format(id=control_id))


def test_accepted_and_read_back_unchanged(endpoint: FacilityEndpoint) -> None:
    delivery = _send(endpoint, "M-ok")
    assert delivery.outcome is Outcome.ACCEPTED and delivery.detail == "AA"
    assert "MSA|AA|M-ok" in delivery.answer
    [got] = endpoint.accepted
    assert got.control_id == "M-ok"
    assert str(got.message.segment("PID")[5]) == "Ødegård^Zoë"  # UTF-8 on the wire
    assert "日本語" in str(got.message.segment("OBX")[5])


@pytest.mark.parametrize(
    ("behaviour", "outcome", "detail"),
    [
        ("error", Outcome.REFUSED, "AE: Unknown patient; Unknown key identifier; Unknown patie"),
        ("reject", Outcome.REFUSED, "AR: Not taken; Unknown key identifier; Not taken here"),
        ("garbage", Outcome.FAILED, "the answer is not HL7 (no MSH)"),
        ("close", Outcome.FAILED, "closed without answering"),
        ("half", Outcome.FAILED, "closed in the middle of its answer"),
        ("silent", Outcome.FAILED, "no answer in 0.5 s"),
    ],
)
def test_every_other_answer_is_not_a_delivery(
    endpoint: FacilityEndpoint, behaviour: str, outcome: Outcome, detail: str
) -> None:
    endpoint.then(behaviour)
    delivery = _send(endpoint, timeout=0.5)
    assert delivery.outcome is outcome
    assert detail in delivery.detail
    assert endpoint.accepted == []
    assert _send(endpoint).outcome is Outcome.ACCEPTED  # the next connection is answered


def test_closed_mid_message_while_a_large_message_is_still_being_sent(
    endpoint: FacilityEndpoint,
) -> None:
    endpoint.then("mid")
    big = ORU.format(id="M-big") + "OBX|2|TX|59776-5^Findings^LN|2|" + "x" * 8_000_000 + "\r"
    sender = MllpSender(connect_timeout=2, answer_timeout=5)
    delivery = sender.send(Endpoint(1, Channel.HL7, f"127.0.0.1:{endpoint.port}"), "M-big", big)
    assert delivery.outcome is Outcome.FAILED
    assert "closed" in delivery.detail or "lost" in delivery.detail
    assert endpoint.read == []


def test_nobody_listening_and_an_unresolvable_host() -> None:
    sender = MllpSender(connect_timeout=1, answer_timeout=1)
    port = free_port()
    down = sender.send(Endpoint(1, Channel.HL7, f"127.0.0.1:{port}"), "M", "MSH|")
    assert down.outcome is Outcome.FAILED and "cannot connect" in down.detail
    nowhere = sender.send(Endpoint(1, Channel.HL7, "no-such-host.invalid:2575"), "M", "MSH|")
    assert nowhere.outcome is Outcome.FAILED and "cannot connect" in nowhere.detail


def test_an_ack_of_another_message_or_without_msa_is_not_ours() -> None:
    other = b"MSH|^~\\&|RIS|F|T|N|20261203||ACK^R01^ACK|9|P|2.5.1\rMSA|AA|SOMEONE-ELSE\r"
    assert judge(other, "M1").outcome is Outcome.FAILED
    assert "another message" in judge(other, "M1").detail
    no_msa = b"MSH|^~\\&|RIS|F|T|N|20261203||ACK^R01^ACK|9|P|2.5.1\r"
    assert judge(no_msa, "M1").outcome is Outcome.FAILED
    commit = b"MSH|^~\\&|RIS|F|T|N|20261203||ACK^R01^ACK|9|P|2.5.1\nMSA|CA|M1\n"
    assert judge(commit, "M1").outcome is Outcome.ACCEPTED  # LF endings, enhanced mode
    old = b"MSH|^~\\&|RIS|F|T|N|2026||ACK|9|P|2.3\rMSA|AE|M1\rERR|PID^1^3^204&Unknown key&HL70\r"
    assert judge(old, "M1").detail == "AE: Unknown key"
    escaped = b"MSH|^~\\&|RIS|F|T|N|2026||ACK|9|P|2.5.1\rMSA|AA|M\\F\\1\r"
    assert judge(escaped, "M|1").outcome is Outcome.ACCEPTED


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return _make_pki(tmp_path_factory.mktemp("pki"))


def test_over_tls_the_facility_certificate_is_checked(pki: PKI) -> None:
    server = server_context(pki.server.cert, pki.server.key)
    with FacilityEndpoint(ssl_context=server) as endpoint:
        target = Endpoint(1, Channel.HL7, f"127.0.0.1:{endpoint.port}", tls=True)
        trusting = MllpSender(answer_timeout=2, tls=client_context(pki.ca))
        assert trusting.send(target, "M-tls", ORU.format(id="M-tls")).accepted
        assert endpoint.accepted_ids() == ["M-tls"]
        stranger = MllpSender(answer_timeout=2, tls=client_context(None))  # system CAs only
        refused = stranger.send(target, "M-2", ORU.format(id="M-2"))
        assert refused.outcome is Outcome.FAILED and "TLS handshake failed" in refused.detail
        plain = MllpSender(answer_timeout=1).send(
            Endpoint(1, Channel.HL7, f"127.0.0.1:{endpoint.port}"), "M-3", ORU.format(id="M-3")
        )
        assert plain.outcome is Outcome.FAILED  # the endpoint speaks TLS only
    assert endpoint.accepted_ids() == ["M-tls"]


def test_mutual_tls_presents_the_platform_certificate(pki: PKI) -> None:
    server = server_context(pki.server.cert, pki.server.key, pki.ca)  # requires a client cert
    with FacilityEndpoint(ssl_context=server) as endpoint:
        target = Endpoint(1, Channel.HL7, f"127.0.0.1:{endpoint.port}", tls=True)
        anonymous = MllpSender(answer_timeout=2, tls=client_context(pki.ca))
        assert not anonymous.send(target, "M-a", ORU.format(id="M-a")).accepted
        ours = MllpSender(
            answer_timeout=2, tls=client_context(pki.ca, pki.client.cert, pki.client.key)
        )
        assert ours.send(target, "M-b", ORU.format(id="M-b")).accepted
    assert endpoint.accepted_ids() == ["M-b"]


def test_endpoint_with_a_script_answers_in_turn() -> None:
    e = endpoint_with(["reject"])
    try:
        assert _send(e, "1").outcome is Outcome.REFUSED
        assert _send(e, "2").outcome is Outcome.ACCEPTED
        assert [r.control_id for r in e.read] == ["1", "2"] and e.accepted_ids() == ["2"]
    finally:
        e.stop()
