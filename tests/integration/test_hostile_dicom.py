"""Hostile DICOM objects, through every way in: what is kept, what is refused, in bounded memory.

Each threat of issue 10 (part 6) that lies in the object itself: an executable
preamble, a deflate bomb, sequences nested thousands deep, lengths past the end
of the data, images of 65535×65535 pixels and palettes that lie. Ingest runs
the real archive (SQLite index, file blobs), over C-STORE from pynetdicom and
dcmtk's storescu, STOW-RS through the app, and ``telerad import``; retrieval
runs the real DICOMweb routes. Memory is measured (tracemalloc peaks for
parsing, the process's resident memory, sampled, around decoders) and held to
bounds that the whole input, inflated or decoded, would exceed many times over;
times only as generous limits that catch a hang.
"""

from __future__ import annotations

import io
import struct
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydicom import dcmread
from pydicom.encaps import encapsulate
from pynetdicom import build_context
from tests.conftest import require_tool, run_cli
from tests.integration.hostile_support import (
    DEFLATED,
    EXPLICIT,
    IMPLICIT,
    JPEG_BASELINE,
    MIB,
    UNDEFINED,
    Ids,
    deflate_bomb,
    deflated,
    element,
    head,
    header,
    nested,
    part10,
    pe_preamble,
    rss_peak,
    tail,
    text,
    us,
)
from tests.integration.test_dimse_support import association, send_raw_c_store, storescu

from telerad.adapters.dicomweb.multipart import encode_multipart
from telerad.adapters.dimse.server import DimseServer, start_dimse_server
from telerad.bootstrap import Platform, open_platform
from telerad.config import Settings
from telerad.dicom import limits
from telerad.domain.model import Level, StoreOutcome
from telerad.web.app import create_app

STOW = 'multipart/related; type="application/dicom"; boundary=hostile'


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform)) as c:
        yield c


@pytest.fixture
def dimse(platform: Platform) -> Iterator[DimseServer]:
    server = start_dimse_server(platform, port=0)
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def bomb() -> tuple[Ids, bytes]:
    """A deflated object of about 1 MiB whose dataset inflates to 1 GiB."""
    ids = Ids()
    return ids, deflate_bomb(ids, 1024 * MIB)


def _stow(client: TestClient, *objects: bytes) -> dict:
    body = encode_multipart("hostile", [("application/dicom", o) for o in objects])
    r = client.post("/dicom-web/studies", content=body, headers={"Content-Type": STOW})
    return {"status": r.status_code, "json": r.json()}


def _failures(answer: dict) -> list[tuple[int, str]]:
    items = answer["json"]["00081198"].get("Value", [])
    return [(i["00081197"]["Value"][0], i["00080418"]["Value"][0]) for i in items]


def _stored(platform: Platform, sop: str) -> bytes:
    [loc] = platform.archive.locate(Level.IMAGE, [sop])
    return platform.archive.read(loc)


def _not_indexed(platform: Platform, sop: str) -> bool:
    return platform.archive.locate(Level.IMAGE, [sop]) == []


