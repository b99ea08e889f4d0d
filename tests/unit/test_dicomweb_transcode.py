"""Transcoding and rendering with the real codecs, on pydicom's sample files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.pixels import get_decoder
from tests.support import sample_files

from telerad.dicom import transcode as tx
from telerad.dicom.render import RenderError, Window, parse_viewport, parse_window, window

SAMPLES = [
    "JPEG2000.dcm",  # J2K (lossy syntax), 16-bit signed
    "JPEG-LL.dcm",  # JPEG Lossless SV1, 16-bit
    "SC_rgb_rle.dcm",  # RLE, RGB
    "JPEGLSNearLossless_16.dcm",
    "MR_small.dcm",  # Explicit VR LE
    "US1_J2KR.dcm",  # J2K lossless, YBR_RCT colour
    "emri_small_jpeg_2k_lossless.dcm",  # multi-frame
    "emri_small_RLE.dcm",
    "MR_small_bigendian.dcm",
    "SC_rgb_2frame.dcm",
]
LOSSLESS = [
    tx.EXPLICIT_LE,
    tx.IMPLICIT_LE,
    tx.DEFLATED_LE,
    tx.RLE,
    tx.JPEG_LS_LOSSLESS,
    tx.J2K_LOSSLESS,
]


def sample(name: str) -> bytes:
    path = get_testdata_file(name)
    assert path is not None
    with open(path, "rb") as f:
        return f.read()


def decoded(data: bytes) -> np.ndarray:
    return dcmread(io.BytesIO(data)).pixel_array


@pytest.mark.parametrize("name", SAMPLES)
@pytest.mark.parametrize("target", LOSSLESS)
def test_lossless_transcoding_keeps_pixels(name: str, target: str) -> None:
    original = sample(name)
    try:
        out, actual = tx.transcode(original, target)
    except tx.TranscodeError as exc:
        # The one refusal expected: openjpeg cannot code a 10-column image with
        # its default resolution levels.
        assert name == "JPEGLSNearLossless_16.dcm" and target == tx.J2K_LOSSLESS, exc
        return
    assert actual == target
    ds = dcmread(io.BytesIO(out))
    assert ds.file_meta.TransferSyntaxUID == target
    assert ds.SOPInstanceUID == dcmread(io.BytesIO(original)).SOPInstanceUID
    assert np.array_equal(ds.pixel_array, decoded(original))


def test_same_syntax_returns_the_same_bytes() -> None:
    original = sample("JPEG2000.dcm")
    assert tx.transcode(original, tx.J2K) == (original, tx.J2K)


@pytest.mark.parametrize(
    "target, method",
    [(tx.J2K, "ISO_15444_1"), (tx.JPEG_LS_NEAR, "ISO_14495_1"), (tx.JPEG_BASELINE, "ISO_10918_1")],
)
def test_lossy_targets_are_recorded(target: str, method: str) -> None:
    original = sample("SC_rgb_2frame.dcm")
    out, _ = tx.transcode(original, target)
    ds = dcmread(io.BytesIO(out))
    assert ds.LossyImageCompression == "01"
    assert method in ds.LossyImageCompressionMethod
    err = np.abs(ds.pixel_array.astype(int) - decoded(original).astype(int))
    assert err.mean() < 4


def test_refusals() -> None:
    with pytest.raises(tx.TranscodeError, match="8-bit"):
        tx.transcode(sample("MR_small.dcm"), tx.JPEG_BASELINE)
    with pytest.raises(tx.TranscodeError, match="cannot encode"):
        tx.transcode(sample("MR_small.dcm"), tx.JPEG_LOSSLESS)


def test_object_without_pixels_goes_out_explicit_little_endian() -> None:
    sr = sample("rtplan.dcm")
    out, actual = tx.transcode(sr, tx.J2K_LOSSLESS)
    assert actual == tx.EXPLICIT_LE
    assert dcmread(io.BytesIO(out)).file_meta.TransferSyntaxUID == tx.EXPLICIT_LE
    with pytest.raises(tx.NoPixelData):
        tx.FrameSource(sr)


@pytest.mark.parametrize(
    "name", ["emri_small.dcm", "emri_small_RLE.dcm", "SC_rgb_2frame.dcm", "US1_J2KR.dcm"]
)
@pytest.mark.parametrize("target", [tx.EXPLICIT_LE, tx.RLE, tx.JPEG_LS_LOSSLESS, tx.J2K_LOSSLESS])
def test_frame_encoding_decodes_to_the_same_frame(name: str, target: str) -> None:
    source = tx.FrameSource(sample(name))
    index = source.count - 1
    expected, _ = source.decoded(index)
    frame = source.encoded(index, target)
    info = source.info
    if target == tx.EXPLICIT_LE:
        dtype = expected.dtype.newbyteorder("<")
        got = np.frombuffer(frame, dtype).reshape(expected.shape)
    else:
        got = _decode_frame(frame, target, info, expected)
    assert np.array_equal(got, expected)


def _decode_frame(frame: bytes, ts: str, info: tx.PixelInfo, like: np.ndarray) -> np.ndarray:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts
    ds.Rows, ds.Columns = info.rows, info.columns
    ds.SamplesPerPixel = info.samples
    ds.BitsAllocated, ds.BitsStored = info.bits_allocated, info.bits_stored
    ds.HighBit = info.bits_stored - 1
    ds.PixelRepresentation = info.pixel_representation
    ds.PhotometricInterpretation = "RGB" if info.samples == 3 else info.photometric
    ds.PlanarConfiguration = 0
    ds.NumberOfFrames = 1
    ds.PixelData = encapsulate([frame])
    arr, _ = get_decoder(ts).as_array(ds, as_rgb=True)
    return arr.reshape(like.shape)


def test_native_frames_are_slices() -> None:
    data = sample("emri_small.dcm")
    source = tx.FrameSource(data)
    ds = dcmread(io.BytesIO(data))
    assert source.count == 10
    assert source.stored(9) == ds.PixelData[9 * 8192 :]
    big = tx.FrameSource(sample("MR_small_bigendian.dcm"))
    values = np.frombuffer(big.stored(0), "<i2").reshape(64, 64)
    assert np.array_equal(values, dcmread(get_testdata_file("MR_small_bigendian.dcm")).pixel_array)


def test_window_functions() -> None:
    v = np.array([-100.0, 0.0, 39.5, 40.0, 100.0, 1000.0])
    linear = window(v, Window(40, 400))
    assert linear[0] < linear[1] < linear[4] < linear[5] == 255
    assert window(np.array([-161.0, 240.0]), Window(40, 400)).tolist() == [0, 255]
    exact = window(np.array([-160.0, 40.0, 240.0]), Window(40, 400, "LINEAR_EXACT"))
    assert exact.tolist() == [0, 128, 255]
    sigmoid = window(np.array([40.0]), Window(40, 400, "SIGMOID"))
    assert sigmoid.tolist() == [128]


def test_render_parameter_parsing() -> None:
    assert parse_window("40,400") == Window(40, 400, "LINEAR")
    assert parse_window("40,400,sigmoid") == Window(40, 400, "SIGMOID")
    assert parse_viewport("512,256").width == 512
    assert parse_viewport("100,100,10,10,50,50").region == (10, 10, 50, 50)
    for bad in ("40", "a,b", "40,0", "40,400,CUBIC"):
        with pytest.raises(RenderError):
            parse_window(bad)
    for bad in ("100", "0,10", "1.5,2", "100,100,0,0,-1,5", "99999,1"):
        with pytest.raises(RenderError):
            parse_viewport(bad)


def test_header_walk_finds_the_same_frames_as_pydicom() -> None:
    """Every pydicom sample with pixel data: frames as stored equal pydicom's view of them."""
    from pydicom.encaps import get_frame

    from telerad.dicom import pixelscan

    walked = 0
    for path in sample_files():
        with open(path, "rb") as f:
            data = f.read()
        layout = pixelscan.scan(data)
        if layout is None:
            continue
        ds = dcmread(io.BytesIO(data))
        if "Rows" not in ds:  # a deliberately truncated sample pydicom reads only in part
            continue
        walked += 1
        assert (layout.rows, layout.columns) == (ds.Rows, ds.Columns), path
        source = tx.FrameSource(data)
        ts = ds.file_meta.TransferSyntaxUID
        for index in range(min(source.count, 3)):
            if ts.is_encapsulated:
                expected = get_frame(ds.PixelData, index, number_of_frames=source.count)
            elif ts in tx.NATIVE_LE and source.info.bits_allocated >= 8:
                length = source.info.frame_length
                expected = ds.PixelData[index * length : (index + 1) * length]
            else:
                continue
            assert source.stored(index) == expected, (path, index)
    assert walked > 80
