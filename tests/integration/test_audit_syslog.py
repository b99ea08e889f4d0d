"""Audit records over syslog (RFC 5424, octet counting) to a collector the test runs:
the spool keeps them while the collector is down and delivers them in order after."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.conftest import free_port
from tests.support import eventually

from telerad.adapters.audit import syslog
from telerad.bootstrap import Platform
from telerad.domain.audit import EventID


class Collector:
    """A syslog collector on 127.0.0.1: accepts connections, unframes, keeps the messages."""

    def __init__(self, port: int, tls: ssl.SSLContext | None = None) -> None:
        self.messages: list[syslog.SyslogMessage] = []
        self.tls = tls
        self.listener = socket.create_server(("127.0.0.1", port))
        self.listener.settimeout(0.2)
        self.stopping = threading.Event()
        self.conns: list[socket.socket] = []
        self.refused = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        workers = []
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            if self.tls is not None:
                conn.settimeout(5)
                try:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    self.refused += 1
                    conn.close()
                    continue
            self.conns.append(conn)
            worker = threading.Thread(target=self._read, args=(conn,), daemon=True)
            worker.start()
            workers.append(worker)
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        for worker in workers:
            worker.join(timeout=5)
        self.listener.close()

    def _read(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        rest = b""
        while not self.stopping.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            except (OSError, ValueError):
                return
            if not data:
                return
            found, rest = syslog.unframe(rest + data)
            self.messages.extend(syslog.parse(m) for m in found)

    def sequences(self) -> list[int]:
        return [int(m.structured_data.split('seq="')[1].split('"')[0]) for m in self.messages]

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    eventually(condition, timeout, 0.05, "the collector's messages")


def record(platform: Platform, n: int) -> None:
    platform.audit.record(
        EventID.INSTANCES_ACCESSED,
        "VIEWER",
        patient_id=f"PID-{n}",
        study_uid=f"1.2.826.0.1.3680043.8.498.5.{n}",
        detail=str(n),
    )


def run_outage(platform: Platform, tmp_path: Path, server: ssl.SSLContext | None,
               client: ssl.SSLContext | None) -> None:  # fmt: skip
    port = free_port()
    spool = syslog.Spool(platform.settings.data_dir / "audit-spool")
    sender = syslog.SyslogSender("127.0.0.1", port, spool, tls=client, timeout=3)
    platform.audit.forwarders.append(syslog.forwarder(sender, "TELERAD", "archive-1"))
    try:
        # Collector down: the records are stored and spooled, nothing is lost.
        for n in range(1, 4):
            record(platform, n)
        assert len(spool.pending()) == 3
        collector = Collector(port, server)
        try:
            assert sender.flush()
            wait_for(lambda: len(collector.messages) == 3)
            assert spool.pending() == []
            for n in range(4, 6):
                record(platform, n)
            wait_for(lambda: len(collector.messages) == 5)
        finally:
            collector.stop()
        # Down again, with the sender still holding the old connection.
        for n in range(6, 9):
            record(platform, n)
        assert len(spool.pending()) == 3
        late = Collector(port, server)
        try:
            assert sender.flush()
            wait_for(lambda: len(late.messages) == 3)
        finally:
            late.stop()
        assert collector.sequences() == [1, 2, 3, 4, 5]
        assert late.sequences() == [6, 7, 8]
        assert spool.pending() == []
        for message in collector.messages + late.messages:
            assert message.msgid == "IHE+RFC-3881" and message.hostname == "archive-1"
            root = ET.fromstring(message.msg)
            assert root.find("EventIdentification/EventID") is not None
        ids = [
            ET.fromstring(m.msg).find("ParticipantObjectIdentification").get("ParticipantObjectID")  # type: ignore[union-attr]
            for m in collector.messages + late.messages
        ]
        assert ids == [f"PID-{n}" for n in range(1, 9)]
        assert platform.audit.verify().ok
    finally:
        sender.close()


def test_spool_survives_collector_outage_tcp(platform: Platform, tmp_path: Path) -> None:
    run_outage(platform, tmp_path, None, None)


def test_spool_survives_a_restart_of_the_sender(platform: Platform, tmp_path: Path) -> None:
    """Spooled messages are files: a new sender (after a restart) delivers them."""
    port = free_port()
    directory = platform.settings.data_dir / "audit-spool"
    first = syslog.SyslogSender("127.0.0.1", port, syslog.Spool(directory), timeout=3)
    platform.audit.forwarders.append(syslog.forwarder(first, "TELERAD", "archive-1"))
    for n in range(1, 5):
        record(platform, n)
    first.close()
    collector = Collector(port)
    try:
        second = syslog.SyslogSender("127.0.0.1", port, syslog.Spool(directory), timeout=3)
        second.start(interval=0.1)
        wait_for(lambda: len(collector.messages) == 4)
        second.close()
    finally:
        collector.stop()
    assert collector.sequences() == [1, 2, 3, 4]


@pytest.fixture
def tls_contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1: the collector's, and the sender's trust."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "telerad test collector")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "collector.pem", tmp_path / "collector.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


def test_spool_survives_collector_outage_tls(
    platform: Platform, tmp_path: Path, tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    run_outage(platform, tmp_path, *tls_contexts)


def test_untrusted_collector_gets_nothing(
    platform: Platform, tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server, _ = tls_contexts
    port = free_port()
    collector = Collector(port, server)
    spool = syslog.Spool(platform.settings.data_dir / "audit-spool")
    sender = syslog.SyslogSender("127.0.0.1", port, spool, tls=ssl.create_default_context())
    platform.audit.forwarders.append(syslog.forwarder(sender, "TELERAD", "archive-1"))
    try:
        record(platform, 1)
        assert len(spool.pending()) == 1
        wait_for(lambda: collector.refused == 1)
        assert collector.messages == []
    finally:
        sender.close()
        collector.stop()
