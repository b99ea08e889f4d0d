"""RFC 5424 syslog messages carrying audit records, sent over TCP or TLS.

Framing is octet counting (RFC 6587 3.4.1, the one RFC 5425 requires for TLS):
``MSG-LEN SP SYSLOG-MSG``. Every message goes to a spool directory first and
leaves it only once written to the collector, oldest first, so records made while
the collector is unreachable are delivered in order when it is back.

TCP has no application acknowledgement: a message written into a connection the
collector drops before reading it is lost to the collector (it is still in the
database). The structured data carries the sequence number and hash so a
collector can spot gaps and anchor the chain outside this machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from telerad.domain.audit import AuditRecord

# facility 10 (security/authorization, authpriv) x 8 + severity 5 (notice), as IHE ATNA uses.
PRI = 10 * 8 + 5
MSGID = "IHE+RFC-3881"
# 32473 is the private enterprise number IANA reserves for examples (RFC 5612).
SD_ID = "telerad@32473"
BOM = b"\xef\xbb\xbf"


def message(record: AuditRecord, body: str, hostname: str, app_name: str = "telerad") -> bytes:
    """The RFC 5424 message for ``record`` with ``body`` (an audit message XML) as MSG."""
    host = _token(hostname, 255)
    app = _token(app_name, 48)
    sd = f'[{SD_ID} seq="{record.sequence}" hash="{record.hash}"]'
    header = f"<{PRI}>1 {record.time} {host} {app} {os.getpid()} {MSGID} {sd} "
    return header.encode("ascii") + BOM + body.encode("utf-8")


def _token(value: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, or the nil value."""
    cleaned = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return cleaned or "-"


def frame(msg: bytes) -> bytes:
    return str(len(msg)).encode("ascii") + b" " + msg


def unframe(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Complete messages at the front of ``buffer`` and what remains of it."""
    found: list[bytes] = []
    while True:
        space = buffer.find(b" ")
        if space <= 0:
            return found, buffer
        digits = buffer[:space]
        if not digits.isdigit() or len(digits) > 10:
            raise ValueError("not an octet-counted syslog frame")
        end = space + 1 + int(digits)
        if len(buffer) < end:
            return found, buffer
        found.append(buffer[space + 1 : end])
        buffer = buffer[end:]


HEADER = re.compile(
    rb"^<(?P<pri>\d{1,3})>(?P<version>[1-9]\d{0,2}) (?P<timestamp>\S+) (?P<hostname>\S+) "
    rb"(?P<app>\S+) (?P<procid>\S+) (?P<msgid>\S+) (?P<sd>-|(?:\[(?:[^\]\\]|\\.)*\])+)"
    rb"(?: (?P<msg>.*))?$",
    re.DOTALL,
)


@dataclass(frozen=True)
class SyslogMessage:
    pri: int
    version: int
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    structured_data: str
    msg: bytes


def parse(msg: bytes) -> SyslogMessage:
    """An RFC 5424 message's fields (the MSG without its BOM)."""
    m = HEADER.match(msg)
    if m is None:
        raise ValueError("not an RFC 5424 message")
    body = m["msg"] or b""
    return SyslogMessage(
        int(m["pri"]),
        int(m["version"]),
        m["timestamp"].decode(),
        m["hostname"].decode(),
        m["app"].decode(),
        m["procid"].decode(),
        m["msgid"].decode(),
        m["sd"].decode(),
        body.removeprefix(BOM),
    )


class Spool:
    """Messages waiting for the collector: one file each, named by sequence number."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def put(self, sequence: int, msg: bytes) -> Path:
        path = self.directory / f"{sequence:020d}.syslog"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(msg)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    def pending(self) -> list[Path]:
        return sorted(self.directory.glob("*.syslog"))


def _peer_gone(sock: socket.socket) -> bool:
    """Whether the collector closed the connection (it never sends, so readable means gone).

    Checked before each write: a write into a closed connection can succeed locally
    and be lost, so a stale connection is replaced before it swallows a message.
    """
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class SyslogSender:
    """Spools audit messages and writes them to a collector over TCP, or TLS with a context."""

    def __init__(
        self,
        host: str,
        port: int,
        spool: Spool,
        tls: ssl.SSLContext | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.host, self.port, self.spool, self.tls, self.timeout = host, port, spool, tls, timeout
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def send(self, record: AuditRecord, msg: bytes) -> bool:
        """Spool ``msg`` and try to deliver everything pending; True if nothing is left."""
        self.spool.put(record.sequence, msg)
        return self.flush()

    def flush(self) -> bool:
        """Deliver pending messages in order; stop at the first failure (they stay spooled)."""
        with self._lock:
            for path in self.spool.pending():
                try:
                    data = frame(path.read_bytes())
                    sock = self._connected()
                    sock.sendall(data)
                except OSError:
                    self._close()
                    return False
                path.unlink()
            return True

    def _connected(self) -> socket.socket:
        if self._sock is not None and _peer_gone(self._sock):
            self._close()
        if self._sock is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            if self.tls is not None:
                try:
                    sock = self.tls.wrap_socket(sock, server_hostname=self.host)
                except BaseException:
                    sock.close()
                    raise
            self._sock = sock
        return self._sock

    def _close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def start(self, interval: float = 10.0) -> None:
        """Retry the spool every ``interval`` seconds in a background thread."""

        def loop() -> None:
            while not self._stop.wait(interval):
                self.flush()

        self._thread = threading.Thread(target=loop, name="audit-syslog", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 1)
        with self._lock:
            self._close()


def forwarder(sender: SyslogSender, source_id: str, hostname: str) -> Callable[[AuditRecord], bool]:
    """A forwarder for ``AuditService``: each record as DICOM audit XML over syslog."""
    from telerad.adapters.audit.dicom_xml import to_xml

    def forward(record: AuditRecord) -> bool:
        return sender.send(record, message(record, to_xml(record, source_id), hostname))

    return forward
