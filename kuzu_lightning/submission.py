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
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from kuzu_lightning.data.loaders import partial_name
from kuzu_lightning.records import RecognizedPage


@contextmanager
def atomic_file(path: str | Path) -> Iterator[IO]:
    """Open ``path``'s temporary twin (its folder created; named by :func:`~kuzu_lightning.data.loaders.partial_name`,
    so a killed writer's is found and removed) for writing UTF-8 text; rename it into place when the block ends
    without an error, else remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(partial_name(f".{path.name}"))
    try:
        with open(partial, "w", newline="", encoding="utf-8") as out:
            yield out
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def write_submission_rows(path: str | Path, rows: Iterable[tuple[str, str]]) -> Path:
    """Write ``image_id,labels`` rows, as they come, through a temporary file."""
    with atomic_file(path) as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["image_id", "labels"])
        writer.writerows(rows)
    return Path(path)


def write_submission(path: str | Path, image_ids: Sequence[str], labels: Mapping[str, str]) -> Path:
    """Write ``image_id,labels`` rows for every id of ``image_ids``, in that order (empty labels when
    ``labels`` has none)."""
    return write_submission_rows(path, ((image_id, labels.get(image_id, "")) for image_id in image_ids))


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
