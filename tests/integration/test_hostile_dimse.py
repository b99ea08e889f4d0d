"""Hostile DIMSE peers and a full disk, against a live ``telerad serve``.

* 200 associations held open: those beyond TELERAD_DICOM_MAX_ASSOCIATIONS, or
  beyond the share one peer (or all unregistered peers) may hold, are rejected
  at once; the server's memory and threads stay flat, and a registered peer
  still gets C-ECHO (see adapters/dimse/limits.py for the rules);
* 200 connections that never send an A-ASSOCIATE-RQ: the oldest are closed as
  new ones come, and a registered peer is still heard;
* a full disk: C-STORE answers 0xA700, STOW-RS 507 with FailureReason 0xA700,
  nothing is indexed or left behind, and the same stores succeed once space is
  free again. Simulated for real with a small tmpfs as the data dir (a real
  file system that says ENOSPC to the blob store and to SQLite alike, as a
  full disk does) where the tests may mount one (root); the same answers are
  checked without root by injecting OSError(ENOSPC) at the blob store's
  write(2), as the kernel raises it, and SQLite's "database or disk is full"
  at the index.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import sqlite3
import struct
import subprocess
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient
from pydicom import dcmread
from pynetdicom import AE, build_context
from pynetdicom.association import Association
from pynetdicom.sop_class import CTImageStorage, Verification
from sqlalchemy.exc import OperationalError
from tests.conftest import LiveServer, start_server
from tests.integration.hostile_support import MIB
from tests.integration.test_dimse_support import associate_rq, read_index
from tests.support import eventually

from telerad import synthetic as syn
from telerad.adapters.dicomweb.multipart import encode_multipart
from telerad.adapters.dimse.server import start_dimse_server
from telerad.bootstrap import Platform
from telerad.domain.model import Level
from telerad.storage.blobs import filesystem
from telerad.web.app import create_app

STOW = 'multipart/related; type="application/dicom"; boundary=hostile'
LIMIT = 32  # TELERAD_DICOM_MAX_ASSOCIATIONS (its default)
SHARE = LIMIT - LIMIT // 4  # what one peer, or all unregistered peers, may hold
ATTEMPTS = 200


def _telerad(server: LiveServer, *args: str, input: bytes | None = None) -> None:
    done = server.telerad(*args, input=input)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("hostile-dimse") / "data"
    data_dir.mkdir()
    server = start_server(data_dir, {"TELERAD_DICOM_MAX_ASSOCIATIONS": str(LIMIT)})
    _telerad(server, "facility", "add", "Echo Clinic", "--ae", "ECHOER", "--host", "127.0.0.1")
    _telerad(server, "facility", "add", "Flood Clinic", "--ae", "FLOOD", "--host", "127.0.0.1")
    yield server
    server.stop()


def _associate(port: int, ae_title: str, contexts: list[Any] | None = None) -> Association:
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 30
    return ae.associate(
        "127.0.0.1", port, contexts or [build_context(Verification)], ae_title="TELERAD"
    )


def _echo_ok(port: int) -> bool:
    assoc = _associate(port, "ECHOER")
    try:
        return assoc.is_established and int(assoc.send_c_echo().Status) == 0x0000
    finally:
        if assoc.is_established:
            assoc.release()


def _footprint(pid: int) -> tuple[int, int]:
    """(resident bytes, threads) of the server, once its threads have settled: the same
    number of threads three samples running, 0.2 s apart."""
    process = psutil.Process(pid)
    seen: list[int] = []

    def settled() -> bool:
        seen.append(process.num_threads())
        return len(seen) >= 3 and len(set(seen[-3:])) == 1

    eventually(settled, 20, 0.2, "the server's threads settled")
    return process.memory_info().rss, seen[-1]


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _ask(port: int, calling: str) -> tuple[socket.socket | None, tuple[int, int, int] | None]:
    """Send an A-ASSOCIATE-RQ on a raw socket: (the socket, held open) when accepted,
    (None, (result, source, reason)) when rejected. Raw, because pynetdicom 3.0.4
    as a requestor sometimes reports a prompt A-ASSOCIATE-RJ as an abort."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(associate_rq(calling))
    pdu_type, _, length = struct.unpack(">BBL", _recv_exactly(sock, 6))
    body = _recv_exactly(sock, length)
    if pdu_type == 0x02:  # A-ASSOCIATE-AC
        return sock, None
    sock.close()
    assert pdu_type == 0x03, f"{calling}: PDU type {pdu_type:#x}"
    return None, (body[1], body[2], body[3])


