"""Pages of the Kaggle "Kuzushiji Recognition" and CODH data, and the readers of their files.

A data folder in the Kaggle layout holds ``train.csv``, ``unicode_translation.csv``,
``train_images/``, ``test_images/`` and ``sample_submission.csv``. A :class:`Page` holds its
characters as code points and xyxy boxes in original-scan pixels (see :mod:`kuzu_lightning.geometry`).

Bad input either raises :class:`~kuzu_lightning.data.formats.DataFormatError`, whose message names
the file and the row, or is skipped with a logged warning that names the file (documented on each
function).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kuzu_lightning.data.formats import DataFormatError, check_image_ids, format_labels, parse_labels, read_csv, where
from kuzu_lightning.data.images import PageDecodeError, read_image_size
from kuzu_lightning.data.splits import book_id, book_split
from kuzu_lightning.geometry import clip_boxes, xywh_to_xyxy, xyxy_to_xywh

if TYPE_CHECKING:
    from kuzu_lightning.data.vocabulary import Vocabulary

log = logging.getLogger(__name__)


@dataclass
class Page:
    """One page: its characters as code points and xyxy boxes in original-scan pixels.

    ``width``/``height`` are the original scan's size when known (read from the image header),
    ``source``/``row`` say where the labels came from, for error messages.
    """

    image_id: str
    codes: list[str] = field(default_factory=list)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.float32))
    image_path: Path | None = None
    width: int | None = None
    height: int | None = None
    source: str = ""
    row: int | None = None

    @property
    def book(self) -> str:
        return book_id(self.image_id)

    def __len__(self) -> int:
        return len(self.codes)

    def labels(self) -> str:
        """This page's characters as a Kaggle ``labels`` string."""
        return format_labels(self.codes, xyxy_to_xywh(self.boxes))


def _drop_zero_size(page: Page, keep: np.ndarray, reason: str) -> Page:
    if not keep.all():
        log.warning(
            "%s: dropped %d %s box(es) of page %s", where(page.source, page.row), int((~keep).sum()), reason,
            page.image_id,
        )
        page.codes = [c for c, k in zip(page.codes, keep) if k]
        page.boxes = page.boxes[keep]
    return page


def read_labels_csv(path: str | Path, image_dir: str | Path | None = None) -> list[Page]:
    """Read a Kaggle ``image_id,labels`` CSV (``train.csv`` or a solution file) into pages.

    Rows are numbered as in the file, the header being row 1. Malformed labels and duplicated
    image ids raise :class:`~kuzu_lightning.data.formats.DataFormatError`; zero-size boxes are dropped with a logged warning.
    With ``image_dir``, each page's ``image_path`` is ``image_dir/<image_id>.jpg``.
    """
    path = Path(path)
    frame = read_csv(path, ["image_id", "labels"])
    check_image_ids(frame, path)
    pages = []
    for i, (image_id, labels) in enumerate(zip(frame["image_id"], frame["labels"])):
        codes, xywh = parse_labels(labels, path, i + 2)
        page = Page(str(image_id), codes, xywh_to_xyxy(xywh), source=str(path), row=i + 2)
        if image_dir is not None:
            page.image_path = Path(image_dir) / f"{image_id}.jpg"
        pages.append(_drop_zero_size(page, (xywh[:, 2] > 0) & (xywh[:, 3] > 0), "zero-size"))
    return pages


def read_sample_submission(path: str | Path) -> list[str]:
    """The image ids of ``sample_submission.csv``, in file order (the order a submission keeps).

    A file without ids, a repeated id and an id that is not a plain file name raise
    :class:`~kuzu_lightning.data.formats.DataFormatError` naming the file (and row).
    """
    frame = read_csv(Path(path), ["image_id"])
    if frame.empty:
        raise DataFormatError(f"{path}: no image ids below its header; nothing to predict")
    check_image_ids(frame, path)
    return frame["image_id"].tolist()


