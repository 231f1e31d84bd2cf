"""The files recognition writes: the Kaggle submission CSV, and per page its JSON, its text and its XML; each written
to a temporary file renamed into place, so an interrupted run never leaves half a file.

Coordinates are original-scan pixels: the submission holds each character's centre ``x y``; the
JSON begins with its ``source``, the scan it was read from (``size``, ``mtime_ns``, ``path``: :func:`source_of`),
then holds :meth:`~kuzu_lightning.records.RecognizedPage.to_dict` (per character ``code``, ``char``,
centre ``x`` ``y``, ``box`` ``[x1, y1, x2, y2]``, detection ``score``, class ``probability``, its
``line`` and ``position``, and its ``alternatives``: its most probable readings, best first, each ``code``, ``char``
and ``probability``; the ``lines`` in reading order; the ``text``); the text file holds one
line per column of the page in reading order (:mod:`kuzu_lightning.reading_order`). A resumed run reads the
``source`` at the head of a page's JSON (:func:`recorded_source`) to tell whether its scan changed since.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from xml.etree import ElementTree as ET

from kuzu_lightning.atomic import atomic_file
from kuzu_lightning.collection import printable
from kuzu_lightning.data.pdf import PdfPage
from kuzu_lightning.records import RecognizedPage


def write_submission_rows(path: str | Path, rows: Iterable[tuple[str, str]]) -> Path:
    """Write ``image_id,labels`` rows, as they come, through a temporary file."""
    with atomic_file(path) as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["image_id", "labels"])
        writer.writerows(rows)
    return Path(path)


def source_of(path: str | Path | PdfPage | None) -> dict | None:
    """The scan at ``path`` as a page's JSON records it: ``{"size", "mtime_ns", "path"}`` (for a page of a PDF, the
    PDF's, and the ``page`` number and ``dpi``), or None when there is none or it cannot be read."""
    try:
        info = os.stat(path)
    except (OSError, TypeError):
        return None
    source = {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "path": printable(os.fspath(path))}
    return {**source, "page": path.number, "dpi": path.dpi} if isinstance(path, PdfPage) else source


def scan_of(source: dict) -> Path | PdfPage:
    """The scan a page's JSON records as its ``source`` (:func:`source_of`): its path, or its page of a PDF."""
    path = Path(source["path"])
    return PdfPage(path, source["page"], source["dpi"]) if "page" in source else path


_SOURCE_HEAD = re.compile(rb'\A\{\s*"source":\s*\{\s*"size":\s*(\d+),\s*"mtime_ns":\s*(\d+)')


def recorded_source(path: str | Path) -> tuple[int, int] | None:
    """The ``(size, mtime_ns)`` of the scan that the page JSON at ``path`` was read from, from the file's first bytes
    (a collection's JSON files are read this way on every resume); None without a JSON or a recorded source."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(256)
    except OSError:
        return None
    match = _SOURCE_HEAD.match(head)
    return (int(match[1]), int(match[2])) if match else None


def write_page_json(path: str | Path, page: RecognizedPage, source: dict | None = None) -> Path:
    """``path`` (``.json``) with the page's ``source`` (:func:`source_of`) first, then its
    :meth:`~kuzu_lightning.records.RecognizedPage.to_dict`."""
    with atomic_file(path) as out:
        json.dump({"source": source, **page.to_dict()}, out, ensure_ascii=False, indent=1)
    return Path(path)


def write_page_text(path: str | Path, page: RecognizedPage) -> Path:
    """``path`` (``.txt``, UTF-8) with the page's text: one line per column, in reading order."""
    with atomic_file(path) as out:
        out.write(page.text)
    return Path(path)


def write_xml(path: str | Path, document: ET.ElementTree) -> Path:
    """``path`` with ``document`` (PAGE XML, ALTO), UTF-8 with its declaration, its root's namespace the default."""
    ET.register_namespace("", document.getroot().tag[1:].partition("}")[0])  # (ElementTree's own table)
    with atomic_file(path) as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
        document.write(out, encoding="unicode")
    return Path(path)
