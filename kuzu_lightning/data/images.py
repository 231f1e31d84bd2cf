"""Robust page decoding: any colour mode or bit depth in, RGB ``uint8`` ``H x W x 3`` out.

- Grayscale, RGBA (composited over white), palette and 16-bit images are converted.
- The pixel count is read from the header first; images above ``max_pixels`` (decompression
  bombs, or scans far larger than any real page) are refused before any pixel is decoded.
- ``decode_page(path, longest_side=...)`` decodes JPEGs at 1/2, 1/4 or 1/8 scale inside libjpeg
  when the target allows it, which is several times faster than a full decode and a resize.
- EXIF orientation is ignored, so pixels stay in the frame the Kaggle boxes were drawn in.
- A page of a PDF (:class:`~kuzu_lightning.data.pdf.PdfPage`) is rendered (:mod:`kuzu_lightning.data.pdf`).

Every failure raises :class:`PageDecodeError` naming the file.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

DEFAULT_MAX_PIXELS = 100_000_000
"""Largest page accepted by default: ten times a real Kaggle scan (about 2400 x 3900)."""

_REDUCED_JPEG_FLAGS = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


class PageDecodeError(ValueError):
    """A page image that is missing, unreadable, of an unsupported kind or too large."""


def _read_bytes(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise PageDecodeError(f"{path}: no such image file") from None
    except OSError as error:
        raise PageDecodeError(f"{path}: cannot read: {error}") from None


def _header_size(data: bytes, path: str | Path, max_pixels: int | None) -> tuple[int, int]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        raise PageDecodeError(f"{path}: refused, its header declares a decompression bomb") from None
    except Exception as error:  # PIL raises many kinds for a broken header
        raise PageDecodeError(f"{path}: not a readable image ({error})") from None
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    if width * height > limit:
        raise PageDecodeError(
            f"{path}: refused, {width} x {height} = {width * height} pixels is above the limit of {limit} "
            "(raise max_pixels if this page is genuine)"
        )
    return width, height


def read_image_size(path: str | Path, max_pixels: int | None = None) -> tuple[int, int]:
    """``(width, height)`` of an image from its header, without decoding pixels (of a page of a PDF,
    :class:`~kuzu_lightning.data.pdf.PdfPage`, the size it renders at)."""
    if hasattr(path, "rendered_size"):
        return path.rendered_size(max_pixels)
    return _header_size(_read_bytes(path), path, max_pixels)


def _to_rgb8(image: np.ndarray, path: str | Path) -> np.ndarray:
    """OpenCV's decoded array (gray, BGR or BGRA; 8 or 16 bit) -> RGB uint8."""
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise PageDecodeError(f"{path}: unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        alpha = image[:, :, 3:].astype(np.float32) / 255.0
        image = (image[:, :, :3] * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _jpeg_reduction(size: tuple[int, int], longest_side: int) -> int:
    """Largest libjpeg scale-down (1, 2, 4 or 8) that keeps the longest side >= ``longest_side``."""
    factor = 1
    while factor < 8 and max(size) // (factor * 2) >= longest_side:
        factor *= 2
    return factor


def decode_page(path: str | Path, longest_side: int | None = None, max_pixels: int | None = None) -> np.ndarray:
    """Decode a page as RGB ``uint8`` ``H x W x 3``.

    With ``longest_side``, the page is resized (area interpolation down, linear up) so that its
    longer side has exactly that many pixels, the aspect ratio kept; JPEGs are then decoded at a
    reduced scale first when possible. Map boxes between the two frames with the ratio of this
    array's shape to :func:`read_image_size`. A page of a PDF (:class:`~kuzu_lightning.data.pdf.PdfPage`) is
    rendered at its resolution.
    """
    if hasattr(path, "render"):
        image = path.render(max_pixels)
        return resize_longest_side(image, longest_side) if longest_side else image
    data = _read_bytes(path)
    width, height = _header_size(data, path, max_pixels)
    buffer = np.frombuffer(data, dtype=np.uint8)
    factor = _jpeg_reduction((width, height), longest_side) if longest_side else 1
    is_jpeg = data[:3] == b"\xff\xd8\xff"
    if factor > 1 and is_jpeg:
        image = cv2.imdecode(buffer, _REDUCED_JPEG_FLAGS[factor] | cv2.IMREAD_IGNORE_ORIENTATION)
    else:
        image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise PageDecodeError(f"{path}: the image data is corrupt or truncated")
    image = _to_rgb8(image, path)
    return resize_longest_side(image, longest_side, (width, height)) if longest_side else image


def resize_longest_side(image: np.ndarray, longest_side: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """``image`` resized (area interpolation down, linear up) to ``longest_side`` on its longer side.

    ``size`` is the ``(width, height)`` the target is computed from (the original's, when ``image``
    was decoded at a reduced scale); by default ``image``'s own.
    """
    width, height = size or (image.shape[1], image.shape[0])
    scale = longest_side / max(width, height)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    if target == (image.shape[1], image.shape[0]):
        return image
    shrink = target[0] < image.shape[1]
    return cv2.resize(image, target, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
