"""Rendering a frame for display (PS3.18 8.3.5 rendered and thumbnail resources).

Grayscale: Modality LUT (rescale), then the VOI window (the request's, else the
object's first WindowCenter/WindowWidth, else its VOI LUT, else the pixel range)
with the window function of PS3.3 C.11.2.1.2, then MONOCHROME1 inversion.
Colour: decoded to RGB and scaled to 8 bits; Palette Color through its checked
lookup tables (:mod:`telerad.dicom.palette`). Then the viewport, then JPEG or PNG.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut

from telerad.dicom.palette import PaletteError, apply_palette
from telerad.dicom.transcode import FrameSource, TranscodeError

WINDOW_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
MAX_VIEWPORT = 4096
THUMBNAIL_SIZE = (128, 128)


class RenderError(ValueError):
    """Rendering parameters that cannot be honoured; the message says why."""


@dataclass(frozen=True)
class Window:
    center: float
    width: float
    function: str = "LINEAR"


@dataclass(frozen=True)
class Viewport:
    """Output size (vw, vh) and optionally the source region (sx, sy, sw, sh)."""

    width: int
    height: int
    region: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class RenderOptions:
    media_type: str = "image/jpeg"
    window: Window | None = None
    viewport: Viewport | None = None
    quality: int = 90


def _numbers(text: str, name: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip() != ""]
    except ValueError as exc:
        raise RenderError(f"{name} must be numbers separated by commas, not '{text}'") from exc


def parse_window(text: str | None) -> Window | None:
    """``window=center,width[,function]`` (PS3.18 8.3.5.1.4)."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (2, 3):
        raise RenderError("window must be center,width[,function]")
    center, width = _numbers(",".join(parts[:2]), "window")
    function = parts[2].upper() if len(parts) == 3 and parts[2] else "LINEAR"
    if function not in WINDOW_FUNCTIONS:
        raise RenderError(f"window function must be one of {', '.join(WINDOW_FUNCTIONS)}")
    if (width < 1 and function != "LINEAR_EXACT") or width <= 0:
        raise RenderError("window width must be positive (at least 1 for LINEAR)")
    return Window(center, width, function)


def parse_viewport(text: str | None) -> Viewport | None:
    """``viewport=vw,vh[,sx,sy,sw,sh]`` (PS3.18 8.3.5.1.3)."""
    if text is None:
        return None
    values = _numbers(text, "viewport")
    if len(values) not in (2, 6) or any(v != int(v) for v in values):
        raise RenderError("viewport must be vw,vh or vw,vh,sx,sy,sw,sh (integers)")
    vw, vh = int(values[0]), int(values[1])
    if not (0 < vw <= MAX_VIEWPORT and 0 < vh <= MAX_VIEWPORT):
        raise RenderError(f"viewport size must be between 1 and {MAX_VIEWPORT}")
    region = None
    if len(values) == 6:
        sx, sy, sw, sh = (int(v) for v in values[2:])
        if sx < 0 or sy < 0 or sw <= 0 or sh <= 0:
            raise RenderError("viewport source region must have a positive size")
        region = (sx, sy, sw, sh)
    return Viewport(vw, vh, region)


def parse_quality(text: str | None) -> int:
    if text is None:
        return 90
    try:
        quality = int(text)
    except ValueError as exc:
        raise RenderError(f"quality must be an integer 1..100, not '{text}'") from exc
    if not 1 <= quality <= 100:
        raise RenderError("quality must be between 1 and 100")
    return quality


def _first(ds: Dataset, keyword: str) -> float | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        return float(
            value[0] if hasattr(value, "__len__") and not isinstance(value, str) else value
        )
    except (TypeError, ValueError, IndexError):
        return None