def _hold(port: int, titles: list[str]) -> tuple[list[socket.socket], list[tuple[int, int, int]]]:
    held, rejected = [], []
    for title in titles:
        sock, rejection = _ask(port, title)
        if sock is not None:
            held.append(sock)
        else:
            assert rejection is not None
            rejected.append(rejection)
    return held, rejected


def _release(held: list[socket.socket]) -> None:
    for sock in held:
        sock.close()


def test_held_associations_are_refused_past_the_limit_with_flat_memory(
    archive: LiveServer,
) -> None:
    """While the platform is open, 200 unregistered AE titles each hold an
    association: 24 are taken (the unregistered share of 32), 176 are rejected
    transient / local-limit-exceeded; the registered ECHOER still gets C-ECHO."""
    port, pid = archive.dicom_port, archive.process.pid
    _release(_hold(port, [f"WARM{i}" for i in range(4)])[0])  # threads and pools warmed
    rss0, threads0 = _footprint(pid)
    held, rejected = _hold(port, [f"HOLD{i:03d}" for i in range(ATTEMPTS)])
    try:
        assert len(held) == SHARE
        assert rejected == [(2, 3, 2)] * (ATTEMPTS - SHARE)
        assert _echo_ok(port), "a registered peer was locked out"
        rss1, threads1 = _footprint(pid)
        # Two threads per held association; nothing of the rejected ones stays.
        assert threads1 - threads0 <= 2 * SHARE + 8, (threads0, threads1)
        assert rss1 - rss0 < 48 * MIB, f"the server grew {(rss1 - rss0) / MIB:.1f} MiB"
        more, again = _hold(port, [f"MORE{i:03d}" for i in range(ATTEMPTS)])
        assert more == [] and len(again) == ATTEMPTS
        rss2, threads2 = _footprint(pid)
        assert threads2 <= threads1 + 4
        assert rss2 - rss1 < 8 * MIB, f"200 rejections left {(rss2 - rss1) / MIB:.1f} MiB"
    finally:
        _release(held)


def test_one_registered_peer_cannot_hold_every_association(archive: LiveServer) -> None:
    """Once accounts exist: a registered AE (FLOOD) holding 200 gets its share (24);
    an unregistered title is rejected permanently (not registered); ECHOER is served."""
    _telerad(archive, "user", "add", "root", "--role", "network-admin", "--password-stdin",
             input=b"a long enough password\n")  # fmt: skip
    # The server notices the first account within 2 s (HTTP and DIMSE ask the same check).
    eventually(
        lambda: httpx.get(archive.dicomweb + "/studies").status_code == 401,
        10,
        0.1,
        "the server requiring sign-in",
    )
    port = archive.dicom_port
    assert _ask(port, "STRANGER") == (None, (1, 1, 3))
    held, rejected = _hold(port, ["FLOOD"] * ATTEMPTS)
    try:
        assert len(held) == SHARE
        assert rejected == [(2, 3, 2)] * (ATTEMPTS - SHARE)
        assert _echo_ok(port)
    finally:
        _release(held)


def test_silent_connections_cannot_crowd_out_a_peer(archive: LiveServer) -> None:
    """200 connections that never speak: at most 32 wait at once (the oldest are
    closed as new ones come), the threads stay bounded, ECHOER is heard at once."""
    port, pid = archive.dicom_port, archive.process.pid
    _, threads0 = _footprint(pid)
    silent = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(ATTEMPTS)]
    try:
        _, threads1 = _footprint(pid)
        assert threads1 - threads0 <= 2 * LIMIT + 8, (threads0, threads1)
        started = time.monotonic()
        assert _echo_ok(port)
        assert time.monotonic() - started < 10
        readable, _, _ = select.select(silent, [], [], 5)
        closed = 0
        for sock in readable:
            with contextlib.suppress(ConnectionResetError):
                closed += sock.recv(1) == b""
        assert closed >= ATTEMPTS - LIMIT
    finally:
        for sock in silent:
            sock.close()


# -- a full disk ------------------------------------------------------------------------
def _ct(n: int) -> list[bytes]:
    """n CT slices of 512×512 (about 520 KB each), fresh UIDs."""
    return [syn.to_bytes(ds) for ds in syn.ct_series(syn.StudySpec(), slices=n)]


def _uid(data: bytes) -> str:
    return str(dcmread(BytesIO(data), stop_before_pixels=True).SOPInstanceUID)


def _c_store(port: int, data: bytes) -> tuple[int, str]:
    assoc = _associate(port, "MODALITY", [build_context(CTImageStorage)])
    assert assoc.is_established
    try:
        status = assoc.send_c_store(dcmread(BytesIO(data)))
        return int(status.Status), str(status.get("ErrorComment", ""))
    finally:
        assoc.release()


