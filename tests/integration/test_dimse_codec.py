"""The direct DIMSE command codec gives the bytes and primitives pynetdicom's own codec gives."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pydicom
import pytest
from pynetdicom.dimse import _RQ_TO_MESSAGE, _RSP_TO_MESSAGE
from pynetdicom.dimse_messages import DIMSEMessage
from pynetdicom.dimse_primitives import (
    C_ECHO,
    C_FIND,
    C_GET,
    C_MOVE,
    C_STORE,
    N_ACTION,
    N_EVENT_REPORT,
)
from pynetdicom.dsutils import encode
from pynetdicom.pdu import P_DATA_TF
from tests.integration.test_dimse_support import SAMPLES, dataset_bytes, sample_path

from telerad.adapters.dimse.store import Identity, peek_identity
from telerad.adapters.dimse.tuned_dimse import (
    FastDIMSE,
    command_of,
    decode_command,
    p_data,
)

CT = "1.2.840.10008.5.1.4.1.1.2"
UID = "2.25.339115236725946542426046426815419212183"


def _store_rq() -> C_STORE:
    p = C_STORE()
    p.MessageID = 7
    p.AffectedSOPClassUID = CT
    p.AffectedSOPInstanceUID = UID
    p.Priority = 2
    p.MoveOriginatorApplicationEntityTitle = "MOVESCU"
    p.MoveOriginatorMessageID = 3
    p.DataSet = BytesIO(b"\x08\x00\x16\x00" + b"x" * 30)
    return p


def _store_rsp(comment: str | None) -> C_STORE:
    p = C_STORE()
    p.MessageIDBeingRespondedTo = 7
    p.AffectedSOPClassUID = CT
    p.AffectedSOPInstanceUID = UID + "1"  # odd length: padded
    p.Status = 0xC000 if comment else 0
    p.ErrorComment = comment
    return p


def _find_rsp() -> C_FIND:
    p = C_FIND()
    p.MessageIDBeingRespondedTo = 2
    p.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.1"
    p.Status = 0xFF00
    p.Identifier = BytesIO(b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY ")
    return p


def _move_rsp() -> C_MOVE:
    p = C_MOVE()
    p.MessageIDBeingRespondedTo = 9
    p.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.2"
    p.Status = 0xB000
    p.NumberOfRemainingSuboperations = 0
    p.NumberOfCompletedSuboperations = 5
    p.NumberOfFailedSuboperations = 1
    p.NumberOfWarningSuboperations = 0
    p.Identifier = BytesIO(b"")
    return p


def _get_rq() -> C_GET:
    p = C_GET()
    p.MessageID = 11
    p.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.3"
    p.Priority = 0
    p.Identifier = BytesIO(b"\x08\x00\x52\x00\x06\x00\x00\x00SERIES")
    return p


def _echo_rq() -> C_ECHO:
    p = C_ECHO()
    p.MessageID = 1
    p.AffectedSOPClassUID = "1.2.840.10008.1.1"
    return p


def _event_report() -> N_EVENT_REPORT:
    p = N_EVENT_REPORT()
    p.MessageID = 4
    p.AffectedSOPClassUID = "1.2.840.10008.1.20.1"
    p.AffectedSOPInstanceUID = "1.2.840.10008.1.20.1.1"
    p.EventTypeID = 2
    p.EventInformation = BytesIO(b"\x08\x00\x95\x11\x02\x00\x00\x001\x00")
    return p


def _action_rsp() -> N_ACTION:
    p = N_ACTION()
    p.MessageIDBeingRespondedTo = 4
    p.AffectedSOPClassUID = "1.2.840.10008.1.20.1"
    p.AffectedSOPInstanceUID = "1.2.840.10008.1.20.1.1"
    p.Status = 0x0120
    p.ErrorComment = "Transaction UID is missing"
    p.ActionTypeID = 1
    return p


PRIMITIVES = {
    "c-store-rq": _store_rq,
    "c-store-rsp": lambda: _store_rsp(None),
    "c-store-rsp-failure": lambda: _store_rsp("dataset SOP Class UID differs"),
    "c-find-rsp": _find_rsp,
    "c-move-rsp": _move_rsp,
    "c-get-rq": _get_rq,
    "c-echo-rq": _echo_rq,
    "n-event-report-rq": _event_report,
    "n-action-rsp": _action_rsp,
}


def _pynetdicom_message(primitive: Any) -> Any:
    table = _RQ_TO_MESSAGE if primitive.MessageIDBeingRespondedTo is None else _RSP_TO_MESSAGE
    message = table[type(primitive)]()
    message.primitive_to_message(primitive)
    return message


@pytest.mark.parametrize("name", list(PRIMITIVES))
def test_command_bytes_equal_pynetdicoms(name: str) -> None:
    primitive = PRIMITIVES[name]()
    expected = encode(_pynetdicom_message(primitive).command_set, True, True)
    assert command_of(primitive)[0] == expected


@pytest.mark.parametrize("name", list(PRIMITIVES))
def test_decoded_primitive_equals_pynetdicoms(name: str) -> None:
    primitive = PRIMITIVES[name]()
    message = _pynetdicom_message(primitive)
    pdatas = list(message.encode_msg(1, 16384))
    theirs = DIMSEMessage()
    for pdata in pdatas:
        theirs.decode_msg(pdata)
    expected = theirs.message_to_primitive()
    fields = decode_command(encode(message.command_set, True, True))
    sent = message.data_set.getvalue() if message.data_set is not None else b""
    dataset = BytesIO(sent) if sent else None
    ours = FastDIMSE._primitive(fields, dataset)
    assert type(ours) is type(expected)
    for keyword in (
        "MessageID",
        "MessageIDBeingRespondedTo",
        "AffectedSOPClassUID",
        "AffectedSOPInstanceUID",
        "Priority",
        "Status",
        "ErrorComment",
        "MoveOriginatorApplicationEntityTitle",
        "MoveOriginatorMessageID",
        "NumberOfCompletedSuboperations",
        "NumberOfFailedSuboperations",
        "EventTypeID",
        "ActionTypeID",
    ):
        assert getattr(ours, keyword, None) == getattr(expected, keyword, None), keyword
    for keyword in ("DataSet", "Identifier", "EventInformation", "ActionReply"):
        if hasattr(expected, keyword):
            mine, their = getattr(ours, keyword), getattr(expected, keyword)
            assert (mine.getvalue() if mine else b"") == (their.getvalue() if their else b"")


@pytest.mark.parametrize("max_pdu", [0, 64, 100, 4096])
def test_fragments_fit_the_pdu_and_reassemble(max_pdu: int) -> None:
    dataset = bytes(range(256)) * 7
    command, _ = command_of(_store_rq())
    pdatas = list(p_data(5, command, dataset, max_pdu))
    message = DIMSEMessage()
    done = False
    for pdata in pdatas:
        pdu = P_DATA_TF()
        pdu.from_primitive(pdata)
        if max_pdu:
            assert len(pdu.encode()) - 6 <= max_pdu  # the PDV list within the peer's maximum
        done = message.decode_msg(pdata)
    assert done
    assert message.data_set.getvalue() == dataset
    assert message.command_set.AffectedSOPInstanceUID == UID
    assert message.command_set.AffectedSOPClassUID == CT
    if not max_pdu or max_pdu >= 4096:
        assert len(pdatas) == 1  # command and dataset in one P-DATA-TF


def test_retired_command_elements_are_left_to_pynetdicom() -> None:
    from telerad.adapters.dimse.tuned_dimse import Unsupported, encode_command

    command = encode_command({0x0100: ("US", 0x0030), 0x0850: ("US", 1)})  # NumberOfMatches
    with pytest.raises(Unsupported):
        decode_command(command)


@pytest.mark.parametrize("name", [*SAMPLES, "rtplan.dcm", "SC_rgb_small_odd.dcm"])
def test_peek_identity_reads_the_uids_of_every_encoding(name: str) -> None:
    path = sample_path(name)
    ts, dataset = dataset_bytes(path)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    identity = peek_identity(dataset, ts)
    assert identity.sop_class_uid == ds.SOPClassUID
    assert identity.sop_instance_uid == ds.SOPInstanceUID


def test_peek_identity_of_a_dataset_without_uids() -> None:
    assert peek_identity(b"\x10\x00\x10\x00\x04\x00\x00\x00DOE^", "1.2.840.10008.1.2") == Identity(
        None, None
    )


class _FakeDUL:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.queued: list[Any] = []
        self.event_queue: list[str] = []

    def send_pdata_now(self, pdu: bytes) -> bool:
        self.sent.append(pdu)
        return True

    def send_pdu(self, primitive: Any) -> None:
        self.queued.append(primitive)


class _FakeAssoc:
    """What FastDIMSE reads of an association, for a requestor-side peer."""

    def __init__(self, max_pdu: int, store_handler: Any = None) -> None:
        from types import SimpleNamespace

        self.dul = _FakeDUL()
        self._handlers: dict[Any, Any] = {}
        self.is_requestor = False
        self.requestor = SimpleNamespace(maximum_length=max_pdu)
        self._accepted_cx = {
            5: SimpleNamespace(
                as_scp=True,
                abstract_syntax=CT,
                as_tuple=SimpleNamespace(context_id=5, transfer_syntax="1.2.840.10008.1.2.1"),
            )
        }
        self.is_established = True
        self._sent_release = False


@pytest.mark.parametrize("comment", [None, "a comment"])
def test_direct_response_pdu_equals_pynetdicoms(comment: str | None) -> None:
    from pydicom.dataset import Dataset

    def handler(event: Any) -> Any:
        if comment is None:
            return 0x0000
        status = Dataset()
        status.Status = 0xA700
        status.ErrorComment = comment
        return status

    assoc = _FakeAssoc(16384)
    dimse = FastDIMSE(assoc, handler)
    rq = _store_rq()
    rq.DataSet = BytesIO(b"\0" * 8)
    dimse._serve_store(rq, 5)
    [sent] = assoc.dul.sent
    expected = C_STORE()
    expected.MessageIDBeingRespondedTo = 7
    expected.AffectedSOPClassUID = CT
    expected.AffectedSOPInstanceUID = UID
    expected.Status = 0x0000 if comment is None else 0xA700
    expected.ErrorComment = comment
    [pdata] = p_data(5, command_of(expected)[0], b"", 16384)
    pdu = P_DATA_TF()
    pdu.from_primitive(pdata)
    assert sent == pdu.encode()


@pytest.mark.parametrize("max_pdu", [0, 64, 100, 4096])
def test_pdata_bodies_decode_as_pynetdicoms_primitives(max_pdu: int) -> None:
    """P-DATA-TF bodies handed over straight from the socket give the message
    the P-DATA primitives give."""
    dataset = bytes(range(256)) * 7
    command, _ = command_of(_store_rq())
    assoc = _FakeAssoc(max_pdu)
    dimse = FastDIMSE(assoc)
    for pdata in p_data(5, command, dataset, max_pdu):
        pdu = P_DATA_TF()
        pdu.from_primitive(pdata)
        assert dimse.receive_pdata_tf(bytearray(pdu.encode()[6:]))
    context_id, primitive = dimse.msg_queue.get_nowait()
    assert context_id == 5
    assert isinstance(primitive, C_STORE)
    assert primitive.AffectedSOPInstanceUID == UID
    assert primitive.DataSet.getvalue() == dataset


@pytest.mark.parametrize(
    "body",
    [
        b"\x00\x00\x00",  # a cut item length
        b"\x00\x00\x00\x01\x05",  # an item without a control header
        b"\x00\x00\x00\x09\x05\x03abc",  # an item longer than the PDU
    ],
)
def test_malformed_pdata_bodies_are_refused(body: bytes) -> None:
    dimse = FastDIMSE(_FakeAssoc(16384))
    assert not dimse.receive_pdata_tf(body)
