"""The files recognition writes: the Kaggle submission CSV (atomically) and one JSON file per page.

Coordinates are original-scan pixels: the submission holds each character's centre ``x y``; the
JSON holds, per character, ``code``, ``char``, centre ``x`` ``y``, ``box`` ``[x1, y1, x2, y2]``,
detection ``score`` and class ``probability`` (see :mod:`kuzu_lightning.records`).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from kuzu_lightning.records import Character, page_record


def write_submission(path: str | Path, image_ids: Sequence[str], labels: Mapping[str, str]) -> Path:
    """Write ``image_id,labels`` rows for every id of ``image_ids``, in that order (empty labels when
    ``labels`` has none), to a temporary file renamed into place: an interrupted run leaves no half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        with open(partial, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["image_id", "labels"])
            writer.writerows([image_id, labels.get(image_id, "")] for image_id in image_ids)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def write_page_json(directory: str | Path, page: dict, characters: Sequence[Character]) -> Path:
    """``directory/{image_id}.json`` with :func:`~kuzu_lightning.records.page_record`."""
    path = Path(directory) / f"{page['image_id']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(page_record(page, characters), ensure_ascii=False, indent=1), encoding="utf-8")
    return path
