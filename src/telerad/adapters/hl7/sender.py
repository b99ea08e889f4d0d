"""Sending an HL7 v2 message over MLLP (plain or TLS) and judging the acknowledgement.

One connection per message: connect (``connect_timeout``), TLS when the endpoint
asks for it (the peer's certificate and host name checked), the framed message,
then one framed answer within ``answer_timeout``. What comes back decides
(:func:`judge`): ``AA``/``CA`` whose MSA-2 is our control ID is accepted;
``AE``/``AR``/``CE``/``CR`` are refused, with MSA-3 and the ERR segment's text;
anything else — a refused connection, a failed handshake, silence, a connection
closed before or in the middle of the answer (or while we were still sending),
bytes that are not an acknowledgement of this message — failed. The sender
never raises: the outbox worker decides what happens next.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass

from telerad.adapters.hl7.ack import unescape
from telerad.adapters.hl7.mllp import Decoder, Frame, Oversized, Skipped, frame
from telerad.domain.outbox import Delivery, Endpoint, OutboxError, Outcome, host_port

#: Longest detail kept from an answer's texts.
DETAIL = 300


@dataclass
class MllpSender:
    connect_timeout: float = 5.0
    answer_timeout: float = 15.0
    #: The client context for endpoints that take TLS (None: the system's CAs, no client
    #: certificate).
    tls: ssl.SSLContext | None = None
    max_answer: int = 1024 * 1024

    def send(self, endpoint: Endpoint, message_id: str, payload: str) -> Delivery:
        try:
            host, port = host_port(endpoint.address)
        except OutboxError as exc:
            return Delivery(Outcome.FAILED, str(exc))
        where = f"{host}:{port}"
        try:
            sock = socket.create_connection((host, port), timeout=self.connect_timeout)
        except TimeoutError:
            return Delivery(Outcome.FAILED, f"{where}: no connection in {self.connect_timeout:g} s")
        except OSError as exc:
            return Delivery(Outcome.FAILED, f"{where}: cannot connect ({_why(exc)})")
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if endpoint.tls:
                context = self.tls or ssl.create_default_context()
                try:
                    sock = context.wrap_socket(sock, server_hostname=host)
                except (ssl.SSLError, OSError) as exc:
                    return Delivery(Outcome.FAILED, f"{where}: TLS handshake failed ({_why(exc)})")
            return self._exchange(sock, where, message_id, payload)
        finally:
            sock.close()

    def _exchange(self, sock: socket.socket, where: str, message_id: str, payload: str) -> Delivery:
        deadline = time.monotonic() + self.answer_timeout
        try:
            sock.settimeout(self.answer_timeout)
            sock.sendall(frame(payload.encode("utf-8")))
        except TimeoutError:
            return Delivery(Outcome.FAILED, f"{where}: the message could not be sent in time")
        except OSError as exc:
            return Delivery(Outcome.FAILED, f"{where}: closed while sending ({_why(exc)})")
        decoder = Decoder(self.max_answer)
        outside = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return _silent(where, self.answer_timeout, outside, decoder)
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                return _silent(where, self.answer_timeout, outside, decoder)
            except OSError as exc:
                return Delivery(Outcome.FAILED, f"{where}: connection lost ({_why(exc)})")
            if not data:
                if decoder.pending:
                    what = f"closed in the middle of its answer ({decoder.pending} bytes)"
                elif outside:
                    what = f"sent {outside} bytes that are not an MLLP frame, then closed"
                else:
                    what = "closed without answering"
                return Delivery(Outcome.FAILED, f"{where}: {what}")
            for event in decoder.feed(data):
                if isinstance(event, Skipped):
                    outside += event.size
                elif isinstance(event, Oversized):
                    return Delivery(
                        Outcome.FAILED, f"{where}: an answer of over {self.max_answer} bytes"
                    )
                elif isinstance(event, Frame):
                    return judge(event.payload, message_id)


def _silent(where: str, timeout: float, outside: int, decoder: Decoder) -> Delivery:
    if decoder.pending:
        return Delivery(Outcome.FAILED, f"{where}: an unfinished answer after {timeout:g} s")
    if outside:
        return Delivery(Outcome.FAILED, f"{where}: {outside} bytes that are not an MLLP frame")
    return Delivery(Outcome.FAILED, f"{where}: no answer in {timeout:g} s")


def judge(answer: bytes, message_id: str) -> Delivery:
    """What an acknowledgement of ``message_id`` says (see the module)."""
    text = answer.decode("utf-8", errors="replace")
    kept = text[:65536]
    segments = [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s]
    if not segments or not segments[0].startswith("MSH") or len(segments[0]) < 8:
        return Delivery(Outcome.FAILED, "the answer is not HL7 (no MSH)", kept)
    separator, encoding = segments[0][3], segments[0][4:8]
    msa = next((s.split(separator) for s in segments if s[:4] == f"MSA{separator}"), None)
    if msa is None or len(msa) < 3:
        return Delivery(Outcome.FAILED, "the answer is not an acknowledgement (no MSA)", kept)
    code = msa[1].strip()
    acknowledged = unescape(msa[2].strip(), separator, encoding)
    if acknowledged != message_id:
        return Delivery(
            Outcome.FAILED, f"the answer acknowledges another message ({acknowledged[:64]!r})", kept
        )
    reason = _reason(msa, segments, separator, encoding)
    if code in ("AA", "CA"):
        return Delivery(Outcome.ACCEPTED, code + (f": {reason}" if reason else ""), kept)
    if code in ("AE", "AR", "CE", "CR"):
        return Delivery(Outcome.REFUSED, f"{code}: {reason or 'no reason given'}"[:DETAIL], kept)
    return Delivery(Outcome.FAILED, f"the answer's MSA-1 is {code[:8]!r}, not an ACK code", kept)


def _reason(msa: list[str], segments: list[str], separator: str, encoding: str) -> str:
    """MSA-3, and each ERR's code text (ERR-3.2, or ERR-1's in v2.3/2.4) and message (ERR-8)."""
    component = encoding[0]
    texts = [msa[3]] if len(msa) > 3 and msa[3].strip() else []
    for segment in segments:
        if not segment.startswith(f"ERR{separator}"):
            continue
        fields = segment.split(separator)
        if len(fields) > 3 and fields[3]:  # v2.5+: ERR-3 (CWE) code ^ text
            parts = fields[3].split(component)
            texts.append(parts[1] if len(parts) > 1 else "")
        elif len(fields) > 1:  # v2.3/2.4: ERR-1 segment ^ sequence ^ field ^ code & text
            parts = fields[1].split(component)
            coded = parts[3].split(encoding[3]) if len(parts) > 3 else []
            texts.append(coded[1] if len(coded) > 1 else "")
        if len(fields) > 8 and fields[8].strip():
            texts.append(fields[8])
    seen: list[str] = []
    for t in (unescape(t.strip(), separator, encoding) for t in texts):
        if t and t not in seen:
            seen.append(t)
    return "; ".join(seen)[:DETAIL]


def _why(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or type(exc).__name__)
