"""The files recognition writes: the Kaggle submission CSV, and per page its JSON and its text; each written
to a temporary file renamed into place, so an interrupted run never leaves half a file.

Coordinates are original-scan pixels: the submission holds each character's centre ``x y``; the
JSON is :meth:`~kuzu_lightning.records.RecognizedPage.to_dict` (per character ``code``, ``char``,
centre ``x`` ``y``, ``box`` ``[x1, y1, x2, y2]``, detection ``score``, class ``probability``, its
``line`` and ``position``; the ``lines`` in reading order; the ``text``); the text file holds one
line per column of the page in reading order (:mod:`kuzu_lightning.reading_order`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path

from kuzu_lightning.atomic import atomic_file
from kuzu_lightning.records import RecognizedPage


def write_submission_rows(path: str | Path, rows: Iterable[tuple[str, str]]) -> Path:
    """Write ``image_id,labels`` rows, as they come, through a temporary file."""
    with atomic_file(path) as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["image_id", "labels"])
        writer.writerows(rows)
    return Path(path)


def write_page_json(path: str | Path, page: RecognizedPage) -> Path:
    """``path`` (``.json``) with the page's :meth:`~kuzu_lightning.records.RecognizedPage.to_dict`."""
    with atomic_file(path) as out:
        json.dump(page.to_dict(), out, ensure_ascii=False, indent=1)
    return Path(path)


def write_page_text(path: str | Path, page: RecognizedPage) -> Path:
    """``path`` (``.txt``, UTF-8) with the page's text: one line per column, in reading order."""
    with atomic_file(path) as out:
        out.write(page.text)
    return Path(path)
