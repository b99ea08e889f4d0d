"""From an MLLP frame to its acknowledgement: decode, check, hand to a handler, answer.

The checks any listener makes (HL7 at all, the version, a message type it
takes) answer AR here; what the message means is the handler's business, and
its :class:`~telerad.adapters.hl7.ack.Verdict` (AA, or AE with a reason) is the
answer. A handler that raises answers AE "application internal error": a bad
message never takes the listener down.

:func:`facility_handler` is the platform's handler: a message is taken when
MSH-4 names a registered facility that may send from the peer's address (and
with its pinned certificate); its orders (ORM^O01, OMI^O23) or patient updates
(ADT A01/A04/A08, A40) are read (:mod:`telerad.adapters.hl7.orders`) and applied
through the order service (:mod:`telerad.adapters.hl7.handling`); the message
service (:mod:`telerad.services.messages`) admits it and audits its receipt with
the answer. The log names the control ID, the message type and the error code,
never a value from the message.
"""

from __future__ import annotations

import logging
import ssl
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from telerad.adapters.hl7.ack import (
    AckCode,
    ErrorCode,
    Header,
    NotAcceptable,
    Verdict,
    build_ack,
    check_type,
    read_header,
    segments,
)
from telerad.adapters.hl7.handling import apply_orders, apply_patients
from telerad.adapters.hl7.mllp import MllpServer, Peer, start_mllp_server
from telerad.adapters.hl7.orders import Hl7Error, read_orders, read_patients
from telerad.domain.model import Facility
from telerad.services.messages import Sent
from telerad.services.orders import Origin
from telerad.services.platform import Platform

log = logging.getLogger(__name__)

#: Orders and patient administration: message code → trigger events (empty: any).
ORDER_MESSAGES: Mapping[str, frozenset[str]] = {
    "ORM": frozenset({"O01"}),
    "OMI": frozenset({"O23"}),
    "ADT": frozenset(),
}


@dataclass(frozen=True)
class Message:
    """A message that passed the listener's checks, as text, with its header and sender."""

    header: Header
    text: str
    peer: Peer


Handler = Callable[[Message], Verdict]


def decode(payload: bytes) -> tuple[str, str]:
    """The text of a frame and its codec: UTF-8 (ASCII included), else ISO 8859-1."""
    try:
        return payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return payload.decode("latin-1"), "latin-1"


class Receiver:
    """Answers each frame with an ACK (see :mod:`telerad.adapters.hl7.ack`)."""

    def __init__(
        self, handler: Handler, accepted: Mapping[str, frozenset[str]] = ORDER_MESSAGES
    ) -> None:
        self.handler = handler
        self.accepted = dict(accepted)

    def answer(self, payload: bytes, peer: Peer) -> bytes | None:
        text, codec = decode(payload)
        header: Header | None = None
        try:
            header = read_header(text)
            if header.message_code == "ACK":
                return None  # never acknowledge an acknowledgement
            check_type(header, self.accepted)
        except NotAcceptable as exc:
            verdict, header = exc.verdict, exc.header
            log.info("HL7 from %s rejected: %s", peer.address, verdict.reason)
        else:
            verdict = self._handle(Message(header, text, peer))
        return self._ack(verdict, header, codec)

    def answer_oversized(self, head: bytes, peer: Peer, limit: int) -> bytes | None:
        """An AR for a message longer than ``limit``, when its MSH arrived whole; else None."""
        text, codec = decode(head)
        lines = segments(text)
        if len(lines) < 2:  # the MSH may be cut short: do not answer from half a header
            return None
        reason = f"message longer than {limit} bytes"
        header: Header | None
        try:
            header = read_header(lines[0])
        except NotAcceptable as exc:
            header = exc.header
        if header is None:
            return None
        return self._ack(Verdict.rejected(ErrorCode.INTERNAL_ERROR, reason), header, codec)

    def _handle(self, message: Message) -> Verdict:
        try:
            return self.handler(message)
        except Exception as exc:  # the message's fault or ours: an AE, never a dead listener
            # Type and place only: an exception's text may quote the message (PHI).
            where = "".join(traceback.format_tb(exc.__traceback__)[-3:])
            log.error("HL7 handler failed: %s\n%s", type(exc).__name__, where)
            return Verdict.application_error(
                ErrorCode.INTERNAL_ERROR, "internal error while processing the message"
            )

    @staticmethod
    def _ack(verdict: Verdict, header: Header | None, codec: str) -> bytes:
        text = build_ack(verdict, header, uuid.uuid4().hex[:20])
        return text.encode(codec, errors="replace")


