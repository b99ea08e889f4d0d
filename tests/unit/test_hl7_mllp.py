"""MLLP framing and HL7 acknowledgements, without sockets."""

from __future__ import annotations

import hl7
import pytest
from hypothesis import given
from hypothesis import strategies as st

from telerad.adapters.hl7.ack import (
    ErrorCode,
    NotAcceptable,
    Verdict,
    build_ack,
    escape,
    read_header,
    unescape,
)
from telerad.adapters.hl7.mllp import Decoder, Frame, Oversized, Skipped, frame

MSH = "MSH|^~\\&|RIS|North Hospital|TELERAD|TR|20240315083012||ORM^O01^ORM_O01|C1|P|{v}"


def frames(events: list[object]) -> list[bytes]:
    return [e.payload for e in events if isinstance(e, Frame)]


@given(st.lists(st.binary(min_size=1, max_size=300).filter(lambda b: not set(b) & {11, 28})))
def test_any_split_of_the_stream_gives_the_same_frames(payloads: list[bytes]) -> None:
    stream = b"".join(frame(p) for p in payloads)
    whole = Decoder().feed(stream)
    decoder = Decoder()
    piecewise = [e for i in range(len(stream)) for e in decoder.feed(stream[i : i + 1])]
    assert frames(whole) == frames(piecewise) == payloads
    assert not any(isinstance(e, Skipped) for e in whole + piecewise)


def test_garbage_before_a_start_block_is_reported_and_dropped() -> None:
    events = Decoder().feed(b"junk" + frame(b"MSH|a") + b"\n" + frame(b"MSH|b"))
    assert events == [Skipped(4), Frame(b"MSH|a"), Skipped(1), Frame(b"MSH|b")]


def test_an_end_block_without_its_cr_still_ends_the_frame() -> None:
    assert Decoder().feed(b"\x0bMSH|a\x1c\x0bMSH|b\x1c\r") == [Frame(b"MSH|a"), Frame(b"MSH|b")]


def test_a_frame_over_the_maximum_ends_the_stream() -> None:
    decoder = Decoder(max_frame=10)
    assert decoder.feed(b"\x0b" + b"MSH|" + b"x" * 6) == []  # exactly the maximum: wait
    (event,) = decoder.feed(b"y")
    assert isinstance(event, Oversized) and event.head.startswith(b"MSH|")
    assert decoder.finished and decoder.feed(frame(b"MSH|z")) == []


def test_endless_garbage_ends_the_stream_too() -> None:
    decoder = Decoder(max_frame=10)
    events = decoder.feed(b"x" * 11)
    assert events[-1] == Oversized(b"") and decoder.finished


@pytest.mark.parametrize("version", ["2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7.1", "2.8"])
def test_supported_versions(version: str) -> None:
    assert read_header(MSH.format(v=version)).version == version


@pytest.mark.parametrize("version", ["2.1", "2.2", "2.9", "3.0", "9.9", "x"])
def test_unsupported_versions(version: str) -> None:
    with pytest.raises(NotAcceptable) as caught:
        read_header(MSH.format(v=version))
    assert caught.value.verdict.error is ErrorCode.UNSUPPORTED_VERSION
    assert caught.value.header is not None and caught.value.header.control_id == "C1"


def test_v2_3_acknowledgement_has_no_structure_and_an_err_1() -> None:
    header = read_header(MSH.format(v="2.3"))
    verdict = Verdict.application_error(ErrorCode.UNKNOWN_KEY, "no such facility")
    ack = hl7.parse(build_ack(verdict, header, "A1"))
    assert str(ack.segment("MSH")(9)) == "ACK^O01"
    assert str(ack.segment("MSA")) == "MSA|AE|C1|no such facility"
    assert str(ack.segment("ERR")) == "ERR|^^^204&Unknown key identifier&HL70357"


def test_other_delimiters_are_kept_and_reasons_escaped() -> None:
    text = "MSH#*~\\&#RIS#North*1.2#TELERAD#TR#20240315##ORM*O01#C9#P#2.5.1"
    header = read_header(text)
    assert header.facility_name == "North" and header.message_type == "ORM^O01"
    ack = build_ack(Verdict.rejected(ErrorCode.INTERNAL_ERROR, "a#b*c"), header, "A2")
    assert ack.startswith("MSH#*~\\&#TELERAD#TR#RIS#North*1.2#")
    assert "MSA#AR#C9#a\\F\\b\\S\\c\r" in ack


def test_escape_round_trip() -> None:
    text = "a|b^c~d\\e&f"
    assert unescape(escape(text)) == text
    assert "|" not in escape(text) and "^" not in escape(text)


@pytest.mark.parametrize(
    "text", ["MSH|^^\\&|A|B", "MSH|^~\\|A|B", "MSHA^~\\&|B", "MSH|^~", "PID|1", "", "\x00" * 9]
)
def test_headers_that_cannot_be_read_are_rejected(text: str) -> None:
    with pytest.raises(NotAcceptable) as caught:
        read_header(text)
    assert caught.value.verdict.code.value == "AR"
    assert caught.value.header is None
