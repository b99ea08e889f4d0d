"""pynetdicom's DIMSE provider, tuned: command sets encoded and decoded directly,
without a pydicom Dataset, and C-STOREs served where they are decoded.

pynetdicom turns every command set into a pydicom Dataset and back: about
1 ms to encode a C-STORE-RSP and 0.4 ms to decode a C-STORE-RQ, more than
the rest of the message costs. A command set is a dozen elements of group
0000 in Implicit VR Little Endian, so this module reads and writes them with
``struct``, producing the same bytes (tested against pynetdicom's encoder)
and the same primitives. Anything unusual — a retired command element,
chunked dataset options, handlers bound to the DIMSE events — goes through
pynetdicom's own path unchanged.

Two small liberties, both standard: a message's command and the first
fragment of its dataset travel in one P-DATA-TF when they fit, and received
dataset fragments are collected without copying them twice.

Overrides :class:`pynetdicom.dimse.DIMSEServiceProvider` (pynetdicom 3.0.4, see
:mod:`telerad.adapters.dimse.upstream`): ``__init__`` (the state of a message
being assembled, the inline ``store_handler``), ``send_msg`` (a message's
P-DATA primitives built from :func:`command_of` and :func:`p_data`) and
``receive_primitive`` (fragments assembled by :meth:`FastDIMSE._receive_pdv`);
new is ``receive_pdata_tf``, which the tuned DUL
(:mod:`telerad.adapters.dimse.tuned_dul`) calls with a P-DATA-TF's body. It
also reads pynetdicom's message tables (``_MESSAGE_TYPES``,
``_COMMAND_SET_KEYWORDS``, ``_DATASET_KEYWORDS``, ``_MSG_TO_PRIMITVE``).
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BytesIO
from typing import Any, cast

from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pynetdicom import _config, evt
from pynetdicom.dimse import _RQ_TO_MESSAGE, _RSP_TO_MESSAGE, DIMSEServiceProvider
from pynetdicom.dimse_messages import (
    _COMMAND_SET_KEYWORDS,
    _DATASET_KEYWORDS,
    _MESSAGE_TYPES,
    _MSG_TO_PRIMITVE,
)
from pynetdicom.dimse_primitives import C_CANCEL, C_STORE, N_EVENT_REPORT
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.utils import make_target

from telerad.adapters.dimse.tuned_dul import P_DATA_TF_TYPE

log = logging.getLogger(__name__)

#: The command elements of PS3.7 (retired ones are left to pynetdicom).
COMMAND_ELEMENTS: dict[int, tuple[str, str]] = {
    0x0000: ("CommandGroupLength", "UL"),
    0x0002: ("AffectedSOPClassUID", "UI"),
    0x0003: ("RequestedSOPClassUID", "UI"),
    0x0100: ("CommandField", "US"),
    0x0110: ("MessageID", "US"),
    0x0120: ("MessageIDBeingRespondedTo", "US"),
    0x0600: ("MoveDestination", "AE"),
    0x0700: ("Priority", "US"),
    0x0800: ("CommandDataSetType", "US"),
    0x0900: ("Status", "US"),
    0x0901: ("OffendingElement", "AT"),
    0x0902: ("ErrorComment", "LO"),
    0x0903: ("ErrorID", "US"),
    0x1000: ("AffectedSOPInstanceUID", "UI"),
    0x1001: ("RequestedSOPInstanceUID", "UI"),
    0x1002: ("EventTypeID", "US"),
    0x1005: ("AttributeIdentifierList", "AT"),
    0x1008: ("ActionTypeID", "US"),
    0x1020: ("NumberOfRemainingSuboperations", "US"),
    0x1021: ("NumberOfCompletedSuboperations", "US"),
    0x1022: ("NumberOfFailedSuboperations", "US"),
    0x1023: ("NumberOfWarningSuboperations", "US"),
    0x1030: ("MoveOriginatorApplicationEntityTitle", "AE"),
    0x1031: ("MoveOriginatorMessageID", "US"),
}
BY_KEYWORD: dict[str, tuple[int, str]] = {kw: (el, vr) for el, (kw, vr) in COMMAND_ELEMENTS.items()}
NO_DATASET = 0x0101
_ITEM_LENGTH = struct.Struct(">L")
#: A command set holds a few short elements; more than this is not a command.
MAX_COMMAND_SET = 64 * 1024
HAS_DATASET = 0x0001
_COMMAND_FIELDS = {message[0]: field for field, message in _MESSAGE_TYPES.items()}


class Unsupported(ValueError):
    """A command this module leaves to pynetdicom."""


def _value_bytes(vr: str, value: Any) -> bytes:
    if vr == "US":
        return struct.pack("<H", int(value))
    if vr == "UL":
        return struct.pack("<L", int(value))
    if vr == "AT":
        tags = value if isinstance(value, (list, tuple)) else [value]
        return b"".join(struct.pack("<HH", int(t) >> 16, int(t) & 0xFFFF) for t in tags)
    text = str(value)
    if vr == "AE" and not _config.USE_SHORT_DIMSE_AET:
        text = text.ljust(16)
    raw = text.encode("ascii" if vr in ("UI", "AE") else "latin-1")
    if len(raw) % 2:
        raw += b"\0" if vr == "UI" else b" "
    return raw


def encode_command(elements: dict[int, tuple[str, Any]]) -> bytes:
    """Implicit VR Little Endian command set (with its group length) from element → (VR, value)."""
    body = bytearray()
    for element in sorted(elements):
        vr, value = elements[element]
        raw = _value_bytes(vr, value)
        body += struct.pack("<HHL", 0, element, len(raw))
        body += raw
    return struct.pack("<HHLL", 0, 0, 4, len(body)) + bytes(body)


def decode_command(data: bytes) -> dict[int, Any]:
    """Element → value of an Implicit VR Little Endian command set; Unsupported for the unusual."""
    values: dict[int, Any] = {}
    offset, end = 0, len(data)
    while offset < end:
        if offset + 8 > end:
            raise ValueError("truncated command set")
        group, element, length = struct.unpack_from("<HHL", data, offset)
        offset += 8
        raw = data[offset : offset + length]
        if len(raw) != length:
            raise ValueError("truncated command element")
        offset += length
        if group != 0:
            raise ValueError("command set element outside group 0000")
        known = COMMAND_ELEMENTS.get(element)
        if known is None:
            raise Unsupported(f"command element (0000,{element:04X})")
        vr = known[1]
        if vr == "US":
            if length != 2:
                raise Unsupported("multi-valued US in a command set")
            values[element] = struct.unpack("<H", raw)[0]
        elif vr == "UL":
            values[element] = struct.unpack("<L", raw)[0]
        elif vr == "AT":
            tags = [BaseTag((g << 16) | e) for g, e in struct.iter_unpack("<HH", raw)]
            values[element] = tags[0] if len(tags) == 1 else tags
        elif vr == "UI":
            values[element] = raw.decode("ascii").rstrip("\0 ")
        else:  # AE, LO
            values[element] = raw.decode("latin-1").strip(" \0")
    if 0x0100 not in values:
        raise ValueError("no Command Field")
    return values


def _message_class_name(primitive: Any) -> str | None:
    table = _RQ_TO_MESSAGE if primitive.MessageIDBeingRespondedTo is None else _RSP_TO_MESSAGE
    cls = table.get(type(primitive))
    return cls.__name__ if cls is not None else None


def command_of(primitive: Any) -> tuple[bytes, BytesIO | None]:
    """The encoded command set of a DIMSE primitive and the dataset that follows it."""
    name = _message_class_name(primitive)
    if name is None:
        raise Unsupported(type(primitive).__name__)
    message_type = name.replace("_", "-")
    elements: dict[int, tuple[str, Any]] = {}
    for keyword in _COMMAND_SET_KEYWORDS[message_type]:
        if keyword in ("CommandGroupLength", "CommandField", "CommandDataSetType"):
            continue
        value = getattr(primitive, keyword, None)
        if value is None:
            continue
        element, vr = BY_KEYWORD[keyword]
        elements[element] = (vr, value)
    dataset = getattr(primitive, _DATASET_KEYWORDS[name]) if name in _DATASET_KEYWORDS else None
    elements[0x0100] = ("US", _COMMAND_FIELDS[message_type])
    # As pynetdicom: any dataset object present, even empty, means "a dataset follows".
    elements[0x0800] = ("US", HAS_DATASET if dataset else NO_DATASET)
    return encode_command(elements), dataset


def _fragments(data: bytes, room: int, last: int, more: int) -> Iterator[bytes]:
    """PDV payloads (control header + fragment) of at most ``room`` data bytes each."""
    if not room or len(data) <= room:
        yield bytes([last]) + data
        return
    view = memoryview(data)
    for start in range(0, len(data), room):
        header = last if start + room >= len(data) else more
        yield bytes([header]) + view[start : start + room].tobytes()


def p_data(context_id: int, command: bytes, dataset: bytes, max_pdu: int) -> Iterator[P_DATA]:
    """P-DATA primitives for a message; PDVs share a P-DATA-TF while they fit in ``max_pdu``."""
    room = max_pdu - 6 if max_pdu else 0  # a PDV item: length (4), context ID, control header
    pdvs = list(_fragments(command, room, 0x03, 0x01))
    if dataset:
        pdvs += list(_fragments(dataset, room, 0x02, 0x00))
    pending: list[Any] = []  # pynetdicom wants [context ID, PDV] lists
    used = 0
    for pdv in pdvs:
        size = 4 + 1 + len(pdv)  # item length field, context ID, control header + data
        if pending and max_pdu and used + size > max_pdu:
            primitive = P_DATA()
            primitive.presentation_data_value_list = pending
            yield primitive
            pending, used = [], 0
        pending.append([context_id, pdv])
        used += size
    primitive = P_DATA()
    primitive.presentation_data_value_list = pending
    yield primitive


@dataclass
class InlineStoreEvent:
    """What a C-STORE handler reads of a pynetdicom event, for requests served inline."""

    request: Any
    context: (
        Any  # pynetdicom's PresentationContextTuple: context_id, abstract_syntax, transfer_syntax
    )
    assoc: Any


class FastDIMSE(DIMSEServiceProvider):
    """pynetdicom's DIMSE provider with direct command encoding and decoding.

    With a ``store_handler``, C-STORE requests are served right where they are
    decoded, in the DUL thread: the peer waits for the response anyway (no
    asynchronous operations are negotiated), and handing each request to the
    association thread and the response back costs two thread switches and
    pynetdicom's service-class machinery per instance. The handler is called
    like an EVT_C_STORE handler and its status is answered the same way.
    """

    def __init__(self, assoc: Any, store_handler: Callable[[Any], Any] | None = None) -> None:
        super().__init__(assoc)
        self.store_handler = store_handler
        self._command_parts: list[bytes] = []
        self._command_size = 0
        self._fields: dict[int, Any] | None = None
        self._dataset: BytesIO | None = None
        self._context_id: int | None = None

    def _plain(self, event: Any) -> bool:
        """True when nothing is bound to ``event`` (so no DIMSEMessage object is needed)."""
        return not self.assoc._handlers.get(event)

    # -- sending -----------------------------------------------------------------
    def send_msg(self, primitive: Any, context_id: int) -> None:
        if getattr(primitive, "_dataset_path", None) or not self._plain(evt.EVT_DIMSE_SENT):
            super().send_msg(primitive, context_id)
            return
        try:
            command, dataset = command_of(primitive)
        except Unsupported:
            super().send_msg(primitive, context_id)
            return
        data = dataset.getvalue() if dataset is not None else b""
        for pdata in p_data(context_id, command, data, self.maximum_pdu_size):
            self.dul.send_pdu(pdata)

    # -- receiving ---------------------------------------------------------------
    def receive_primitive(self, primitive: P_DATA) -> None:
        if _config.STORE_RECV_CHUNKED_DATASET or not self._plain(evt.EVT_DIMSE_RECV):
            super().receive_primitive(primitive)
            return
        self._receive_pdvs(list(primitive.presentation_data_value_list))

    def receive_pdata_tf(self, body: bytes | bytearray) -> bool:
        """The body of a P-DATA-TF PDU, straight from the socket: its PDV items
        are cut out as views of ``body`` (not copied) and handled as
        :meth:`receive_primitive` would. False when the items are malformed."""
        pdvs: list[Any] = []
        view = memoryview(body)
        offset, end = 0, len(body)
        while offset < end:
            if offset + 4 > end:
                return False
            (length,) = _ITEM_LENGTH.unpack_from(body, offset)
            # An item holds a context ID and a PDV of at least its control header.
            if length < 2 or offset + 4 + length > end:
                return False
            pdvs.append((body[offset + 4], view[offset + 5 : offset + 4 + length]))
            offset += 4 + length
        if _config.STORE_RECV_CHUNKED_DATASET or not self._plain(evt.EVT_DIMSE_RECV):
            primitive = P_DATA()
            primitive.presentation_data_value_list = [(c, bytes(d)) for c, d in pdvs]
            super().receive_primitive(primitive)
        else:
            self._receive_pdvs(pdvs)
        return True

    def _receive_pdvs(self, pdvs: list[Any]) -> None:
        for i, (context_id, data) in enumerate(pdvs):
            if self.message is not None:  # pynetdicom is decoding this message
                rest = P_DATA()
                rest.presentation_data_value_list = [(c, bytes(d)) for c, d in pdvs[i:]]
                super().receive_primitive(rest)
                return
            self._receive_pdv(context_id, data)

    def _receive_pdv(self, context_id: int, data: bytes) -> None:
        header = data[0]
        if header & 0x01:  # command fragment
            if self._dataset is not None:
                self._invalid("a command fragment inside a dataset")
                return
            self._command_parts.append(data[1:])
            self._command_size += len(data) - 1
            if self._command_size > MAX_COMMAND_SET:
                self._invalid("a command set larger than any command")
                return
            if header & 0x02:
                self._command_complete(context_id)
            return
        if self._dataset is None or context_id != self._context_id:
            self._invalid("a dataset fragment without its command")
            return
        self._dataset.write(memoryview(data)[1:])
        if header & 0x02:
            self._message_complete()

    def _command_complete(self, context_id: int) -> None:
        command = b"".join(self._command_parts)
        self._command_parts, self._command_size = [], 0
        try:
            fields = decode_command(command)
        except Unsupported:
            # Hand the whole message to pynetdicom, starting with its command.
            whole = P_DATA()
            whole.presentation_data_value_list = [cast(Any, [context_id, b"\x03" + command])]
            super().receive_primitive(whole)
            return
        except Exception:
            self._invalid("an undecodable command set")
            return
        self._fields, self._context_id = fields, context_id
        if fields.get(0x0800, NO_DATASET) == NO_DATASET:
            self._message_complete()
        else:
            self._dataset = BytesIO()

    def _message_complete(self) -> None:
        fields, context_id, dataset = self._fields, self._context_id, self._dataset
        self._fields = self._context_id = self._dataset = None
        assert fields is not None and context_id is not None
        try:
            primitive = self._primitive(fields, dataset)
        except Exception as exc:
            log.warning("invalid DIMSE message received: %s", type(exc).__name__)
            self.dul.event_queue.put("Evt19")  # as pynetdicom: ends the association
            return
        primitive._context_id = context_id
        if isinstance(primitive, C_CANCEL) and len(self.cancel_req) < 10:
            self.cancel_req[int(primitive.MessageIDBeingRespondedTo or 0)] = primitive
        elif self._inline_store(primitive, context_id):
            self._serve_store(primitive, context_id)
        elif isinstance(primitive, N_EVENT_REPORT) and primitive.is_valid_request:
            # As pynetdicom: served at once, in its own thread, not to block the DUL.
            threading.Thread(
                target=make_target(self.assoc._serve_request), args=(primitive, context_id)
            ).start()
        else:
            self.msg_queue.put((context_id, primitive))

    def _inline_store(self, primitive: Any, context_id: int) -> bool:
        if self.store_handler is None or not isinstance(primitive, C_STORE):
            return False
        assoc = self.assoc
        context = assoc._accepted_cx.get(context_id)
        return bool(
            primitive.is_valid_request
            and context is not None
            and context.as_scp
            and context.abstract_syntax == primitive.AffectedSOPClassUID
            and assoc.is_established
            and not assoc._sent_release
            and not _config.UNRESTRICTED_STORAGE_SERVICE
        )

    def _serve_store(self, request: Any, context_id: int) -> None:
        assert self.store_handler is not None
        self.cancel_req = {}
        context = self.assoc._accepted_cx[context_id]
        try:
            status = self.store_handler(InlineStoreEvent(request, context.as_tuple, self.assoc))
        except Exception as exc:  # as pynetdicom: a failing handler is 0xC211
            log.error("C-STORE handler failed: %s", type(exc).__name__)
            status = 0xC211
        comment = None
        if isinstance(status, Dataset):
            comment = status.get("ErrorComment")
            status = status.Status
        elements: dict[int, tuple[str, Any]] = {
            0x0002: ("UI", request.AffectedSOPClassUID),
            0x0100: ("US", 0x8001),  # C-STORE-RSP
            0x0120: ("US", request.MessageID),
            0x0800: ("US", NO_DATASET),
            0x0900: ("US", int(status)),
            0x1000: ("UI", request.AffectedSOPInstanceUID),
        }
        if comment:
            elements[0x0902] = ("LO", comment)
        command = encode_command(elements)
        if self._send_now(context_id, command):
            return
        for pdata in p_data(context_id, command, b"", self.maximum_pdu_size):
            self.dul.send_pdu(pdata)

    def _send_now(self, context_id: int, command: bytes) -> bool:
        """Send a command-only message as one P-DATA-TF straight from the DUL
        thread, when the DUL allows it and it fits in one PDV."""
        send_now = getattr(self.dul, "send_pdata_now", None)
        item_length = 2 + len(command)  # context ID, control header, command
        if send_now is None or (self.maximum_pdu_size and 4 + item_length > self.maximum_pdu_size):
            return False
        if not self._plain(evt.EVT_DIMSE_SENT):
            return False
        pdu = struct.pack(">BBLLB", P_DATA_TF_TYPE, 0, 4 + item_length, item_length, context_id)
        return bool(send_now(pdu + b"\x03" + command))

    @staticmethod
    def _primitive(fields: dict[int, Any], dataset: BytesIO | None) -> Any:
        name, message_class = _MESSAGE_TYPES[fields[0x0100]]
        class_name = message_class.__name__
        primitive: Any = _MSG_TO_PRIMITVE[class_name[: class_name.rfind("_R")]]()
        for element, value in fields.items():
            keyword = COMMAND_ELEMENTS[element][0]
            if hasattr(primitive, keyword):
                setattr(primitive, keyword, value)
        if class_name in _DATASET_KEYWORDS:
            setattr(
                primitive,
                _DATASET_KEYWORDS[class_name],
                dataset if dataset is not None else BytesIO(),
            )
        primitive._dataset_path = None
        primitive._dataset_file = None
        return primitive

    def _invalid(self, what: str) -> None:
        log.warning("invalid DIMSE message received: %s", what)
        self._command_parts, self._fields, self._dataset = [], None, None
        self._command_size = 0
        self.dul.event_queue.put("Evt19")
