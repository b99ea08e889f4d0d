"""MLLP (HL7 v2 Minimal Lower Layer Protocol): the framing, and a threaded TCP/TLS listener.

A message travels as ``VT`` (0x0b) payload ``FS`` (0x1c) ``CR`` (0x0d). The
:class:`Decoder` turns bytes, in whatever pieces they arrive, into complete
frames: bytes before a start block are skipped (and reported), a start block
inside a frame abandons the unfinished one, and a frame longer than the maximum
ends the stream (the listener answers AR when the MSH can be read, then closes).

The listener knows nothing of HL7 beyond that: each frame goes to a
:class:`FrameReceiver` (``telerad.adapters.hl7.receive``), whose answer bytes
are framed and sent back.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from telerad.adapters.tls import certificate_fingerprint

log = logging.getLogger(__name__)

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
CARRIAGE_RETURN = b"\x0d"
#: How much of an oversized frame is kept to read its MSH from.
HEAD_SIZE = 4096


# --------------------------------------------------------------------------- framing


@dataclass(frozen=True)
class Frame:
    """A complete message between a start and an end block."""

    payload: bytes


@dataclass(frozen=True)
class Skipped:
    """``size`` bytes outside any frame (or of a frame a new start block abandoned) dropped."""

    size: int


@dataclass(frozen=True)
class Oversized:
    """A frame (or a run of bytes outside frames) passed the maximum; the stream is over.

    ``head`` holds the frame's first bytes (empty for bytes outside a frame).
    """

    head: bytes


Event = Frame | Skipped | Oversized


def frame(payload: bytes) -> bytes:
    """``payload`` in an MLLP block."""
    return START_BLOCK + payload + END_BLOCK + CARRIAGE_RETURN


class Decoder:
    """Incremental MLLP decoder: :meth:`feed` bytes, get the events they complete."""

    def __init__(self, max_frame: int = 1024 * 1024) -> None:
        self.max_frame = max_frame
        self.finished = False  # after an Oversized: nothing more is read
        self._buffer = bytearray()
        self._in_frame = False
        self._scanned = 0  # bytes of the current frame already searched for blocks
        self._after_end = False  # the CR that follows an end block may still come
        self._outside = 0  # bytes skipped since the last start block

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame."""
        return len(self._buffer) if self._in_frame else 0

    def feed(self, data: bytes) -> list[Event]:
        if self.finished:
            return []
        self._buffer += data
        events: list[Event] = []
        while self._buffer and not self.finished:
            if self._after_end:
                self._after_end = False
                if self._buffer[:1] == CARRIAGE_RETURN:
                    del self._buffer[:1]
                    continue
            if not self._in_frame:
                self._seek_start(events)
            else:
                if not self._read_frame(events):
                    break
        return events

    def _seek_start(self, events: list[Event]) -> None:
        at = self._buffer.find(START_BLOCK)
        skipped = len(self._buffer) if at < 0 else at
        if skipped:
            events.append(Skipped(skipped))
            self._outside += skipped
            if self._outside > self.max_frame:
                self._finish(events, b"")
                return
        if at < 0:
            self._buffer.clear()
            return
        del self._buffer[: at + 1]
        self._in_frame, self._scanned, self._outside = True, 0, 0

    def _read_frame(self, events: list[Event]) -> bool:
        """Complete the current frame if its end is here; False when more bytes are needed."""
        end = self._buffer.find(END_BLOCK, self._scanned)
        stop = len(self._buffer) if end < 0 else end
        restart = self._buffer.find(START_BLOCK, self._scanned, stop)
        if restart >= 0:  # a new start block: the sender gave up on the frame before it
            events.append(Skipped(restart + 1))
            del self._buffer[: restart + 1]
            self._scanned = 0
            return True
        length = len(self._buffer) if end < 0 else end
        if length > self.max_frame:
            self._finish(events, bytes(self._buffer[:HEAD_SIZE]))
            return False
        if end < 0:
            self._scanned = len(self._buffer)
            return False
        events.append(Frame(bytes(self._buffer[:end])))
        del self._buffer[: end + 1]
        self._in_frame, self._after_end = False, True
        return True

    def _finish(self, events: list[Event], head: bytes) -> None:
        events.append(Oversized(head))
        self.finished = True
        self._buffer.clear()


# --------------------------------------------------------------------------- listener


@dataclass(frozen=True)
class Peer:
    """The other end of a connection."""

    address: str
    port: int
    tls: bool
    #: SHA-256 of the client certificate (mutual TLS), else None.
    cert_sha256: str | None = None


