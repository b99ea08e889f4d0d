"""HL7 v2 over MLLP against a live ``telerad serve``: python-hl7's MLLPClient and raw sockets.

The fixtures (tests/data/hl7/) are an ORM^O01 (CT chest order, v2.5.1) and an
ADT^A04 (outpatient registration, v2.4) from "North Hospital". TLS tests use
the generated PKI of test_tls.py; every refusal has a control that gets through.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import hl7
import pytest
from hl7.client import MLLPClient
from tests.conftest import LiveServer, start_server
from tests.integration.test_tls import (
    PKI,
    _make_pki,
    client_context,
    handshake,
    old_client,
    weak_control_server,
)

from telerad.adapters.hl7.ack import ErrorCode, Verdict
from telerad.adapters.hl7.receive import Message, start_mllp
from telerad.adapters.tls import certificate_fingerprint, listener_contexts
from telerad.bootstrap import Platform, open_platform
from telerad.config import Settings
from telerad.domain.audit import EventID
from telerad.server import exposure_problem

# The TLS 1.0/1.1 clients below are deliberate.
pytestmark = pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")

DATA = Path(__file__).resolve().parents[1] / "data" / "hl7"
FACILITY = "North Hospital"
VT, FS, CR = b"\x0b", b"\x1c", b"\r"

__all__ = ["weak_control_server"]  # a fixture used here, defined in test_tls


def fixture_message(name: str, **replace: str) -> str:
    """A sample message with CR segment separators, MSH fields optionally replaced."""
    text = (DATA / name).read_text().strip().replace("\n", "\r")
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


def orm(control_id: str = "NH20240315083012001", facility: str = FACILITY) -> str:
    return fixture_message(
        "orm_o01.hl7",
        **{"NH20240315083012001": control_id, "|North Hospital^": f"|{facility}^"},
    )


def adt() -> str:
    return fixture_message("adt_a04.hl7")


def framed(text: str) -> bytes:
    return VT + text.encode() + FS + CR


def parse_ack(raw: bytes | str) -> hl7.Message:
    if isinstance(raw, bytes):
        assert raw.startswith(VT) and raw.endswith(FS + CR), raw[:40]
        raw = raw[1:-2].decode()
    return hl7.parse(raw)


def msa(ack: hl7.Message) -> tuple[str, str, str]:
    """MSA-1 (code), MSA-2 (control ID), MSA-3 (text)."""
    segment = ack.segment("MSA")
    fields = [str(segment(n)) if len(segment) > n else "" for n in (1, 2, 3)]
    return fields[0], fields[1], fields[2]


def err_code(ack: hl7.Message) -> str:
    """The HL7 table 0357 code of the ERR segment (ERR-3.1 from v2.5, ERR-1.4.1 before)."""
    err = ack.segment("ERR")
    if len(err) > 3 and str(err(3)):
        return str(err(3)(1)(1))
    return str(err(1)(1)(4)).split("&")[0]


def send(port: int, text: str) -> hl7.Message:
    """One message with python-hl7's MLLPClient; the parsed acknowledgement."""
    with MLLPClient("127.0.0.1", port) as client:
        client.socket.settimeout(10)
        return parse_ack(client.send_message(text))


def read_answer(sock: socket.socket, limit: float = 10) -> bytes:
    """Bytes up to and including the first end block, or whatever came before a close."""
    sock.settimeout(limit)
    data = b""
    try:
        while FS + CR not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def read_until_closed(sock: socket.socket, limit: float = 10) -> bytes:
    sock.settimeout(limit)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError, ssl.SSLError):
        pass
    return data