def _stow(url: str, objects: list[bytes]) -> httpx.Response:
    body = encode_multipart("hostile", [("application/dicom", o) for o in objects])
    return httpx.post(url, content=body, headers={"Content-Type": STOW}, timeout=60)


def _failure_reasons(r: httpx.Response) -> list[int]:
    return [i["00081197"]["Value"][0] for i in r.json()["00081198"].get("Value", [])]


def _left_behind(data_dir: Path) -> list[Path]:
    """Blobs, or temporary files with content, anywhere in the data dir."""
    return [
        p
        for p in data_dir.rglob("*")
        if p.is_file()
        and (p.suffix == ".dcm" or (p.name.startswith(".incoming") and p.stat().st_size))
    ]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip("mounting a tmpfs needs root; test_full_disk_injected checks the same")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(path: Path, leave: int) -> None:
    """Write ``path`` until the file system is full, then give back ``leave`` bytes."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for block in (bytes(MIB), bytes(4096)):
            with contextlib.suppress(OSError):
                while os.write(fd, block):
                    pass
    finally:
        os.close(fd)
    size = path.stat().st_size
    os.truncate(path, max(0, size - leave))


def test_a_full_disk_answers_0xa700_and_507_and_recovers(small_disk: Path) -> None:
    data_dir = small_disk / "data"
    data_dir.mkdir()
    server = start_server(data_dir)
    try:
        filler = small_disk / "filler"
        _fill(filler, leave=256 * 1024)  # room for log lines, not for a 520 KB instance
        index = read_index(data_dir)
        dimse_object, *stow_objects = _ct(3)
        status, comment = _c_store(server.dicom_port, dimse_object)
        assert status == 0xA700, (hex(status), comment)
        assert "out of storage space" in comment
        r = _stow(server.dicomweb + "/studies", stow_objects)
        assert r.status_code == 507, r.text[:300]
        assert _failure_reasons(r) == [0xA700, 0xA700]
        for data in (dimse_object, *stow_objects):
            assert index.find_instance(_uid(data)) is None
        assert _left_behind(data_dir) == []

        filler.unlink()  # space comes back: the same stores now succeed
        assert _c_store(server.dicom_port, dimse_object) == (0x0000, "")
        r = _stow(server.dicomweb + "/studies", stow_objects)
        assert r.status_code == 200, r.text[:300]
        for data in (dimse_object, *stow_objects):
            location = index.find_instance(_uid(data))
            assert location is not None
            kept = (data_dir / "blobs" / location.blob_key).read_bytes()
            assert kept == data if data in stow_objects else _uid(kept) == _uid(data)
    finally:
        server.stop()


class _FullDiskOS:
    """The os module as the blob store sees it, with write(2) failing ENOSPC while full."""

    def __init__(self) -> None:
        self.full = True

    def write(self, fd: int, data: Any) -> int:
        if self.full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(fd, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def test_full_disk_injected(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without root: the blob store's write(2) says ENOSPC, then the index says
    SQLite's "database or disk is full"; C-STORE answers 0xA700, STOW-RS 507,
    nothing is indexed or left, and both succeed once the disk has room."""
    disk = _FullDiskOS()
    monkeypatch.setattr(filesystem, "os", disk)
    server = start_dimse_server(platform, port=0)
    try:
        with TestClient(create_app(platform)) as client:
            for fault in ("blob write", "index commit"):
                if fault == "index commit":
                    disk.full = False

                    def refuse(*args: Any, **kwargs: Any) -> Any:
                        full = sqlite3.OperationalError("database or disk is full")
                        raise OperationalError("INSERT INTO instance", {}, full)

                    monkeypatch.setattr(platform.index, "add_instance", refuse)
                    monkeypatch.setattr(platform.index, "add_instances", refuse)
                dimse_object, *stow_objects = _ct(3)
                status, comment = _c_store(server.port, dimse_object)
                assert status == 0xA700 and "out of storage space" in comment, fault
                body = encode_multipart("hostile", [("application/dicom", o) for o in stow_objects])
                r = client.post("/dicom-web/studies", content=body, headers={"Content-Type": STOW})
                assert r.status_code == 507, (fault, r.text[:300])
                assert _failure_reasons(r) == [0xA700, 0xA700]
                for data in (dimse_object, *stow_objects):
                    assert platform.archive.locate(Level.IMAGE, [_uid(data)]) == []
                assert _left_behind(platform.settings.data_dir) == []
            monkeypatch.undo()
            assert _c_store(server.port, dimse_object) == (0x0000, "")
            r = client.post("/dicom-web/studies", content=body, headers={"Content-Type": STOW})
            assert r.status_code == 200, r.text[:300]
    finally:
        server.shutdown()
