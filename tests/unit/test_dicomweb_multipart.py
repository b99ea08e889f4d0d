"""multipart/related framing, Accept parsing and WADO-RS content negotiation."""

from __future__ import annotations

import mmap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telerad.adapters.dicomweb.multipart import (
    MultipartError,
    encode_multipart,
    parse_accept,
    parse_media_type,
    split_parts,
)
from telerad.adapters.dicomweb.negotiation import (
    AS_STORED,
    FrameChoice,
    NotAcceptable,
    frame_choices,
    instance_syntaxes,
    rendered_media_type,
)
from telerad.dicom import transcode as tx

B = "sep-123"


def contents(body: bytes, boundary: str = B) -> list[bytes]:
    return [body[p.start : p.end] for p in split_parts(body, boundary)]


def test_round_trip_keeps_every_byte() -> None:
    items = [b"\x00\x01--sep-12\r\n", b"", b"plain", bytes(range(256)) * 10]
    body = encode_multipart(B, [("application/dicom", c) for c in items])
    parts = split_parts(body, B)
    assert [body[p.start : p.end] for p in parts] == items
    assert all(p.content_type == "application/dicom" for p in parts)


def test_preamble_epilogue_and_part_without_headers() -> None:
    body = (
        b"this is a preamble\r\n--sep-123\r\n\r\nfirst\r\n--sep-123\r\n"
        b"Content-Type: application/dicom\r\nX-Other: 1\r\n\r\nsecond\r\n--sep-123--\r\nepilogue"
    )
    parts = split_parts(body, B)
    assert [body[p.start : p.end] for p in parts] == [b"first", b"second"]
    assert parts[0].headers == {}
    assert parts[1].headers == {"content-type": "application/dicom", "x-other": "1"}


def test_client_style_leading_crlf() -> None:
    # dicomweb-client starts its body with CRLF before the first boundary.
    body = b"\r\n--sep-123\r\nContent-Type: application/dicom\r\n\r\nabc\r\n--sep-123--"
    assert contents(body) == [b"abc"]


def test_works_on_an_mmap() -> None:
    body = encode_multipart(B, [("application/dicom", b"x" * 5000), ("application/dicom", b"y")])
    mapped = mmap.mmap(-1, len(body))  # anonymous: the same object as over a spooled file
    try:
        mapped.write(body)
        parts = split_parts(mapped, B)
        assert [mapped[p.start : p.end] for p in parts] == [b"x" * 5000, b"y"]
    finally:
        mapped.close()


@pytest.mark.parametrize(
    "body, message",
    [
        (b"--sep-123\r\nContent-Type: a/b\r\n\r\nabc", "truncated"),
        (b"--sep-123\r\nContent-Type: a/b\r\n\r\nabc\r\n--sep-123", "truncated"),
        (b"no boundary here at all", "boundary"),
        (b"--sep-123\r\nContent-Type a/b\r\n\r\nabc\r\n--sep-123--", "malformed header"),
        (b"--sep-123garbage\r\n\r\nabc\r\n--sep-123--", "CRLF"),
        (b"--sep-123\r\nContent-Type: a/b" + b"x" * 20000, "headers not terminated"),
    ],
)
def test_malformed_bodies_are_refused_whole(body: bytes, message: str) -> None:
    with pytest.raises(MultipartError, match=message):
        split_parts(body, B)


def test_boundary_length_is_checked() -> None:
    with pytest.raises(MultipartError):
        split_parts(b"", "")
    with pytest.raises(MultipartError):
        split_parts(b"", "x" * 71)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=6))
def test_any_binary_content_round_trips(items: list[bytes]) -> None:
    boundary = "b0undary-that-does-not-occur"
    body = encode_multipart(boundary, [("application/octet-stream", c) for c in items])
    assert contents(body, boundary) == items


def test_media_type_parameters() -> None:
    m = parse_media_type('multipart/related; type="application/dicom"; boundary="a;b"; q=0.5')
    assert m.type == "multipart/related"
    assert m.params == {"type": "application/dicom", "boundary": "a;b"}
    assert m.q == 0.5
    with pytest.raises(MultipartError):
        parse_media_type("nonsense")


def test_accept_orders_by_quality_and_keeps_ties_in_order() -> None:
    accept = 'image/png;q=0.5, multipart/related; type="image/jls", image/jpeg, x/y;q=0'
    assert [m.type for m in parse_accept(accept)] == [
        "multipart/related",
        "image/jpeg",
        "image/png",
    ]


def test_instance_syntaxes() -> None:
    assert instance_syntaxes(None) == [tx.EXPLICIT_LE]
    assert instance_syntaxes("*/*") == [tx.EXPLICIT_LE]
    assert instance_syntaxes('multipart/related; type="application/dicom"') == [tx.EXPLICIT_LE]
    assert instance_syntaxes('multipart/related; type="application/dicom"; transfer-syntax=*') == [
        AS_STORED
    ]
    accept = (
        f'multipart/related; type="application/dicom"; transfer-syntax={tx.J2K_LOSSLESS},'
        'multipart/related; type="application/dicom"; transfer-syntax=*;q=0.5'
    )
    assert instance_syntaxes(accept) == [tx.J2K_LOSSLESS, AS_STORED]
    with pytest.raises(NotAcceptable):
        instance_syntaxes('multipart/related; type="application/dicom"; transfer-syntax=1.2.3')
    with pytest.raises(NotAcceptable):
        instance_syntaxes("application/pdf")


def test_frame_choices() -> None:
    assert frame_choices(None) == [FrameChoice("*/*", AS_STORED)]
    assert frame_choices('multipart/related; type="application/octet-stream"') == [
        FrameChoice("application/octet-stream", tx.EXPLICIT_LE)
    ]
    assert frame_choices(
        'multipart/related; type="application/octet-stream"; transfer-syntax=*'
    ) == [FrameChoice("application/octet-stream", AS_STORED)]
    assert frame_choices('multipart/related; type="image/jls"') == [
        FrameChoice("image/jls", tx.JPEG_LS_LOSSLESS)
    ]
    # A syntax that does not belong to the media type is skipped.
    with pytest.raises(NotAcceptable):
        frame_choices(f'multipart/related; type="image/jpeg"; transfer-syntax={tx.J2K}')


def test_rendered_media_type() -> None:
    assert rendered_media_type(None) == "image/jpeg"
    assert rendered_media_type("image/png") == "image/png"
    assert rendered_media_type("image/*") == "image/jpeg"
    with pytest.raises(NotAcceptable):
        rendered_media_type("application/pdf")
