"""Transfer syntaxes: frame extraction without decoding, and conversion with real codecs.

Decoding goes through pydicom's pixel decoders (pylibjpeg: libjpeg, openjpeg,
rle; pyjpegls). Encoding: pydicom's encoders for RLE Lossless, JPEG-LS and
JPEG 2000, Pillow for JPEG Baseline (8 bit). The stored original is never
changed: every function here takes bytes and returns new bytes.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames, get_frame
from pydicom.filewriter import dcmwrite
from pydicom.multival import MultiValue
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.encoders.base import get_encoder
from pydicom.pixels.utils import pack_bits
from pydicom.uid import UID

from telerad.dicom import limits, pixelscan

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_LS_NEAR = "1.2.840.10008.1.2.4.81"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
J2K = "1.2.840.10008.1.2.4.91"
J2K_PART2_LOSSLESS = "1.2.840.10008.1.2.4.92"
J2K_PART2 = "1.2.840.10008.1.2.4.93"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K_LOSSLESS_RPCL = "1.2.840.10008.1.2.4.202"
HTJ2K = "1.2.840.10008.1.2.4.203"
RLE = "1.2.840.10008.1.2.5"

#: Syntaxes whose pixel data lies in the dataset as plain little-endian values.
NATIVE_LE = frozenset({EXPLICIT_LE, IMPLICIT_LE, DEFLATED_LE})
NATIVE = NATIVE_LE | {EXPLICIT_BE}
#: Syntaxes we can produce (lossless ones first in the docs; lossy ones only on request).
_ENCODED = (RLE, JPEG_LS_LOSSLESS, JPEG_LS_NEAR, J2K_LOSSLESS, J2K, JPEG_BASELINE)
WRITABLE = frozenset({EXPLICIT_LE, IMPLICIT_LE, DEFLATED_LE, *_ENCODED})
LOSSY = frozenset({JPEG_BASELINE, JPEG_EXTENDED, JPEG_LS_NEAR, J2K, J2K_PART2, HTJ2K})
#: Syntaxes whose pixel data we can decode with the installed plugins.
READABLE = (
    frozenset(
        uid
        for uid in (
            JPEG_BASELINE,
            JPEG_EXTENDED,
            JPEG_LOSSLESS,
            JPEG_LOSSLESS_SV1,
            JPEG_LS_LOSSLESS,
            JPEG_LS_NEAR,
            J2K_LOSSLESS,
            J2K,
            HTJ2K_LOSSLESS,
            HTJ2K_LOSSLESS_RPCL,
            HTJ2K,
            RLE,
        )
        if get_decoder(uid).is_available
    )
    | NATIVE
)

#: Lossy settings when a client asks for a lossy syntax (a viewer's bandwidth choice).
JPEG_QUALITY = 90
J2K_RATIO = 10.0
JLS_NEAR_ERROR = 2
_LOSSY_METHOD = {JPEG_BASELINE: "ISO_10918_1", JPEG_LS_NEAR: "ISO_14495_1", J2K: "ISO_15444_1"}


class TranscodeError(ValueError):
    """The requested representation cannot be produced for this object; says why."""


class NoPixelData(TranscodeError):
    """The instance has no Pixel Data (7FE0,0010), so it has no frames."""


class ImageTooLarge(TranscodeError):
    """Decoding would allocate more than :mod:`telerad.dicom.limits` allows."""


def check_decodable(info: PixelInfo, frames: Iterable[bytes] = ()) -> None:
    """Raise :class:`ImageTooLarge` unless each frame may be decoded: at most
    ``limits.MAX_DECODED_PIXELS`` pixels, and every compressed frame's codestream
    the size Rows and Columns say (the decoder allocates what the codestream says)."""
    try:
        limits.check_frame_size(info.rows, info.columns)
        for frame in frames:
            limits.check_codestream(frame, info.rows, info.columns)
    except limits.LimitExceeded as exc:
        raise ImageTooLarge(str(exc)) from exc


def read_dataset(data: bytes) -> Dataset:
    return dcmread(io.BytesIO(data))


def stored_syntax(ds: Dataset) -> str:
    return str(ds.file_meta.TransferSyntaxUID)


def _write(ds: Dataset, transfer_syntax: str) -> bytes:
    ds.file_meta.TransferSyntaxUID = UID(transfer_syntax)
    buf = io.BytesIO()
    # dcmwrite (unlike save_as) may change the byte order, as a Big Endian source needs.
    dcmwrite(
        buf,
        ds,
        implicit_vr=transfer_syntax == IMPLICIT_LE,
        little_endian=True,
        enforce_file_format=True,
    )
    return buf.getvalue()


def _values(ds: Dataset, keyword: str) -> list[Any]:
    value = ds.get(keyword)
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]


def _mark_lossy(ds: Dataset, transfer_syntax: str, ratio: float | None) -> None:
    """Lossy compression is recorded in the object (PS3.3 C.7.6.1.1.5)."""
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = [
        *_values(ds, "LossyImageCompressionMethod"),
        _LOSSY_METHOD[transfer_syntax],
    ]
    if ratio:
        ds.LossyImageCompressionRatio = [
            *_values(ds, "LossyImageCompressionRatio"),
            round(ratio, 2),
        ]


def _native_bytes(arr: np.ndarray, bits_allocated: int) -> bytes:
    if bits_allocated == 1:
        return pack_bits(arr, pad=False)
    return bytes(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())


def transcode(data: bytes, target: str) -> tuple[bytes, str]:
    """Part 10 bytes in ``target`` syntax, and the syntax actually used.

    An object without pixel data cannot be "compressed": asked for a compressed
    syntax it is sent in Explicit VR Little Endian, and the caller labels it so.
    """
    ds = read_dataset(data)
    source = stored_syntax(ds)
    if source == target:
        return data, source
    if target not in WRITABLE:
        raise TranscodeError(f"cannot encode transfer syntax {target}")
    if "PixelData" not in ds:
        actual = target if target in NATIVE_LE else EXPLICIT_LE
        return _write(ds, actual), actual
    if source not in READABLE:
        raise TranscodeError(f"cannot decode the stored transfer syntax {source}")
    try:
        if source not in NATIVE:
            info = PixelInfo.of(ds)
            check_decodable(info, generate_frames(ds.PixelData, number_of_frames=info.frames))
            ds.decompress(generate_instance_uid=False, as_rgb=True)
        elif source == EXPLICIT_BE or target not in NATIVE_LE:
            check_decodable(PixelInfo.of(ds))  # the pixels are decoded or encoded
        if source == EXPLICIT_BE:
            ds.PixelData = _native_bytes(ds.pixel_array, int(ds.BitsAllocated))
        if target in NATIVE_LE:
            return _write(ds, target), target
        if target == JPEG_BASELINE:
            _jpeg_baseline_dataset(ds)
        else:
            kwargs: dict[str, Any] = {}
            if target == J2K:
                kwargs["j2k_cr"] = [J2K_RATIO]
            elif target == JPEG_LS_NEAR:
                kwargs["jls_error"] = JLS_NEAR_ERROR
            ds.compress(target, generate_instance_uid=False, **kwargs)
            if target in LOSSY:
                _mark_lossy(ds, target, J2K_RATIO if target == J2K else None)
        return _write(ds, target), target
    except TranscodeError:
        raise
    except Exception as exc:  # codec refusals come as many exception types
        raise TranscodeError(f"cannot transcode {source} to {target}: {exc}") from exc


def _jpeg_baseline_dataset(ds: Dataset) -> None:
    info = PixelInfo.of(ds)
    frames = []
    arr = ds.pixel_array
    if info.frames == 1:
        arr = arr[np.newaxis, ...]
    for index in range(info.frames):
        frames.append(_jpeg_baseline(arr[index], info))
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    if info.samples == 3:
        ds.PhotometricInterpretation = "YBR_FULL_422"
        ds.PlanarConfiguration = 0
    _mark_lossy(ds, JPEG_BASELINE, None)


def _jpeg_baseline(arr: np.ndarray, info: PixelInfo) -> bytes:
    from PIL import Image

    if info.bits_allocated != 8 or info.samples not in (1, 3):
        raise TranscodeError(
            "JPEG Baseline holds 8-bit samples; this image has "
            f"{info.bits_stored}-bit samples (ask for a lossless syntax instead)"
        )
    if info.samples == 3 and info.photometric not in ("RGB",):
        raise TranscodeError(f"cannot JPEG-encode {info.photometric} colour data")
    image = Image.fromarray(
        np.ascontiguousarray(arr.astype(np.uint8)), "RGB" if info.samples == 3 else "L"
    )
    out = io.BytesIO()
    # 4:2:2 chroma subsampling is what YBR_FULL_422 declares (PS3.5 8.2.1).
    image.save(out, "JPEG", quality=JPEG_QUALITY, subsampling=1)
    return out.getvalue()


@dataclass(frozen=True)
class PixelInfo:
    """The Image Pixel attributes a codec needs."""

    rows: int
    columns: int
    samples: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric: str
    planar_configuration: int
    frames: int

    @classmethod
    def of(cls, ds: Dataset) -> PixelInfo:
        try:
            return cls(
                rows=int(ds.Rows),
                columns=int(ds.Columns),
                samples=int(ds.get("SamplesPerPixel", 1) or 1),
                bits_allocated=int(ds.BitsAllocated),
                bits_stored=int(ds.get("BitsStored", ds.BitsAllocated) or ds.BitsAllocated),
                pixel_representation=int(ds.get("PixelRepresentation", 0) or 0),
                photometric=str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip(),
                planar_configuration=int(ds.get("PlanarConfiguration", 0) or 0),
                frames=max(1, int(ds.get("NumberOfFrames", 1) or 1)),
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise TranscodeError(f"incomplete Image Pixel attributes: {exc}") from exc

    @property
    def frame_length(self) -> int:
        """Bytes of one native frame (bit-packed data has no byte-aligned frames)."""
        samples = self.samples
        if samples == 3 and self.photometric == "YBR_FULL_422":
            samples = 2  # chroma subsampled horizontally: two values per pixel (PS3.3 C.7.6.3.1.2)
        return self.rows * self.columns * samples * self.bits_allocated // 8


class FrameSource:
    """The frames of one stored instance: as stored (no decoding) or decoded.

    Frames as stored come from a header walk (:mod:`telerad.dicom.pixelscan`) and
    slicing; the object is parsed with pydicom only when that walk cannot be used
    or when a frame has to be decoded.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._ds: Dataset | None = None
        self._layout = pixelscan.scan(data)
        self._fragments: list[tuple[int, int]] | None = None
        if self._layout is not None:
            lay = self._layout
            self.transfer_syntax = lay.transfer_syntax
            self.info = PixelInfo(
                lay.rows,
                lay.columns,
                lay.samples,
                lay.bits_allocated,
                lay.bits_stored,
                lay.pixel_representation,
                lay.photometric,
                lay.planar_configuration,
                lay.frames,
            )
            return
        ds = self.ds
        if "PixelData" not in ds:
            raise NoPixelData("the instance has no Pixel Data")
        self.transfer_syntax = stored_syntax(ds)
        self.info = PixelInfo.of(ds)

    @property
    def ds(self) -> Dataset:
        if self._ds is None:
            self._ds = read_dataset(self.data)
        return self._ds

    @property
    def count(self) -> int:
        return self.info.frames

    def stored(self, index: int) -> bytes:
        """Frame ``index`` (0-based) exactly as stored; native frames in little endian."""
        ts = self.transfer_syntax
        lay = self._layout
        if ts in NATIVE_LE and self.info.bits_allocated >= 8:
            length = self.info.frame_length
            start = index * length
            if lay is not None and lay.value_length != pixelscan.UNDEFINED:
                if start + length > lay.value_length:
                    raise TranscodeError("Pixel Data is shorter than its frames need")
                return self.data[lay.value_offset + start : lay.value_offset + start + length]
            value = self.ds.PixelData
            if start + length > len(value):
                raise TranscodeError("Pixel Data is shorter than its frames need")
            return bytes(value[start : start + length])
        if ts in NATIVE:
            arr, _ = self.decoded(index)
            return _native_bytes(arr, self.info.bits_allocated)
        if lay is not None and lay.value_length == pixelscan.UNDEFINED:
            frame = self._encapsulated_frame(lay, index)
            if frame is not None:
                return frame
        try:
            ext = None
            if "ExtendedOffsetTable" in self.ds and "ExtendedOffsetTableLengths" in self.ds:
                ext = (self.ds.ExtendedOffsetTable, self.ds.ExtendedOffsetTableLengths)
            return get_frame(
                self.ds.PixelData, index, number_of_frames=self.count, extended_offsets=ext
            )
        except Exception as exc:
            raise TranscodeError(f"cannot find frame {index + 1} in the pixel data: {exc}") from exc

    def _encapsulated_frame(self, lay: pixelscan.PixelLayout, index: int) -> bytes | None:
        """A frame from the fragments when their layout is unambiguous, else None."""
        found = pixelscan.fragments(self.data, lay.value_offset)
        if found is None:
            return None
        table, frags = found
        data = self.data
        if self.count == 1:
            return b"".join(data[a:b] for a, b in frags)
        if table and len(table) == self.count:
            first = frags[0][0] - 8 if frags else 0  # offsets count from the first item tag
            low = table[index]
            high = table[index + 1] if index + 1 < len(table) else None
            picked = [
                (a, b)
                for a, b in frags
                if (a - 8 - first) >= low and (high is None or (a - 8 - first) < high)
            ]
            return b"".join(data[a:b] for a, b in picked) if picked else None
        if len(frags) == self.count:
            a, b = frags[index]
            return data[a:b]
        return None

    def decoded(self, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        """Frame ``index`` decoded (colour as RGB), with the decoder's pixel attributes."""
        if self.transfer_syntax not in READABLE:
            raise TranscodeError(f"cannot decode transfer syntax {self.transfer_syntax}")
        encapsulated = self.transfer_syntax not in NATIVE
        check_decodable(self.info, [self.stored(index)] if encapsulated else [])
        try:
            options: Any = {"as_rgb": True}
            arr, meta = get_decoder(self.transfer_syntax).as_array(self.ds, index=index, **options)
        except Exception as exc:
            raise TranscodeError(f"cannot decode frame {index + 1}: {exc}") from exc
        return arr, dict(meta)

    def encoded(self, index: int, target: str) -> bytes:
        """Frame ``index`` in ``target`` transfer syntax (the frame's bytes, no dataset)."""
        ts = self.transfer_syntax
        if target == ts or (target == EXPLICIT_LE and ts in NATIVE):
            return self.stored(index)
        if target not in WRITABLE:
            raise TranscodeError(f"cannot encode frames in transfer syntax {target}")
        arr, meta = self.decoded(index)
        info = self.info
        bits_stored = int(meta.get("bits_stored", info.bits_stored))
        photometric = str(meta.get("photometric_interpretation", info.photometric))
        if target in NATIVE_LE:
            return _native_bytes(arr, info.bits_allocated)
        if target == JPEG_BASELINE:
            return _jpeg_baseline(arr, _replace(info, photometric=photometric))
        kwargs: dict[str, Any] = {}
        if target == J2K:
            kwargs["j2k_cr"] = [J2K_RATIO]
        elif target == JPEG_LS_NEAR:
            kwargs["jls_error"] = JLS_NEAR_ERROR
        try:
            return bytes(
                get_encoder(target).encode(
                    np.ascontiguousarray(arr),
                    rows=info.rows,
                    columns=info.columns,
                    samples_per_pixel=info.samples,
                    bits_allocated=info.bits_allocated,
                    bits_stored=bits_stored,
                    pixel_representation=info.pixel_representation,
                    photometric_interpretation=photometric,
                    planar_configuration=0,
                    number_of_frames=1,
                    **kwargs,
                )
            )
        except Exception as exc:
            raise TranscodeError(f"cannot encode frame {index + 1} as {target}: {exc}") from exc


def _replace(info: PixelInfo, **changes: Any) -> PixelInfo:
    from dataclasses import replace

    return replace(info, **changes)