# --------------------------------------------------------------------------- live server


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return _make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def server(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``telerad serve`` with TLS (no client CA): plain MLLP and MLLP over TLS; one facility."""
    data_dir = tmp_path_factory.mktemp("mllp") / "data"
    data_dir.mkdir()
    env = {"TELERAD_TLS_CERT": str(pki.server.cert), "TELERAD_TLS_KEY": str(pki.server.key)}
    live = start_server(data_dir, env)
    try:
        added = live.telerad("facility", "add", FACILITY)
        assert added.returncode == 0, added.stderr
        yield live
    finally:
        live.process.terminate()
        live.process.wait(10)


def mllp_port(server: LiveServer) -> int:
    return int(server.env["TELERAD_MLLP_PORT"])


def mllp_tls_port(server: LiveServer) -> int:
    return int(server.env["TELERAD_MLLP_TLS_PORT"])


def test_serve_lists_both_mllp_listeners(server: LiveServer, pki: PKI) -> None:
    import httpx

    response = httpx.get(server.http_url + "/healthz", verify=client_context(pki))
    listeners = response.json()["listeners"]
    assert listeners["mllp"] is True and listeners["mllp-tls"] is True


@pytest.mark.parametrize(
    ("message", "control_id", "version", "event"),
    [
        (orm(), "NH20240315083012001", "2.5.1", "O01"),
        (adt(), "NH20240315081502007", "2.4", "A04"),
    ],
    ids=["ORM^O01", "ADT^A04"],
)
def test_orders_and_registrations_are_accepted(
    server: LiveServer, message: str, control_id: str, version: str, event: str
) -> None:
    ack = send(mllp_port(server), message)
    code, acked_id, _ = msa(ack)
    assert (code, acked_id) == ("AA", control_id)
    msh, sent = ack.segment("MSH"), hl7.parse(message).segment("MSH")
    assert str(msh(9)) == f"ACK^{event}^ACK"
    assert str(msh(12)) == version
    # Sender and receiver swap places.
    assert (str(msh(3)), str(msh(4))) == (str(sent(5)), str(sent(6)))
    assert (str(msh(5)), str(msh(6))) == (str(sent(3)), str(sent(4)))
    assert str(msh(10)) and str(msh(10)) != control_id
    with pytest.raises(KeyError):
        ack.segment("ERR")


def test_unknown_facility_gets_an_application_error_with_the_reason(server: LiveServer) -> None:
    ack = send(mllp_port(server), orm("UNKNOWN0001", facility="Nowhere Clinic"))
    code, acked_id, text = msa(ack)
    assert (code, acked_id) == ("AE", "UNKNOWN0001")
    assert "unknown facility" in text and "Nowhere Clinic" in text
    assert err_code(ack) == ErrorCode.UNKNOWN_KEY.code
    assert "unknown facility" in str(ack.segment("ERR")(8))


MALFORMED = {
    "no MSH": ("PID|1||MRN4471923^^^NH^MR||Testpatient^Alice", "100", ""),
    "not HL7": ("GET / HTTP/1.1\rHost: telerad", "100", ""),
    "bad segment": (orm("BADSEG0001") + "\rthis line is no segment", "100", "BADSEG0001"),
    "version 9.9": (orm("V99").replace("|P|2.5.1|", "|P|9.9|"), "203", "V99"),
    "no version": (orm("NOVER").replace("|P|2.5.1|", "|P||"), "101", "NOVER"),
    "no control ID": (orm(""), "101", ""),
    "results are not taken here": (
        orm("ORU001").replace("ORM^O01^ORM_O01", "ORU^R01^ORU_R01"),
        "200",
        "ORU001",
    ),
    "unknown order event": (orm("OMX1").replace("ORM^O01^ORM_O01", "ORM^O99"), "201", "OMX1"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_messages_are_rejected(server: LiveServer, case: str) -> None:
    message, error, control_id = MALFORMED[case]
    ack = send(mllp_port(server), message)
    code, acked_id, text = msa(ack)
    assert code == "AR", case
    assert acked_id == control_id
    assert text
    assert err_code(ack) == error


def test_garbage_before_the_start_block_is_skipped(server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", mllp_port(server)), timeout=10) as s:
        s.sendall(b"\r\n\x00garbage before the block" + framed(orm("AFTERJUNK1")))
        code, acked_id, _ = msa(parse_ack(read_answer(s)))
    assert (code, acked_id) == ("AA", "AFTERJUNK1")


def test_a_frame_cut_short_by_a_new_start_block_is_dropped(server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", mllp_port(server)), timeout=10) as s:
        s.sendall(VT + orm("LOST").encode()[:60] + framed(orm("SECOND")))
        answer = read_answer(s)
        s.sendall(framed(adt()))
        second = read_answer(s)
    assert msa(parse_ack(answer))[:2] == ("AA", "SECOND")
    assert msa(parse_ack(second))[:2] == ("AA", "NH20240315081502007")


def test_an_acknowledgement_is_not_acknowledged(server: LiveServer) -> None:
    ack = "MSH|^~\\&|NH_RIS|North Hospital|TELERAD|TELERAD|20240315083013||ACK^O01^ACK|A1|P|2.5.1"
    with socket.create_connection(("127.0.0.1", mllp_port(server)), timeout=10) as s:
        s.sendall(framed(ack + "\rMSA|AA|X1"))
        s.settimeout(0.5)
        with pytest.raises(TimeoutError):  # no answer: acknowledgements are never acknowledged
            s.recv(1)
        s.sendall(framed(orm("AFTERACK")))
        assert msa(parse_ack(read_answer(s)))[:2] == ("AA", "AFTERACK")


def test_no_end_block_then_close_leaves_the_listener_serving(server: LiveServer) -> None:
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", mllp_port(server)), timeout=10) as s:
            s.sendall(VT + orm("NOEND").encode())  # and never FS CR
            s.settimeout(0.3)
            with pytest.raises(TimeoutError):  # no answer to half a frame
                s.recv(1)
    assert msa(send(mllp_port(server), orm("AFTERNOEND")))[:2] == ("AA", "AFTERNOEND")


def _send_oversized(port: int, size: int) -> bytes:
    body = orm("HUGE0001") + "\r" + "NTE|1||" + "x" * size
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(framed(body))
        return read_until_closed(s)


def test_oversized_frame_gets_an_ar_and_a_close(server: LiveServer) -> None:
    answer = _send_oversized(mllp_port(server), 1024 * 1024 + 100)
    ack = parse_ack(answer)
    code, acked_id, text = msa(ack)
    assert (code, acked_id) == ("AR", "HUGE0001")
    assert "longer than 1048576 bytes" in text
    # Just under the limit is fine, and others were served all along.
    assert msa(send(mllp_port(server), orm("ALLGOOD")))[:2] == ("AA", "ALLGOOD")
    fits = orm("BIGBUTOK") + "\rNTE|1||" + "y" * (1024 * 1024 - 2000)
    assert msa(send(mllp_port(server), fits))[:2] == ("AA", "BIGBUTOK")


def test_several_clients_at_once(server: LiveServer) -> None:
    def client(n: int) -> list[tuple[str, str]]:
        with MLLPClient("127.0.0.1", mllp_port(server)) as c:
            c.socket.settimeout(20)
            return [msa(parse_ack(c.send_message(orm(f"C{n}M{i}"))))[:2] for i in range(5)]

    # One silent connection holds a thread; it must not hold up the rest.
    with (
        socket.create_connection(("127.0.0.1", mllp_port(server)), timeout=10),
        ThreadPoolExecutor(8) as pool,
    ):
        results = list(pool.map(client, range(8)))
    for n, answers in enumerate(results):
        assert answers == [("AA", f"C{n}M{i}") for i in range(5)]


# --------------------------------------------------------------------------- TLS


def test_mllp_over_tls_with_a_raw_ssl_client(server: LiveServer, pki: PKI) -> None:
    raw = socket.create_connection(("127.0.0.1", mllp_tls_port(server)), timeout=10)
    with client_context(pki).wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        tls.sendall(framed(orm("TLS0001")))
        assert msa(parse_ack(read_answer(tls)))[:2] == ("AA", "TLS0001")
        tls.sendall(framed(orm("TLS0002", facility="Nowhere Clinic")))
        assert msa(parse_ack(read_answer(tls)))[:2] == ("AE", "TLS0002")


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1], ids=["TLSv1.0", "TLSv1.1"]
)
def test_mllp_tls_before_1_2_is_refused(
    server: LiveServer, weak_control_server: int, version: ssl.TLSVersion
) -> None:
    client = old_client(version)
    try:
        negotiated = handshake(weak_control_server, client)
    except (ssl.SSLError, OSError) as exc:
        pytest.skip(f"the local OpenSSL cannot speak {version.name} at all: {exc}")
    assert negotiated == {"TLSv1": "TLSv1", "TLSv1_1": "TLSv1.1"}[version.name]
    with pytest.raises((ssl.SSLError, OSError)):
        handshake(mllp_tls_port(server), client)
    modern = old_client(ssl.TLSVersion.TLSv1_2)
    modern.set_ciphers("DEFAULT")
    assert handshake(mllp_tls_port(server), modern) == "TLSv1.2"


def test_plain_mllp_on_the_tls_port_gets_nothing(server: LiveServer) -> None:
    # Control: the same bytes on the plain port are acknowledged.
    with socket.create_connection(("127.0.0.1", mllp_port(server)), timeout=10) as s:
        s.sendall(framed(orm("CLEAR1")))
        assert msa(parse_ack(read_answer(s)))[0] == "AA"
    with socket.create_connection(("127.0.0.1", mllp_tls_port(server)), timeout=10) as s:
        s.sendall(framed(orm("CLEAR2")))
        answer = read_until_closed(s)
    assert VT not in answer and b"MSA" not in answer
    assert answer[:1] in (b"", b"\x15")  # nothing, or a TLS alert record


# --------------------------------------------------------------------------- in-process


@pytest.fixture
def hl7_platform(tmp_path: Path) -> Iterator[Platform]:
    settings = Settings(data_dir=tmp_path / "data", fsync=False, mllp_idle_timeout=1.0)
    platform = open_platform(settings)
    platform.index.add_facility(FACILITY)
    yield platform
    platform.close()


def test_receipt_is_audited_without_phi_in_logs(
    hl7_platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    listener = start_mllp(hl7_platform, port=0)
    try:
        with caplog.at_level(logging.DEBUG):
            assert msa(send(listener.port, orm("AUDIT1")))[0] == "AA"
            assert msa(send(listener.port, adt()))[0] == "AA"
            assert msa(send(listener.port, orm("AUDIT2", facility="Elsewhere")))[0] == "AE"
            assert msa(send(listener.port, orm("AUDIT3").replace("2.5.1", "9.9")))[0] == "AR"
    finally:
        listener.shutdown()
    records = list(hl7_platform.audit.repository.records())
    by_event = {r.event: r for r in records}
    order = by_event[EventID.ORDER_RECORD]
    assert order.facility == FACILITY and "ORM^O01 AUDIT1" in order.detail
    assert order.source_address == "127.0.0.1" and order.actor_id == "NH_RIS"
    assert by_event[EventID.PATIENT_RECORD].facility == FACILITY
    assert EventID.SECURITY_ALERT in by_event
    for text in [caplog.text, *(repr(r) for r in records)]:
        for phi in ("Testpatient", "MRN4471923", "19680412", "Harbour"):
            assert phi not in text


def test_a_failing_handler_answers_ae_and_the_listener_lives_on(hl7_platform: Platform) -> None:
    calls: list[str] = []

    def handler(message: Message) -> Verdict:
        calls.append(message.header.control_id)
        if message.header.control_id == "BOOM":
            raise RuntimeError("Testpatient^Alice broke it")
        return Verdict.accepted()

    listener = start_mllp(hl7_platform, port=0, handler=handler)
    try:
        ack = send(listener.port, orm("BOOM"))
        assert msa(ack)[:2] == ("AE", "BOOM") and err_code(ack) == ErrorCode.INTERNAL_ERROR.code
        assert "Testpatient" not in str(ack)
        assert msa(send(listener.port, orm("FINE")))[:2] == ("AA", "FINE")
    finally:
        listener.shutdown()
    assert calls == ["BOOM", "FINE"]


def test_an_idle_connection_is_closed(hl7_platform: Platform) -> None:
    listener = start_mllp(hl7_platform, port=0)
    try:
        with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as s:
            started = time.monotonic()
            assert read_until_closed(s, limit=10) == b""
            assert time.monotonic() - started < 5  # the idle timeout (1 s), not ours
    finally:
        listener.shutdown()


def test_mutual_tls_needs_a_client_certificate(hl7_platform: Platform, pki: PKI) -> None:
    """The MLLP context ``telerad serve`` builds from TELERAD_TLS_CERT/KEY/CLIENT_CA."""
    settings = Settings(tls_cert=pki.server.cert, tls_key=pki.server.key, tls_client_ca=pki.ca)
    contexts = listener_contexts(settings)
    assert contexts is not None
    listener = start_mllp(hl7_platform, port=0, ssl_context=contexts.mllp)

    def exchange(client: ssl.SSLContext, control_id: str, facility: str = FACILITY) -> bytes:
        raw = socket.create_connection(("127.0.0.1", listener.port), timeout=10)
        try:
            with client.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(framed(orm(control_id, facility)))
                return read_answer(tls)
        except (ssl.SSLError, OSError):
            return b""
        finally:
            raw.close()

    try:
        assert exchange(client_context(pki), "NOCERT") == b""
        assert exchange(client_context(pki, pki.rogue_client), "ROGUE") == b""
        assert msa(parse_ack(exchange(client_context(pki, pki.client), "GOOD")))[0] == "AA"
        # A facility pinned to a certificate takes messages with that certificate only.
        pinned = certificate_fingerprint(ssl.PEM_cert_to_DER_cert(pki.client.cert.read_text()))
        hl7_platform.index.add_facility("Pinned Clinic", cert_sha256=pinned)
        hl7_platform.index.add_facility("Other Pin", cert_sha256="0" * 64)
        good = client_context(pki, pki.client)
        assert msa(parse_ack(exchange(good, "PIN1", "Pinned Clinic")))[:2] == ("AA", "PIN1")
        assert msa(parse_ack(exchange(good, "PIN2", "Other Pin")))[:2] == ("AE", "PIN2")
    finally:
        listener.shutdown()


def test_plain_peer_is_not_a_pinned_facility(hl7_platform: Platform) -> None:
    hl7_platform.index.add_facility("Pinned Only", cert_sha256="a" * 64)
    hl7_platform.index.add_facility("Remote Only", host="10.99.0.0/16")
    listener = start_mllp(hl7_platform, port=0)
    try:
        assert msa(send(listener.port, orm("PIN1", facility="Pinned Only")))[0] == "AE"
        assert msa(send(listener.port, orm("NET1", facility="Remote Only")))[0] == "AE"
        assert msa(send(listener.port, orm("OK1")))[0] == "AA"
    finally:
        listener.shutdown()


def test_mllp_host_beyond_loopback_needs_users(tmp_path: Path) -> None:
    exposed = Settings(data_dir=tmp_path, mllp_host="0.0.0.0")
    problem = exposure_problem(exposed, has_users=False)
    assert problem is not None and "TELERAD_MLLP_HOST 0.0.0.0" in problem
    assert exposure_problem(exposed, has_users=True) is None
    assert exposure_problem(Settings(data_dir=tmp_path), has_users=False) is None


def test_a_second_serve_on_a_taken_mllp_port_says_so(server: LiveServer, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with pytest.raises(RuntimeError, match="TELERAD_MLLP_PORT"):
        start_server(data_dir, {"TELERAD_MLLP_PORT": str(mllp_port(server))})
