"""Pseudo-labelled pages: what ``kuzu recognize`` read confidently on unlabelled scans, as training pages for the
classifier (self-training with a fixed teacher: whatever recognizer read them, one pair or an ensemble with its
test-time views, adapted to each book or not).

The input is a ``kuzu recognize`` output folder: each page's JSON (:mod:`~kuzu_lightning.outputs`) names its scan
(``source``: its absolute ``path``, ``size`` and ``mtime_ns``) and holds per character its ``code``, ``box`` (xyxy,
original-scan pixels) and class ``probability``. The characters read with a probability of ``confidence`` or more
become the page's labels; the others are left out, so a pseudo-labelled page is labelled only in part (no ``unk``
may be drawn on it). A page whose JSON records an ``error``, whose scan is gone or has changed since it was read is
skipped with a logged warning naming it; a JSON that is not a page's raises
:class:`~kuzu_lightning.data.formats.DataFormatError` naming the file.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import numpy as np

from kuzu_lightning.data.formats import DataFormatError
from kuzu_lightning.data.kaggle import Page
from kuzu_lightning.outputs import scan_of

log = logging.getLogger(__name__)


def _characters(path: Path, page: dict) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The code points, xyxy boxes and probabilities of the characters of the page JSON ``page`` read from ``path``."""
    codes, boxes, probabilities = [], [], []
    for n, char in enumerate(page.get("characters") or [], 1):
        try:
            box = [float(v) for v in char["box"]]
            probability = float(char["probability"])
            code = str(char["code"])
        except (KeyError, TypeError, ValueError):
            raise DataFormatError(f"{path}: character {n} has no code, box and probability: {char!r}") from None
        if len(box) != 4 or not all(map(math.isfinite, box)) or box[2] <= box[0] or box[3] <= box[1]:
            raise DataFormatError(f"{path}: character {n}'s box is not x1 < x2, y1 < y2: {box}")
        codes.append(code)
        boxes.append(box)
        probabilities.append(probability)
    return codes, np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(probabilities, np.float64)


def _changed(source: dict) -> str | None:
    """Why the scan a page JSON records cannot be used, or None when it is there as it was read."""
    try:
        info = os.stat(source["path"])
    except OSError as error:
        return f"its scan {source['path']} cannot be read ({error.strerror})"
    if (info.st_size, info.st_mtime_ns) != (source.get("size"), source.get("mtime_ns")):
        return f"its scan {source['path']} has changed since it was read"
    return None


def read_pseudo_labels(folder: str | Path, confidence: float) -> list[Page]:
    """The pages of the ``kuzu recognize`` output ``folder``, each with its characters read with a probability of
    ``confidence`` or more (see the module docstring); ``image_id`` is the JSON's path under ``folder`` without
    its suffix, ``image_path`` the scan. Pages left with no character are left out too."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder (pseudo-labels are a `kuzu recognize` output folder)")
    pages, skipped, read = [], 0, 0
    for path in sorted(folder.rglob("*.json")):
        if path.parent == folder and path.stem == "summary":
            continue
        try:
            page = json.loads(path.read_text(encoding="utf-8"))
            source = page["source"]
            scan = scan_of(source)
        except (ValueError, KeyError, TypeError):
            raise DataFormatError(f"{path}: not a page's JSON of `kuzu recognize` (no source path)") from None
        reason = f"it records an error ({page['error']})" if page.get("error") else _changed(source)
        if reason:
            log.warning("%s: skipped: %s", path, reason)
            skipped += 1
            continue
        read += 1
        codes, boxes, probabilities = _characters(path, page)
        keep = probabilities >= confidence
        if keep.any():
            pages.append(Page(str(path.relative_to(folder).with_suffix("")), [c for c, k in zip(codes, keep) if k],
                              boxes[keep], scan, source=str(path)))
    if not read:
        raise DataFormatError(f"{folder}: holds no page read by `kuzu recognize` that can be used "
                              f"({skipped} skipped, see the log)")
    log.info("%s: %d character(s) read with a probability of %g or more on %d of %d page(s) (%d skipped)", folder,
             sum(len(page) for page in pages), confidence, len(pages), read, skipped)
    return pages
