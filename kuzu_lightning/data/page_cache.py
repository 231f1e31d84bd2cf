"""Training pages decoded once, resized and kept on disk as JPEGs.

A real Kaggle scan is a JPEG of about 2400 x 3900 px: decoding it and resizing it to a longest
side of 2048 (the detector's training scale) takes about 115 ms on one core, too slow to feed a
GPU from a few loader workers, and libjpeg's reduced decoding cannot help at that scale (half
size is already below 2048). So each training page is decoded once, ever, resized with area
interpolation and written as a quality-95 JPEG with that longest side (about 25 ms to decode);
the loaders read those. Validation and prediction pages are decoded from the originals with
:func:`~kuzu_lightning.data.images.decode_page`'s reduced decoding instead, as new pages would be.

The cache folder is ``root/pages-{longest_side}px``, one ``{image_id}.jpg`` per page, written
under a temporary name and renamed, so an interrupted build resumes where it stopped (and what it
left half-written is deleted by the next build). Delete the
folder when the images change. A page that fails to decode is skipped with a logged error naming
the file, and counted.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import cv2

from kuzu_lightning.atomic import partial_name, remove_abandoned_partials
from kuzu_lightning.data.images import PageDecodeError, decode_page
from kuzu_lightning.data.kaggle import Page
from kuzu_lightning.data.loaders import map_in_processes

log = logging.getLogger(__name__)

JPEG_QUALITY = 95


def _resize_page(args: tuple[Page, int, Path, int | None]) -> str | None:
    """Write one page's resized JPEG; the error text when the page fails to decode."""
    page, longest_side, target, max_pixels = args
    try:
        image = decode_page(page.image_path, longest_side, max_pixels)
    except PageDecodeError as error:
        return str(error)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        return f"{page.image_path}: JPEG encoding of the resized page failed"
    partial = target.with_name(partial_name(target.name))
    partial.write_bytes(data.tobytes())
    partial.replace(target)
    return None


def ensure_resized_pages(pages: list[Page], longest_side: int, root: str | Path, workers: int = 0,
                         max_pixels: int | None = None) -> list[Page]:
    """``pages`` pointing at their resized copies under ``root`` (built first by ``workers`` processes).

    The returned pages keep their boxes and ``width``/``height`` in original-scan pixels; only
    ``image_path`` changes. Pages that fail to decode are left out (logged).
    """
    directory = Path(root) / f"pages-{longest_side}px"
    directory.mkdir(parents=True, exist_ok=True)
    remove_abandoned_partials(directory)
    targets = [directory / f"{page.image_id}.jpg" for page in pages]
    todo = [(page, longest_side, target, max_pixels) for page, target in zip(pages, targets) if not target.is_file()]
    if todo:
        log.info("resizing %d page(s) to a longest side of %d px into %s", len(todo), longest_side, directory)
        for (page, *_), error in zip(todo, map_in_processes(_resize_page, todo, workers)):
            if error is not None:
                log.error("skipped page %s: %s", page.image_id, error)
    cached = [dataclasses.replace(page, image_path=target) for page, target in zip(pages, targets) if target.is_file()]
    if len(cached) < len(pages):
        log.error("%d of %d page(s) failed to decode and were skipped (named above)", len(pages) - len(cached),
                  len(pages))
    return cached