def window(values: np.ndarray, win: Window) -> np.ndarray:
    """Map values to 0..255 with a VOI window (PS3.3 C.11.2.1.2.1 and C.11.2.1.3)."""
    c, w = win.center, win.width
    v = values.astype(np.float64, copy=False)
    if win.function == "SIGMOID":
        out = 255.0 / (1.0 + np.exp(-4.0 * (v - c) / w))
    elif win.function == "LINEAR_EXACT":
        out = np.clip((v - c) / w + 0.5, 0.0, 1.0) * 255.0
    else:
        out = (
            np.clip(((v - (c - 0.5)) / (w - 1.0) + 0.5) if w > 1 else (v >= c) * 1.0, 0.0, 1.0)
            * 255.0
        )
    return np.rint(out).astype(np.uint8)


def _grayscale(arr: np.ndarray, ds: Dataset, win: Window | None, photometric: str) -> np.ndarray:
    values = apply_modality_lut(arr, ds)
    if win is None:
        center, width = _first(ds, "WindowCenter"), _first(ds, "WindowWidth")
        if center is not None and width is not None and width > 0:
            fn = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
            win = Window(center, width, fn if fn in WINDOW_FUNCTIONS else "LINEAR")
    if win is not None:
        out = window(values, win)
    elif "VOILUTSequence" in ds:
        voi = apply_voi_lut(values, ds).astype(np.float64)
        lo, hi = float(voi.min()), float(voi.max())
        out = np.rint((voi - lo) / ((hi - lo) or 1.0) * 255.0).astype(np.uint8)
    else:
        lo, hi = float(np.min(values)), float(np.max(values))
        out = window(values, Window((lo + hi) / 2.0, max(hi - lo, 1.0) + 1.0))
    if photometric == "MONOCHROME1":
        out = 255 - out
    return out


def _colour(arr: np.ndarray, bits_stored: int) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    shift = max(0, bits_stored - 8)
    out: np.ndarray = np.clip(arr.astype(np.int64) >> shift, 0, 255).astype(np.uint8)
    return out


def _fit(image: Image.Image, viewport: Viewport) -> Image.Image:
    if viewport.region:
        sx, sy, sw, sh = viewport.region
        image = image.crop((sx, sy, sx + sw, sy + sh))
    scale = min(viewport.width / image.width, viewport.height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if size != image.size:
        image = image.resize(
            size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BILINEAR
        )
    return image


def render_frame(source: FrameSource, index: int, options: RenderOptions) -> bytes:
    """Frame ``index`` (0-based) of ``source`` as an 8-bit JPEG or PNG."""
    arr, meta = source.decoded(index)
    photometric = str(meta.get("photometric_interpretation", source.info.photometric))
    try:
        if arr.ndim == 2 and photometric == "PALETTE COLOR":
            image = Image.fromarray(np.ascontiguousarray(apply_palette(arr, source.ds)), "RGB")
        elif arr.ndim == 2:
            pixels = _grayscale(arr, source.ds, options.window, photometric)
            image = Image.fromarray(np.ascontiguousarray(pixels), "L")
        elif arr.ndim == 3 and arr.shape[-1] == 3:
            pixels = _colour(arr, int(meta.get("bits_stored", source.info.bits_stored)))
            image = Image.fromarray(np.ascontiguousarray(pixels), "RGB")
        else:
            raise RenderError(f"cannot render pixel data of shape {arr.shape}")
    except (RenderError, TranscodeError, PaletteError):
        raise
    except Exception as exc:
        raise RenderError(f"cannot render this image: {exc}") from exc
    if options.viewport:
        image = _fit(image, options.viewport)
    out = io.BytesIO()
    if options.media_type == "image/png":
        image.save(out, "PNG", compress_level=3)
    else:
        image.save(out, "JPEG", quality=options.quality)
    return out.getvalue()


def thumbnail_options(media_type: str, viewport: Viewport | None) -> RenderOptions:
    return RenderOptions(
        media_type=media_type,
        viewport=viewport or Viewport(*THUMBNAIL_SIZE),
        quality=80,
    )