@dataclass(frozen=True)
class _Answered:
    """A verdict as the receipt's audit record names it."""

    verdict: Verdict

    @property
    def code(self) -> str:
        error = self.verdict.error
        return self.verdict.code.value + (f" {error.code}" if error else "")

    @property
    def accepted(self) -> bool:
        return self.code == AckCode.ACCEPT.value


def facility_handler(platform: Platform) -> Handler:
    """Apply orders and patient updates from registered facilities (the message service
    admits each and audits its receipt)."""

    def handle(message: Message) -> Verdict:
        header, peer = message.header, message.peer
        actor = header.sending_application.split(header.encoding_characters[0])[0] or "HL7"
        sent = Sent(
            facility_name=header.facility_name,
            sender=actor,
            address=peer.address,
            cert_sha256=peer.cert_sha256,
            message_type=header.message_type,
            control_id=header.control_id,
            patient_update=header.message_code == "ADT",
            tls=peer.tls,
        )

        def apply(facility: Facility) -> _Answered:
            origin = Origin("HL7", actor, peer.address)
            return _Answered(_apply(platform, message, facility.id, origin))

        answered = platform.messages.receive(sent, apply)
        if answered is None:
            # One answer for a name that does not exist and one this sender may not use.
            _log(header, peer, "AE", ErrorCode.UNKNOWN_KEY)
            return Verdict.application_error(
                ErrorCode.UNKNOWN_KEY,
                f"unknown facility in MSH-4: {header.facility_name[:40]!r} "
                "is not registered for this sender",
            )
        verdict = answered.verdict
        _log(header, peer, verdict.code.value, verdict.error)
        return verdict

    return handle


def _apply(platform: Platform, message: Message, facility_id: int, origin: Origin) -> Verdict:
    """Read the message whole, then apply it: AA, or AE naming the field and why."""
    header = message.header
    try:
        if header.message_code == "ADT":
            patients = read_patients(message.text, header.trigger_event)
            apply_patients(platform.orders, facility_id, patients, origin)
        else:
            orders = read_orders(
                message.text, header.message_code, facility_id, platform.orders.catalogue
            )
            apply_orders(platform.orders, orders, origin)
    except Hl7Error as exc:
        return exc.verdict
    return Verdict.accepted()


def _log(header: Header, peer: Peer, code: str, error: ErrorCode | None) -> None:
    # Control ID, type and outcome only: no value from the message body (PHI).
    log.info(
        "HL7 %s %s from %s: %s%s",
        header.message_type[:20],
        header.control_id[:20],
        peer.address,
        code,
        f" {error.code}" if error else "",
    )


def start_mllp(
    platform: Platform,
    *,
    port: int | None = None,
    ssl_context: ssl.SSLContext | None = None,
    handler: Handler | None = None,
) -> MllpServer:
    """The platform's MLLP listener on TELERAD_MLLP_HOST and ``port`` (default TELERAD_MLLP_PORT).

    With ``ssl_context`` it is the TLS listener; ``port`` 0 picks a free port.
    """
    s = platform.settings
    address = (s.mllp_host, s.mllp_port if port is None else port)
    try:
        return start_mllp_server(
            address,
            Receiver(handler or facility_handler(platform)),
            ssl_context=ssl_context,
            max_frame=s.mllp_max_frame,
            idle_timeout=s.mllp_idle_timeout,
            max_connections=s.mllp_max_connections,
        )
    except OSError as exc:
        setting = "TELERAD_MLLP_PORT" if ssl_context is None else "TELERAD_MLLP_TLS_PORT"
        where = f"{address[0]}:{address[1]}"
        raise OSError(exc.errno, f"MLLP on {where} ({setting}): {exc.strerror}") from exc