def read_codh_coordinates(paths: str | Path | Iterable[str | Path], image_dir: str | Path | None = None) -> list[Page]:
    """Read CODH per-book coordinate CSVs (``Unicode,Image,X,Y,Block ID,Char ID,Width,Height``).

    ``X, Y`` is the top-left corner, ``Width, Height`` the size, in original-scan pixels. Pages
    come out in order of first appearance, characters in ``Char ID`` order (CODH's reading order; file
    order when the column is absent); the same checks and errors as
    :func:`read_labels_csv` apply, naming the CSV and its row. With ``image_dir``, each page's
    ``image_path`` is ``image_dir/<Image>.jpg`` (CODH ships them as ``<book>/images/<Image>.jpg``).
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    pages: dict[str, Page] = {}
    for path in map(Path, paths):
        frame = read_csv(path, ["Unicode", "Image", "X", "Y", "Width", "Height"])
        if "Char ID" in frame:
            frame = frame.sort_values("Char ID", kind="stable")
        for i, code, image_id, *numbers in frame[["Unicode", "Image", "X", "Y", "Width", "Height"]].itertuples():
            codes, xywh = parse_labels(" ".join([code, *numbers]), path, i + 2)  # i: the row's place in the file
            page = pages.get(image_id)
            if page is None:
                page = pages[image_id] = Page(image_id, source=str(path), row=i + 2)
                if image_dir is not None:
                    page.image_path = Path(image_dir) / f"{image_id}.jpg"
            if xywh[0, 2] > 0 and xywh[0, 3] > 0:
                page.codes.append(codes[0])
                page.boxes = np.concatenate([page.boxes, xywh_to_xyxy(xywh)])
            else:
                log.warning("%s: dropped a zero-size box of page %s", where(path, i + 2), image_id)
    return list(pages.values())


def attach_image_sizes(pages: Iterable[Page], max_pixels: int | None = None) -> list[Page]:
    """Read each page's scan size from its image header and clip its boxes to the page.

    Pages whose image is missing, unreadable or above ``max_pixels`` are skipped with a logged
    error naming the file (a long run must not die on one bad page); boxes partly outside the page
    are clipped and boxes left without area dropped, with a logged warning. Reads headers only.
    """
    kept = []
    for page in pages:
        try:
            page.width, page.height = read_image_size(page.image_path, max_pixels)
        except (PageDecodeError, FileNotFoundError) as error:
            log.error("skipped page %s (%s): %s", page.image_id, where(page.source, page.row), error)
            continue
        clipped, keep = clip_boxes(page.boxes, page.width, page.height)
        outside = (clipped != page.boxes).any(axis=1)
        if outside.any():
            log.warning(
                "%s: clipped %d box(es) of page %s to its %dx%d image",
                where(page.source, page.row), int(outside.sum()), page.image_id, page.width, page.height,
            )
        page.boxes = clipped
        kept.append(_drop_zero_size(page, keep, "outside-the-page"))
    return kept


def _read_train_labels(data_dir: Path, vocabulary: Vocabulary | None, on_unknown: str) -> list[Page]:
    pages = read_labels_csv(data_dir / "train.csv", data_dir / "train_images")
    return vocabulary.check(pages, on_unknown) if vocabulary is not None else pages


def load_train_pages(
    data_dir: str | Path, vocabulary: Vocabulary | None = None, on_unknown: str = "raise",
    max_pixels: int | None = None,
) -> list[Page]:
    """Load ``train.csv`` of a Kaggle-layout folder with image paths, scan sizes and clipped boxes.

    See :func:`read_labels_csv` and :func:`attach_image_sizes` for what is raised and what is
    skipped; with a ``vocabulary``, code points are checked by :meth:`Vocabulary.check`.
    """
    return attach_image_sizes(_read_train_labels(Path(data_dir), vocabulary, on_unknown), max_pixels)


def load_train_split(
    data_dir: str | Path, n_folds: int, fold: int, val_books: Iterable[str] | None = None,
    vocabulary: Vocabulary | None = None, on_unknown: str = "raise", max_pixels: int | None = None,
) -> tuple[list[Page], list[Page]]:
    """``(train, val)`` pages of a Kaggle-layout folder, split book-wise (:func:`~kuzu_lightning.data.splits.book_split`)
    on the labels alone, then each side loaded as by :func:`load_train_pages`.

    Which books are validated depends only on ``train.csv``, never on which images can be read: a
    page whose image is missing or unreadable is dropped from its own side, with a logged error.
    """
    pages = _read_train_labels(Path(data_dir), vocabulary, on_unknown)
    train, val = book_split(pages, n_folds, fold, val_books)
    return attach_image_sizes(train, max_pixels), attach_image_sizes(val, max_pixels)


def load_test_ids(data_dir: str | Path) -> list[str]:
    """Image ids to predict: ``sample_submission.csv`` order, else the sorted ``test_images/*.jpg``."""
    data_dir = Path(data_dir)
    if (data_dir / "sample_submission.csv").is_file():
        return read_sample_submission(data_dir / "sample_submission.csv")
    return sorted(p.stem for p in (data_dir / "test_images").glob("*.jpg"))