class FrameReceiver(Protocol):
    """Answers frames; None means no answer (the frame was an acknowledgement itself)."""

    def answer(self, payload: bytes, peer: Peer) -> bytes | None: ...

    def answer_oversized(self, head: bytes, peer: Peer, limit: int) -> bytes | None: ...


class MllpServer(socketserver.ThreadingTCPServer):
    """One thread per connection; TLS handshakes happen there, not in the accepting thread."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        receiver: FrameReceiver,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_frame: int = 1024 * 1024,
        idle_timeout: float = 60.0,
        max_connections: int = 64,
    ) -> None:
        self.receiver = receiver
        self.ssl_context = ssl_context
        self.max_frame = max_frame
        self.idle_timeout = idle_timeout
        self.slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, _Connection)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self, name: str) -> None:
        threading.Thread(target=self.serve_forever, name=name, daemon=True).start()

    def shutdown(self) -> None:
        super().shutdown()
        self.server_close()

    def handle_error(self, request: object, client_address: object) -> None:
        # The connection is lost, the listener is not; the exception's text may quote PHI.
        failed = sys.exc_info()[1]
        log.error("MLLP: a connection failed (%s)", type(failed).__name__)


class _Connection(socketserver.BaseRequestHandler):
    server: MllpServer
    request: socket.socket

    def handle(self) -> None:
        server = self.server
        address, port = self.client_address[0], int(self.client_address[1])
        if not server.slots.acquire(blocking=False):
            log.warning("MLLP: too many connections; %s:%s closed", address, port)
            return
        try:
            self.request.settimeout(server.idle_timeout)
            if server.ssl_context is None:
                self._serve(self.request, Peer(address, port, tls=False))
                return
            try:  # bounded by the idle timeout
                tls = server.ssl_context.wrap_socket(self.request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                log.info("MLLP TLS: handshake with %s failed: %s", address, _why(exc))
                return
            with tls:
                der = tls.getpeercert(binary_form=True)
                cert = certificate_fingerprint(der) if der else None
                self._serve(tls, Peer(address, port, tls=True, cert_sha256=cert))
        finally:
            server.slots.release()

    def _serve(self, sock: socket.socket, peer: Peer) -> None:
        server = self.server
        decoder = Decoder(server.max_frame)
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                log.info("MLLP: %s idle for %ss, closed", peer.address, server.idle_timeout)
                return
            except OSError:  # reset, or a TLS error mid-stream
                return
            if not data:
                if decoder.pending:
                    log.warning(
                        "MLLP: %s closed with an unfinished frame (%d bytes, no end block)",
                        peer.address,
                        decoder.pending,
                    )
                return
            for event in decoder.feed(data):
                if isinstance(event, Skipped):
                    log.warning(
                        "MLLP: %d bytes from %s outside a frame skipped", event.size, peer.address
                    )
                    continue
                if isinstance(event, Frame):
                    answer = server.receiver.answer(event.payload, peer)
                else:
                    log.warning(
                        "MLLP: %s sent more than %d bytes in one frame; closed",
                        peer.address,
                        server.max_frame,
                    )
                    answer = server.receiver.answer_oversized(event.head, peer, server.max_frame)
                if answer is not None:
                    try:
                        sock.sendall(frame(answer))
                    except OSError:
                        return
                if isinstance(event, Oversized):
                    _linger(sock)
                    return


def _linger(sock: socket.socket, seconds: float = 1.0) -> None:
    """Drop what the peer still sends for a moment before closing.

    Closing with unread bytes resets the connection, and a reset can discard
    our answer at the peer before it has read it.
    """
    deadline = time.monotonic() + seconds
    try:
        if not isinstance(sock, ssl.SSLSocket):
            sock.shutdown(socket.SHUT_WR)
        sock.settimeout(0.1)
        while time.monotonic() < deadline:
            try:
                if not sock.recv(65536):
                    return
            except TimeoutError:
                continue
    except OSError:
        return


def _why(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or exc.__class__.__name__)


def start_mllp_server(
    address: tuple[str, int],
    receiver: FrameReceiver,
    *,
    ssl_context: ssl.SSLContext | None = None,
    max_frame: int = 1024 * 1024,
    idle_timeout: float = 60.0,
    max_connections: int = 64,
) -> MllpServer:
    """Listen on ``address`` (port 0 picks one; see :attr:`MllpServer.port`) without blocking."""
    server = MllpServer(
        address,
        receiver,
        ssl_context=ssl_context,
        max_frame=max_frame,
        idle_timeout=idle_timeout,
        max_connections=max_connections,
    )
    kind = "MLLP" if ssl_context is None else "MLLP TLS"
    server.start("mllp-tls-listener" if ssl_context else "mllp-listener")
    log.info("%s listener on %s:%s", kind, address[0], server.port)
    return server
