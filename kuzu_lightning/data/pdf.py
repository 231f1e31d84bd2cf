"""PDF input: each page of a PDF read as a page scan, rendered by PDFium (``pypdfium2``) at a stated resolution.

A :class:`PdfPage` stands wherever a scan's path does: ``os.fspath`` gives the PDF's path (its size and modification
time are each of its pages' source, so a changed PDF is read again), :func:`~kuzu_lightning.data.images.decode_page`
renders it (RGB ``uint8`` ``H x W x 3``, white background, the page's own rotation applied) and
:func:`~kuzu_lightning.data.images.read_image_size` gives the size it renders at, ``ceil(points / 72 * dpi)`` on each
side, refused before any pixel is drawn when it is above the pixel limit. A page's pixels are the frame of its
outputs. Every failure raises :class:`~kuzu_lightning.data.images.PageDecodeError` naming the file and page.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kuzu_lightning.data.images import DEFAULT_MAX_PIXELS, PageDecodeError

PDF_SUFFIX = ".pdf"
DEFAULT_DPI = 300.0
"""The resolution PDF pages are rendered at by default: a Kaggle scan's (about 3,900 px for a 33 cm page)."""


def _open(path: str | os.PathLike):
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(os.fspath(path))
    except pdfium.PdfiumError as error:
        raise PageDecodeError(f"{path}: not a readable PDF ({error})") from None
    except OSError as error:
        raise PageDecodeError(f"{path}: cannot read: {error.strerror or error}") from None


def count_pages(path: str | os.PathLike) -> int:
    """How many pages the PDF at ``path`` has; :class:`~kuzu_lightning.data.images.PageDecodeError` when it cannot be
    opened (broken, encrypted, not a PDF)."""
    document = _open(path)
    try:
        return len(document)
    finally:
        document.close()


@dataclass(frozen=True)
class PdfPage:
    """Page ``number`` (from 1) of the PDF at ``path``, rendered at ``dpi``; ``str()`` is ``path#page=number``."""

    path: Path
    number: int
    dpi: float = DEFAULT_DPI

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return f"{self.path}#page={self.number}"

    def _page(self, document):
        if not 1 <= self.number <= len(document):
            raise PageDecodeError(f"{self}: the PDF has {len(document)} pages")
        return document[self.number - 1]

    def _size(self, page, max_pixels: int | None) -> tuple[int, int]:
        width, height = (math.ceil(side / 72 * self.dpi) for side in (page.get_width(), page.get_height()))
        limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
        if width * height > limit:
            raise PageDecodeError(f"{self}: refused, {width} x {height} = {width * height} pixels at {self.dpi:g} dpi "
                                  f"is above the limit of {limit} (lower the resolution)")
        return width, height

    def rendered_size(self, max_pixels: int | None = None) -> tuple[int, int]:
        """``(width, height)`` of the page as :meth:`render` draws it, without drawing it."""
        document = _open(self.path)
        try:
            return self._size(self._page(document), max_pixels)
        finally:
            document.close()

    def render(self, max_pixels: int | None = None) -> np.ndarray:
        """The page as RGB ``uint8`` ``H x W x 3``."""
        import pypdfium2 as pdfium

        document = _open(self.path)
        try:
            page = self._page(document)
            self._size(page, max_pixels)
            image = page.render(scale=self.dpi / 72, rev_byteorder=True).to_numpy()
        except pdfium.PdfiumError as error:
            raise PageDecodeError(f"{self}: cannot render ({error})") from None
        finally:
            document.close()
        return np.ascontiguousarray(image[:, :, :3])