def _store_measured(platform: Platform, data: bytes) -> tuple[object, int, float]:
    """archive.store with its tracemalloc peak (bytes) and duration (s)."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        result = platform.archive.store(platform.default_facility().id, data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak, time.monotonic() - started


# -- the preamble ------------------------------------------------------------------
def _polyglot(ids: Ids) -> bytes:
    dataset = head(ids) + tail(ids)
    data = part10(dataset, ids, preamble=pe_preamble())
    assert data[:2] == b"MZ" and data[0x40:0x44] == b"PE\0\0"
    return data


def test_an_executable_preamble_is_zeroed_on_every_way_in(
    platform: Platform, client: TestClient, dimse: DimseServer, tmp_path: Path
) -> None:
    """A DICOM file that is also a Windows executable (its preamble an MZ/PE header)
    is kept with the preamble zeroed, whether it came over STOW-RS, C-STORE
    (dcmtk's storescu sends the file as it is) or ``telerad import``; the rest of
    the file is kept byte for byte."""
    require_tool("storescu")
    over_stow, over_dimse, over_import = Ids(), Ids(), Ids()
    sent = _polyglot(over_stow)
    assert _stow(client, sent)["status"] == 200
    stored = _stored(platform, over_stow.sop)
    assert stored[:128] == bytes(128) and stored[128:] == sent[128:]

    path = tmp_path / "polyglot.dcm"
    path.write_bytes(_polyglot(over_dimse))
    result = storescu(dimse.port, [path], "-xe")
    assert result.returncode == 0, result.stdout + result.stderr
    stored = _stored(platform, over_dimse.sop)
    assert stored[:132] == bytes(128) + b"DICM"
    assert dcmread(io.BytesIO(stored)).SOPInstanceUID == over_dimse.sop

    data_dir = tmp_path / "imported"
    path.write_bytes(_polyglot(over_import))
    imported = run_cli(data_dir, "import", str(path))
    assert imported.returncode == 0, imported.stdout + imported.stderr
    other = open_platform(Settings(data_dir=data_dir, fsync=False))
    try:
        stored = _stored(other, over_import.sop)
        assert stored[:128] == bytes(128) and stored[128:] == path.read_bytes()[128:]
    finally:
        other.close()


# -- deflate -------------------------------------------------------------------------
def test_a_deflate_bomb_is_refused_after_bounded_inflating(
    platform: Platform, bomb: tuple[Ids, bytes]
) -> None:
    """1 MiB that inflates to 1 GiB: refused once it passes 64 MiB + 200× its size,
    counted in steps that are dropped at once (a peak of a few MiB, not 1 GiB)."""
    ids, data = bomb
    assert len(data) < 2 * MIB
    result, peak, seconds = _store_measured(platform, data)
    assert result.outcome is StoreOutcome.REJECTED  # type: ignore[attr-defined]
    assert "inflates past" in result.reason  # type: ignore[attr-defined]
    assert peak < 16 * MIB, f"peak {peak / MIB:.1f} MiB while refusing a deflate bomb"
    assert seconds < 30
    assert _not_indexed(platform, ids.sop)
    assert list(Path(platform.settings.blob_dir).rglob("*.dcm")) == []


def test_a_deflate_bomb_over_c_store_is_refused_with_a_reason(
    platform: Platform, dimse: DimseServer, bomb: tuple[Ids, bytes]
) -> None:
    """Over DIMSE the dataset travels deflated, as received; the archive answers
    0xC000 with an Error Comment, and the process's memory does not grow by
    anything like the inflated gigabyte."""
    ids, data = bomb
    dataset = data[data.index(b"DICM") + 4 :]
    meta_length = struct.unpack_from("<I", dataset, 8)[0]
    dataset = dataset[12 + meta_length :]
    contexts = [build_context(ids.sop_class, [DEFLATED])]
    with association(dimse.port, contexts) as assoc, rss_peak() as peak:
        status, comment = send_raw_c_store(assoc, ids.sop_class, ids.sop, dataset)
    assert status == 0xC000
    assert "inflates past" in comment
    assert peak.growth < 256 * MIB, f"grew {peak.growth / MIB:.0f} MiB"
    assert _not_indexed(platform, ids.sop)


def test_a_well_formed_deflated_object_is_still_taken(platform: Platform) -> None:
    ids = Ids()
    data = part10(deflated(head(ids) + tail(ids)), ids, DEFLATED)
    result = platform.archive.store(platform.default_facility().id, data)
    assert result.ok, result.reason
    [loc] = platform.archive.locate(Level.IMAGE, [ids.sop])
    assert loc.transfer_syntax_uid == DEFLATED


# -- nesting -------------------------------------------------------------------------
@pytest.mark.parametrize("defined", [True, False], ids=["defined-length", "undefined-length"])
@pytest.mark.parametrize("ts", [EXPLICIT, IMPLICIT, DEFLATED])
def test_sequences_nested_thousands_deep_are_refused_fast(
    platform: Platform, ts: str, defined: bool
) -> None:
    """5000 levels of (0008,1140) inside each other: refused by an iterative walk
    (no recursion) before pydicom reads anything, in microseconds and kilobytes."""
    ids = Ids()
    explicit = ts != IMPLICIT
    dataset = head(ids, explicit) + nested(5000, explicit, defined) + tail(ids, explicit)
    data = part10(deflated(dataset) if ts == DEFLATED else dataset, ids, ts)
    result, peak, seconds = _store_measured(platform, data)
    assert result.outcome is StoreOutcome.REJECTED  # type: ignore[attr-defined]
    assert f"deeper than {limits.MAX_SEQUENCE_DEPTH}" in result.reason  # type: ignore[attr-defined]
    assert peak < 4 * MIB + 2 * len(data)
    assert seconds < 10
    assert _not_indexed(platform, ids.sop)


def test_nesting_up_to_the_limit_is_kept_and_served(platform: Platform, client: TestClient) -> None:
    """The deepest nesting taken is one every reader copes with: its metadata is served."""
    ids = Ids()
    depth = limits.MAX_SEQUENCE_DEPTH
    data = part10(head(ids) + nested(depth, True, True) + tail(ids), ids)
    result = platform.archive.store(platform.default_facility().id, data)
    assert result.ok, result.reason
    r = client.get(
        f"/dicom-web/studies/{ids.study}/series/{ids.series}/instances/{ids.sop}/metadata"
    )
    assert r.status_code == 200
    level, found = r.json()[0], 0
    while "00081140" in level:
        level, found = level["00081140"]["Value"][0], found + 1
    assert found == depth


def test_a_deep_sequence_over_c_store_is_refused(platform: Platform, dimse: DimseServer) -> None:
    ids = Ids()
    dataset = head(ids) + nested(5000, True, True) + tail(ids)
    with association(dimse.port, [build_context(ids.sop_class, [EXPLICIT])]) as assoc:
        status, comment = send_raw_c_store(assoc, ids.sop_class, ids.sop, dataset)
    assert status == 0xC000
    assert "nest deeper" in comment
    assert _not_indexed(platform, ids.sop)


# -- lengths past the end -------------------------------------------------------------
_BIG = 0xFFFFFFF0
_ITEM = struct.pack("<HHI", 0xFFFE, 0xE000, UNDEFINED)


def _past_the_end() -> dict[str, bytes]:
    """Datasets (after the identifying UIDs) with one length that runs past the data."""
    pid = element(0x0010, 0x0020, b"LO", text("PID1"))
    return {
        "top-level value": header(0x0009, 0x0010, b"OB", _BIG) + b"x" * 100,
        "short value": header(0x0010, 0x0030, b"DA", 0xFFFF) + b"20000101",
        "sequence": header(0x0040, 0xA730, b"SQ", _BIG) + struct.pack("<HHI", 0xFFFE, 0xE000, 8),
        "item": header(0x0040, 0xA730, b"SQ", 20) + struct.pack("<HHI", 0xFFFE, 0xE000, _BIG) + pid,
        "inside an item": header(0x0040, 0xA730, b"SQ", 32)
        + struct.pack("<HHI", 0xFFFE, 0xE000, 24)
        + header(0x0009, 0x1010, b"OB", _BIG)
        + b"abcdefghijkl",
        "inside an undefined item": header(0x0040, 0xA730, b"SQ", UNDEFINED)
        + _ITEM
        + header(0x0009, 0x1010, b"OB", _BIG)
        + b"abc",
        "pixel data fragment": header(0x7FE0, 0x0010, b"OB", UNDEFINED)
        + struct.pack("<HHI", 0xFFFE, 0xE000, 0)
        + struct.pack("<HHI", 0xFFFE, 0xE000, _BIG)
        + b"\xff\xd8",
    }


@pytest.mark.parametrize("ts", [EXPLICIT, DEFLATED, JPEG_BASELINE])
@pytest.mark.parametrize("case", list(_past_the_end()))
def test_lengths_past_the_end_of_the_data_are_refused(
    platform: Platform, case: str, ts: str
) -> None:
    """A length of 4 GiB with a few bytes behind it, at the top level, inside a
    sequence, an item or encapsulated Pixel Data: refused as truncated before
    anything is allocated for it."""
    ids = Ids()
    dataset = head(ids) + tail(ids) + _past_the_end()[case]
    data = part10(deflated(dataset) if ts == DEFLATED else dataset, ids, ts)
    result, peak, seconds = _store_measured(platform, data)
    assert result.outcome is StoreOutcome.REJECTED  # type: ignore[attr-defined]
    assert "truncated" in result.reason  # type: ignore[attr-defined]
    assert peak < 2 * MIB
    assert seconds < 10
    assert _not_indexed(platform, ids.sop)


# -- images too large to decode ---------------------------------------------------------
def _jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((8, 8), 100, np.uint8)).save(out, "JPEG")
    frame = bytearray(out.getvalue())
    sof = frame.index(b"\xff\xc0")
    struct.pack_into(">HH", frame, sof + 5, height, width)  # what the codestream declares
    return bytes(frame)


def _pixel_module(rows: int, columns: int, photometric: str) -> bytes:
    """Image Pixel attributes of an 8-bit, one-sample image."""
    return (
        element(0x0028, 0x0002, b"US", us(1))
        + element(0x0028, 0x0004, b"CS", text(photometric))
        + element(0x0028, 0x0010, b"US", us(rows))
        + element(0x0028, 0x0011, b"US", us(columns))
        + element(0x0028, 0x0100, b"US", us(8))
        + element(0x0028, 0x0101, b"US", us(8))
        + element(0x0028, 0x0102, b"US", us(7))
        + element(0x0028, 0x0103, b"US", us(0))
    )


def _image(ids: Ids, rows: int, columns: int, frame: bytes) -> bytes:
    pixel_module = _pixel_module(rows, columns, "MONOCHROME2")
    pixels = (
        header(0x7FE0, 0x0010, b"OB", UNDEFINED)
        + encapsulate([frame])  # an empty offset table, then the frame's item
        + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    )
    return part10(head(ids) + tail(ids) + pixel_module + pixels, ids, JPEG_BASELINE)


_TOO_LARGE = {
    # Rows and Columns of 65535 (a 4 GiB frame), a codestream that says so too.
    "header and codestream 65535x65535": (65535, 65535, (65535, 65535)),
    # Rows and Columns of 65535 over an 8x8 codestream.
    "header 65535x65535": (65535, 65535, (8, 8)),
    # Rows and Columns of 8 over a codestream of 30000x30000: the decoder
    # allocates what the codestream says (0.9 gigapixels, 20 s before this fix).
    "codestream 30000x30000": (8, 8, (30000, 30000)),
}


@pytest.mark.parametrize("case", list(_TOO_LARGE))
def test_images_too_large_to_decode_answer_422_at_once(
    platform: Platform, client: TestClient, case: str
) -> None:
    """/rendered and /thumbnail (instance, series, study, frame): 422 with the reason,
    before any decoder allocates; a frame or the instance in a syntax that needs
    decoding: 406 with the same reason (it can still be had as stored)."""
    rows, columns, (width, height) = _TOO_LARGE[case]
    ids = Ids()
    result = platform.archive.store(
        platform.default_facility().id, _image(ids, rows, columns, _jpeg(width, height))
    )
    assert result.ok, result.reason  # kept as received: nothing is decoded at ingest
    instance = f"/dicom-web/studies/{ids.study}/series/{ids.series}/instances/{ids.sop}"
    targets = [
        f"{instance}/rendered",
        f"{instance}/thumbnail",
        f"{instance}/frames/1/rendered",
        f"/dicom-web/studies/{ids.study}/series/{ids.series}/rendered",
        f"/dicom-web/studies/{ids.study}/thumbnail",
    ]
    for target in targets:
        started = time.monotonic()
        with rss_peak() as peak:
            r = client.get(target, headers={"Accept": "image/jpeg"})
        assert r.status_code == 422, (target, r.status_code, r.text[:200])
        assert "pixels" in r.json()["detail"]
        assert time.monotonic() - started < 10, target
        assert peak.growth < 128 * MIB, (target, peak.growth)
    with rss_peak() as peak:
        frames = client.get(
            f"{instance}/frames/1",
            headers={"Accept": "multipart/related; type=application/octet-stream"},
        )
        whole = client.get(
            instance, headers={"Accept": 'multipart/related; type="application/dicom"'}
        )
    for answer in (frames, whole):
        assert answer.status_code == 406 and "pixels" in answer.json()["detail"], answer.text

    assert peak.growth < 128 * MIB


# -- palettes ---------------------------------------------------------------------------
def _palette_image(ids: Ids, palette: bytes, values: np.ndarray) -> bytes:
    rows, columns = values.shape
    pixel_module = _pixel_module(rows, columns, "PALETTE COLOR")
    pixels = element(0x7FE0, 0x0010, b"OW", values.astype(np.uint8).tobytes())
    return part10(head(ids) + tail(ids) + pixel_module + palette + pixels, ids)


def _descriptors(entries: int, first: int, bits: int) -> bytes:
    value = struct.pack("<HHH", entries, first, bits)
    return b"".join(element(0x0028, 0x1101 + i, b"US", value) for i in range(3))


def _tables(*tables: bytes, segmented: bool = False) -> bytes:
    start = 0x1221 if segmented else 0x1201
    return b"".join(element(0x0028, start + i, b"OW", t) for i, t in enumerate(tables))


def _words(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}H", *values)


def _amplifying() -> bytes:
    """A segmented table whose indirect segments each copy all segments before them:
    pydicom's recursive expansion doubles with each one (2^30 × 65535 entries)."""
    words = [0, 1, 0, 1, 65535, 65535]
    segments = 2
    for _ in range(30):
        words += [2, segments, 0, 0]
        segments += 1
    return _words(*words)


_RAMP = _words(*(i * 257 for i in range(256)))
_HOSTILE_PALETTES = {
    "fewer entries than described": _descriptors(256, 0, 16) + _tables(_RAMP[:32], _RAMP, _RAMP),
    "32-bit entries": _descriptors(256, 0, 32) + _tables(_RAMP, _RAMP, _RAMP),
    "no green table": _descriptors(256, 0, 16)
    + element(0x0028, 0x1201, b"OW", _RAMP)
    + element(0x0028, 0x1203, b"OW", _RAMP),
    "segments that amplify": _descriptors(0, 0, 16)
    + _tables(_amplifying(), _amplifying(), _amplifying(), segmented=True),
    "an indirect segment that copies itself": _descriptors(256, 0, 16)
    + _tables(*[_words(0, 1, 7, 2, 2, 3, 0)] * 3, segmented=True),
}


@pytest.mark.parametrize("case", list(_HOSTILE_PALETTES))
def test_palettes_that_lie_answer_422_at_once(
    platform: Platform, client: TestClient, case: str
) -> None:
    ids = Ids()
    values = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 256
    data = _palette_image(ids, _HOSTILE_PALETTES[case], values)
    assert platform.archive.store(platform.default_facility().id, data).ok
    instance = f"/dicom-web/studies/{ids.study}/series/{ids.series}/instances/{ids.sop}"
    for target in (f"{instance}/rendered", f"{instance}/thumbnail"):
        started = time.monotonic()
        with rss_peak() as peak:
            r = client.get(target)
        assert r.status_code == 422, (case, r.status_code, r.text[:200])
        assert "palette" in r.json()["detail"]
        assert time.monotonic() - started < 10
        assert peak.growth < 64 * MIB


def test_a_true_palette_renders_in_colour_and_clamps_values_beyond_it(
    platform: Platform, client: TestClient
) -> None:
    """Values past the last entry take the last entry (PS3.3 C.7.6.3.1.5)."""
    ids = Ids()
    red, green, blue = _words(*([65535] * 4)), _words(*([0] * 4)), _words(0, 0, 0, 65535)
    values = np.array([[0, 1], [3, 200]], dtype=np.uint8)
    data = _palette_image(ids, _descriptors(4, 0, 16) + _tables(red, green, blue), values)
    assert platform.archive.store(platform.default_facility().id, data).ok
    r = client.get(
        f"/dicom-web/studies/{ids.study}/series/{ids.series}/instances/{ids.sop}/rendered",
        headers={"Accept": "image/png"},
    )
    assert r.status_code == 200
    rgb = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
    assert rgb[0, 0].tolist() == [255, 0, 0]
    assert rgb[1, 0].tolist() == [255, 0, 255] == rgb[1, 1].tolist()
