"""Hostile or broken peers: refused at the right layer, nothing stored, others still served."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import psutil
import pytest
from pynetdicom import AE, build_context
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification
from tests.conftest import LiveServer, require_tool
from tests.integration.test_dimse_support import (
    dcmtk,
    raw_connection,
    receive_all,
)
from tests.support import eventually

from telerad.adapters.dimse.server import DimseServer, start_dimse_server
from telerad.bootstrap import Platform

A_ABORT = 0x07


def _echo_ok(port: int) -> bool:
    require_tool("echoscu")
    return dcmtk("echoscu", "-aec", "TELERAD", "127.0.0.1", str(port), timeout=30).returncode == 0


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """(closed by the server in time, what it sent first)."""
    sock.settimeout(seconds)
    started = time.monotonic()
    data = receive_all(sock)
    return time.monotonic() - started < seconds, data


def _first_pdu_type(sock: socket.socket, seconds: float) -> int | None:
    """The type of the first PDU the server sends (None: it closed without one)."""
    sock.settimeout(seconds)
    first = sock.recv(1)
    return first[0] if first else None


def test_garbage_bytes_are_refused(live_server: LiveServer) -> None:
    with raw_connection(live_server.dicom_port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: archive\r\n\r\n")
        # An unrecognised PDU: A-ABORT (PS3.8 AA-1); the connection closes when
        # the peer closes it or the ARTIM timer expires.
        assert _first_pdu_type(sock, 10) == A_ABORT
    assert _echo_ok(live_server.dicom_port)


def test_pdu_claiming_4_gib_is_aborted_without_reading_it(live_server: LiveServer) -> None:
    process = psutil.Process(live_server.process.pid)
    rss_before = process.memory_info().rss
    with raw_connection(live_server.dicom_port) as sock:
        sock.sendall(struct.pack(">BBL", 0x01, 0, 0xFFFFFFFF) + b"\x00\x01" + b"\x00" * 64)
        assert _first_pdu_type(sock, 10) == A_ABORT
    assert process.memory_info().rss - rss_before < 64 * 1024 * 1024
    assert _echo_ok(live_server.dicom_port)


def test_oversized_p_data_inside_an_association_is_aborted(live_server: LiveServer) -> None:
    ae = AE(ae_title="BIGPDU")
    assoc = ae.associate(
        "127.0.0.1", live_server.dicom_port, [build_context(Verification)], ae_title="TELERAD"
    )
    assert assoc.is_established
    assert assoc.dul.socket is not None and assoc.dul.socket.socket is not None
    assoc.dul.socket.socket.sendall(struct.pack(">BBL", 0x04, 0, 0xF0000000) + b"\x00" * 32)
    eventually(lambda: assoc.is_aborted, 10, 0.05, "the association aborted")
    assert _echo_ok(live_server.dicom_port)


def test_stalled_connections_do_not_block_others(live_server: LiveServer) -> None:
    silent = raw_connection(live_server.dicom_port)
    half = raw_connection(live_server.dicom_port)
    try:
        # An A-ASSOCIATE-RQ header announcing 300 bytes, then only 20 of them.
        half.sendall(struct.pack(">BBL", 0x01, 0, 300) + b"\x00\x01" + b"\x00" * 18)
        started = time.monotonic()
        assert _echo_ok(live_server.dicom_port)
        assert time.monotonic() - started < 10
    finally:
        silent.close()
        half.close()


@pytest.fixture
def quick_server(platform: Platform) -> Iterator[DimseServer]:
    """An in-process listener with short timeouts, so that time-outs can be watched."""
    platform.settings.dicom_max_associations = 2
    server = start_dimse_server(platform, port=0, acse_timeout=1.0, network_timeout=1.5)
    yield server
    server.shutdown()


def test_connections_that_never_finish_are_closed(quick_server: DimseServer) -> None:
    silent = raw_connection(quick_server.port)
    half = raw_connection(quick_server.port)
    half.sendall(struct.pack(">BBL", 0x01, 0, 300) + b"\x00\x01" + b"\x00" * 18)
    try:
        for sock in (silent, half):
            closed, _ = _closed_within(sock, 8)
            assert closed, "the server kept a stalled connection open"
    finally:
        silent.close()
        half.close()
    ae = AE(ae_title="IDLE")
    idle = ae.associate("127.0.0.1", quick_server.port, [build_context(Verification)], ae_title="X")
    assert idle.is_established
    eventually(lambda: not idle.is_established, 8, 0.05, "an idle association ended by the timeout")


def test_association_limit(quick_server: DimseServer) -> None:
    ae = AE(ae_title="MANY")
    ae.network_timeout = 30
    first = ae.associate("127.0.0.1", quick_server.port, [build_context(Verification)])
    second = ae.associate("127.0.0.1", quick_server.port, [build_context(Verification)])
    try:
        assert first.is_established and second.is_established
        third = ae.associate("127.0.0.1", quick_server.port, [build_context(Verification)])
        assert third.is_rejected
    finally:
        first.release()
        second.release()

    # Released associations free their slots as soon as their threads end.
    def accepted() -> Association | None:
        assoc = ae.associate("127.0.0.1", quick_server.port, [build_context(Verification)])
        return assoc if assoc.is_established else None

    again = eventually(accepted, 5, 0.1, "an association accepted again")
    assert again.send_c_echo().Status == 0x0000
    again.release()


def test_endless_command_set_is_aborted(live_server: LiveServer) -> None:
    ae = AE(ae_title="ENDLESS")
    assoc = ae.associate(
        "127.0.0.1", live_server.dicom_port, [build_context(Verification)], ae_title="TELERAD"
    )
    assert assoc.is_established
    context_id = assoc.accepted_contexts[0].context_id
    pdv = b"\x01" + b"\x00" * 16000  # command fragments, never the last one
    item = struct.pack(">LB", len(pdv) + 1, context_id) + pdv
    pdu = struct.pack(">BBL", 0x04, 0, len(item)) + item
    assert assoc.dul.socket is not None and assoc.dul.socket.socket is not None
    for _ in range(6):
        assoc.dul.socket.socket.sendall(pdu)
    eventually(lambda: assoc.is_aborted, 10, 0.05, "the association aborted")
    assert _echo_ok(live_server.dicom_port)
