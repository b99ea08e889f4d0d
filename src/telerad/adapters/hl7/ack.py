"""HL7 v2 message headers and original-mode acknowledgements (pure: no I/O).

Only as much of a message is read as an acknowledgement needs: that it is HL7
(an MSH first, every segment with a well-formed segment ID), and the MSH fields
that say who sent it, what it is, which version, and its control ID. The
contents (PID, ORC, OBR…) are the handler's business.

The answer follows the original acknowledgement mode (HL7 v2.5.1 2.9.2): MSA-1
``AA`` accepted, ``AE`` an application error (the message was understood but
cannot be applied: an unknown facility), ``AR`` rejected (not HL7, no MSH, a
version or message type this listener does not take). MSA-3 and an ERR segment
say why, with an HL7 table 0357 error code.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import hl7

#: HL7 versions this listener understands (MSH-12): 2.3, 2.3.1 … 2.8.2.
SUPPORTED_VERSIONS = re.compile(r"2\.[345678](\.\d+)?")
#: A segment ID: three characters, a letter then letters or digits (Z-segments included).
SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
#: Version written in an answer to a message whose own version cannot be read.
FALLBACK_VERSION = "2.5.1"
#: MSA-3 (Text Message) is ST, at most 80 characters.
TEXT_MESSAGE_LENGTH = 80


class AckCode(enum.StrEnum):
    """HL7 table 0008, original mode."""

    ACCEPT = "AA"
    ERROR = "AE"
    REJECT = "AR"


class ErrorCode(enum.Enum):
    """HL7 table 0357 (message error condition codes): (code, text)."""

    SEGMENT_SEQUENCE = ("100", "Segment sequence error")
    REQUIRED_FIELD_MISSING = ("101", "Required field missing")
    DATA_TYPE = ("102", "Data type error")
    TABLE_VALUE_NOT_FOUND = ("103", "Table value not found")
    UNSUPPORTED_MESSAGE_TYPE = ("200", "Unsupported message type")
    UNSUPPORTED_EVENT = ("201", "Unsupported event code")
    UNSUPPORTED_PROCESSING_ID = ("202", "Unsupported processing id")
    UNSUPPORTED_VERSION = ("203", "Unsupported version id")
    UNKNOWN_KEY = ("204", "Unknown key identifier")
    DUPLICATE_KEY = ("205", "Duplicate key identifier")
    RECORD_LOCKED = ("206", "Application record locked")
    INTERNAL_ERROR = ("207", "Application internal error")

    @property
    def code(self) -> str:
        return self.value[0]

    @property
    def text(self) -> str:
        return self.value[1]


@dataclass(frozen=True)
class ErrorLocation:
    """Where in the message the error is (ERL): segment, its occurrence, field, component.

    ``sequence`` counts occurrences of that segment ID from 1 (the second ORC is
    ``ORC`` 2); ``field`` 0 points at the segment as a whole (a missing segment).
    """

    segment: str
    sequence: int = 1
    field: int = 0
    component: int = 0

    def __str__(self) -> str:
        """The name a person reads: ``ORC-1``, ``PID-5.1``, ``OBR`` (2nd: ``OBR[2]-18``)."""
        name = self.segment if self.sequence == 1 else f"{self.segment}[{self.sequence}]"
        if self.field:
            name += f"-{self.field}"
            if self.component:
                name += f".{self.component}"
        return name

    def components(self) -> list[str]:
        """ERL components 1–3: segment ID, sequence, field (v2.3/2.4 ERR-1 has these only)."""
        return [self.segment, str(self.sequence), str(self.field) if self.field else ""]

    def erl(self) -> list[str]:
        """v2.5+ ERR-2 (ERL): the components, then field repetition 1 and the component."""
        return (
            [*self.components(), "1", str(self.component)] if self.component else self.components()
        )


@dataclass(frozen=True)
class Verdict:
    """What to answer: MSA-1, and for AE/AR the error code and a reason (MSA-3, ERR).

    ``location`` (where known) is written to ERR-2 (v2.5+) or the first components
    of ERR-1 (v2.3, v2.4).
    """

    code: AckCode
    error: ErrorCode | None = None
    reason: str = ""
    location: ErrorLocation | None = None

    @classmethod
    def accepted(cls) -> Verdict:
        return cls(AckCode.ACCEPT)

    @classmethod
    def application_error(
        cls, error: ErrorCode, reason: str, location: ErrorLocation | None = None
    ) -> Verdict:
        return cls(AckCode.ERROR, error, reason, location)

    @classmethod
    def rejected(
        cls, error: ErrorCode, reason: str, location: ErrorLocation | None = None
    ) -> Verdict:
        return cls(AckCode.REJECT, error, reason, location)


@dataclass(frozen=True)
class Header:
    """The MSH fields an acknowledgement needs, as sent (components and escapes kept).

    ``sending_*``/``receiving_*`` are mirrored verbatim into the answer's MSH.
    """

    field_separator: str  # MSH-1
    encoding_characters: str  # MSH-2: component, repetition, escape, subcomponent
    sending_application: str  # MSH-3
    sending_facility: str  # MSH-4
    receiving_application: str  # MSH-5
    receiving_facility: str  # MSH-6
    message_code: str  # MSH-9.1 (ORM, ADT…)
    trigger_event: str  # MSH-9.2 (O01, A04…)
    control_id: str  # MSH-10
    processing_id: str  # MSH-11
    version: str  # MSH-12.1

    @property
    def facility_name(self) -> str:
        """MSH-4.1 (the namespace ID of the sending facility), unescaped."""
        first = self.sending_facility.split(self.encoding_characters[0])[0]
        return unescape(first, self.field_separator, self.encoding_characters)

    @property
    def message_type(self) -> str:
        return f"{self.message_code}^{self.trigger_event}"


class NotAcceptable(Exception):
    """The message cannot be taken: answer with this verdict (an AR), and ``header`` if read."""

    def __init__(self, verdict: Verdict, header: Header | None = None) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict
        self.header = header


def segments(text: str) -> list[str]:
    """The segments of a message: CR is the separator; CR LF and a lone LF are taken too."""
    lines = text.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    return [line for line in lines if line.strip()]


def _reject(error: ErrorCode, reason: str, header: Header | None = None) -> NotAcceptable:
    return NotAcceptable(Verdict.rejected(error, reason), header)


def read_header(text: str) -> Header:
    """The MSH of ``text``, after checking that the message is HL7 v2 in a version we take.

    Raises :class:`NotAcceptable` (an AR) for: no MSH first, a malformed segment,
    a missing MSH-9/MSH-10/MSH-12, or a version outside 2.3–2.8.
    """
    lines = segments(text)
    if not lines or not lines[0].startswith("MSH") or len(lines[0]) < 8:
        raise _reject(ErrorCode.SEGMENT_SEQUENCE, "not an HL7 v2 message: no MSH segment first")
    separator, encoding = lines[0][3], lines[0][4:8]
    delimiters = separator + encoding
    if len(set(delimiters)) != 5 or any(c.isalnum() or c.isspace() for c in delimiters):
        raise _reject(
            ErrorCode.DATA_TYPE, "MSH-1 and MSH-2 are not five distinct delimiter characters"
        )
    try:
        msh = hl7.parse("\r".join(lines)).segment("MSH")
    except Exception:  # python-hl7 raises assorted errors on inputs it cannot split
        raise _reject(ErrorCode.SEGMENT_SEQUENCE, "the MSH segment cannot be read") from None

    def field(n: int) -> str:
        return str(msh(n)) if len(msh) > n else ""

    def component(n: int, c: int) -> str:
        parts = field(n).split(encoding[0])
        return parts[c - 1] if len(parts) >= c else ""

    header = Header(
        field_separator=separator,
        encoding_characters=encoding,
        sending_application=field(3),
        sending_facility=field(4),
        receiving_application=field(5),
        receiving_facility=field(6),
        message_code=component(9, 1),
        trigger_event=component(9, 2),
        control_id=field(10),
        processing_id=field(11),
        version=component(12, 1),
    )
    for number, line in enumerate(lines[1:], start=2):
        if not (SEGMENT_ID.fullmatch(line[:3]) and line[3:4] in ("", separator)):
            raise _reject(
                ErrorCode.SEGMENT_SEQUENCE,
                f"segment {number} is not an HL7 segment (no segment ID)",
                header,
            )
        if line.startswith("MSH"):
            raise _reject(ErrorCode.SEGMENT_SEQUENCE, "a second MSH in one message", header)
    for name, value in (("MSH-9", header.message_code), ("MSH-10", header.control_id)):
        if not value:
            raise _reject(ErrorCode.REQUIRED_FIELD_MISSING, f"{name} is empty", header)
    if not header.version:
        raise _reject(ErrorCode.REQUIRED_FIELD_MISSING, "MSH-12 (version) is empty", header)
    if not SUPPORTED_VERSIONS.fullmatch(header.version):
        reason = f"HL7 version {header.version[:10]} is not supported (2.3 to 2.8)"
        raise _reject(ErrorCode.UNSUPPORTED_VERSION, reason, header)
    return header


def check_type(header: Header, accepted: dict[str, frozenset[str]]) -> None:
    """Raise an AR unless MSH-9 is a message type (and trigger event) ``accepted`` lists.

    ``accepted`` maps message codes to their trigger events; an empty set takes any event.
    """
    events = accepted.get(header.message_code)
    if events is None:
        reason = f"message type {header.message_code[:10]} is not accepted here"
        raise _reject(ErrorCode.UNSUPPORTED_MESSAGE_TYPE, reason, header)
    if events and header.trigger_event not in events:
        reason = f"event {header.message_type[:20]} is not accepted here"
        raise _reject(ErrorCode.UNSUPPORTED_EVENT, reason, header)


def escape(text: str, separator: str = "|", encoding: str = "^~\\&") -> str:
    """``text`` with the delimiters replaced by HL7 escape sequences (\\F\\, \\S\\…)."""
    component, repetition, esc, subcomponent = encoding[0], encoding[1], encoding[2], encoding[3]
    table = {
        esc: f"{esc}E{esc}",
        separator: f"{esc}F{esc}",
        component: f"{esc}S{esc}",
        subcomponent: f"{esc}T{esc}",
        repetition: f"{esc}R{esc}",
    }
    return "".join(table.get(ch, ch) for ch in text if ch not in "\r\n")


def unescape(text: str, separator: str = "|", encoding: str = "^~\\&") -> str:
    """The delimiter escape sequences of ``text`` back to the characters they stand for."""
    component, repetition, esc, subcomponent = encoding[0], encoding[1], encoding[2], encoding[3]
    table = {"F": separator, "S": component, "T": subcomponent, "R": repetition, "E": esc}
    pattern = re.compile(re.escape(esc) + "([FSTRE])" + re.escape(esc))
    return pattern.sub(lambda m: table[m.group(1)], text)


def build_ack(
    verdict: Verdict,
    header: Header | None,
    control_id: str,
    *,
    now: datetime | None = None,
) -> str:
    """The ACK for a message whose MSH is ``header`` (None when it could not be read).

    The answer's MSH mirrors the sender and receiver, echoes the trigger event,
    processing ID and version; MSA-2 is the message's control ID. ``control_id``
    is the ACK's own MSH-10. Segments end with CR, as on the wire.
    """
    sep = header.field_separator if header else "|"
    enc = header.encoding_characters if header else "^~\\&"
    comp = enc[0]
    version = header.version if header else FALLBACK_VERSION
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    # ACK^<event>^ACK: the message structure component exists from v2.3.1 on.
    event = header.trigger_event if header else ""
    kind = comp.join(["ACK", event] if version == "2.3" else ["ACK", event, "ACK"]).rstrip(comp)
    msh = [
        "MSH",
        enc,
        header.receiving_application if header else "",
        header.receiving_facility if header else "",
        header.sending_application if header else "",
        header.sending_facility if header else "",
        stamp,
        "",
        kind,
        escape(control_id, sep, enc),
        (header.processing_id if header else "") or "P",
        version,
    ]
    reason = escape(verdict.reason, sep, enc)
    msa = ["MSA", verdict.code.value, header.control_id if header else ""]
    if verdict.code is not AckCode.ACCEPT:
        msa.append(reason[:TEXT_MESSAGE_LENGTH])
    lines = [sep.join(msh), sep.join(msa)]
    if verdict.error is not None:
        lines.append(_err_segment(verdict.error, reason, verdict.location, version, sep, enc))
    return "\r".join(lines) + "\r"


def _err_segment(
    error: ErrorCode,
    reason: str,
    location: ErrorLocation | None,
    version: str,
    sep: str,
    enc: str,
) -> str:
    comp, subcomp = enc[0], enc[3]
    coded = [error.code, escape(error.text, sep, enc), "HL70357"]
    if version.startswith(("2.3", "2.4")):
        # ERR-1 (error code and location, CM_ELD): segment^sequence^field^code (CE).
        where = location.components() if location else ["", "", ""]
        return sep.join(["ERR", comp.join([*where, subcomp.join(coded)])])
    # v2.5+: ERR-2 error location (ERL), ERR-3 HL7 error code (CWE), ERR-4 severity,
    # ERR-8 user message.
    erl = comp.join(location.erl()).rstrip(comp) if location else ""
    return sep.join(["ERR", "", erl, comp.join(coded), "E", "", "", "", reason])
