"""The real labelled data, for checks, never for training: a folder given by ``--real_data`` or the environment
variable ``KUZU_REAL_DATA`` (:func:`real_data_dir`) that holds

- ``kuzushiji-real/``: five Kaggle train pages of book 100241706 (464 characters with code points);
- ``codh-sample/``: one page of each of five more books in CODH's layout, ``{book}/{book}_coordinate.csv`` and
  ``{book}/images/{Image}.jpg`` (828 characters with code points, in reading order);
- ``real-pages/boxes/*.csv``: the character boxes (no code points) of pages in ``real-pages/clean/``,
  in the DKDS layout ``label_name,bbox_x,bbox_y,bbox_width,bbox_height,image_name,image_width,image_height``
  (top-left corner and size, original-scan pixels); rows that are not ``Kuzushiji`` (the ``Seal`` rows)
  are not characters and are dropped;
- ``kmnist-test/``: the 10,000 KMNIST test characters of 10 kana classes.

Boxes are xyxy in original-scan pixels, as everywhere in :class:`~kuzu_lightning.data.kaggle.Page`;
a character whose code point is unknown carries :data:`UNKNOWN_CODE`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kuzu_lightning.data.formats import DataFormatError, read_csv, where
from kuzu_lightning.data.kaggle import Page, attach_image_sizes, load_train_pages, read_codh_coordinates
from kuzu_lightning.geometry import xywh_to_xyxy

UNKNOWN_CODE = "U+FFFD"
"""The code point of a character whose box is known but not its class (the replacement character)."""

REAL_DATA_VARIABLE = "KUZU_REAL_DATA"
"""The environment variable that names the real data folder when no ``--real_data`` does."""

BOX_COLUMNS = ["label_name", "bbox_x", "bbox_y", "bbox_width", "bbox_height", "image_name"]


def real_data_dir(given: str | Path | None = None, required: bool = True) -> Path | None:
    """The real data folder: ``given``, else the one :data:`REAL_DATA_VARIABLE` names. When neither does: None, or
    with ``required`` a ``FileNotFoundError`` that says how to give it."""
    folder = given or os.environ.get(REAL_DATA_VARIABLE)
    if not folder and required:
        raise FileNotFoundError(f"no real data folder: give --real_data DIR or set {REAL_DATA_VARIABLE}")
    return Path(folder) if folder else None


def read_box_csv(path: str | Path, image_dir: str | Path) -> list[Page]:
    """The ``Kuzushiji`` boxes of a DKDS-layout CSV as pages (codes :data:`UNKNOWN_CODE`), images in ``image_dir``."""
    frame = read_csv(path, BOX_COLUMNS)
    pages: dict[str, Page] = {}
    for i, row in enumerate(frame.itertuples(index=False)):
        if row.label_name != "Kuzushiji":
            continue
        try:
            xywh = np.array([[float(row.bbox_x), float(row.bbox_y), float(row.bbox_width), float(row.bbox_height)]])
        except ValueError as error:
            raise DataFormatError(f"{where(path, i + 2)}: a box coordinate is not a number ({error})") from None
        name = Path(str(row.image_name))
        page = pages.setdefault(name.stem, Page(name.stem, image_path=Path(image_dir) / name.name, source=str(path),
                                                row=i + 2))
        page.codes.append(UNKNOWN_CODE)
        page.boxes = np.concatenate([page.boxes, xywh_to_xyxy(xywh)])
    return list(pages.values())


def codh_sample_pages(shared: str | Path) -> list[Page]:
    """The pages of ``codh-sample/`` (characters in reading order), book by book; none when the folder is absent."""
    books = sorted(path.parent for path in (Path(shared) / "codh-sample").glob("*/*_coordinate.csv"))
    return attach_image_sizes(page for book in books
                              for page in read_codh_coordinates(next(book.glob("*_coordinate.csv")), book / "images"))


def labelled_real_pages(shared: str | Path, codh_sample: bool = True) -> list[Page]:
    """Every labelled real page: the Kaggle sample's train pages, those of ``codh-sample/`` (when it is there and
    ``codh_sample``), then those of ``real-pages/boxes/``.

    Raises ``FileNotFoundError`` naming what is missing when ``shared`` lacks the first or the last folder.
    """
    shared = Path(shared)
    kaggle, boxes = shared / "kuzushiji-real", shared / "real-pages" / "boxes"
    for folder in (kaggle, boxes):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: the labelled real pages are not there")
    pages = load_train_pages(kaggle) + (codh_sample_pages(shared) if codh_sample else [])
    for path in sorted(boxes.glob("*.csv")):
        pages += attach_image_sizes(read_box_csv(path, shared / "real-pages" / "clean"))
    return pages


def kmnist_test(shared: str | Path) -> tuple[np.ndarray, list[str]]:
    """KMNIST's test set as ``(images, codes)``: uint8 ``(N, 28, 28)`` **dark ink on light paper**
    (the files hold white on black), and each image's code point."""
    folder = Path(shared) / "kmnist-test"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: the KMNIST test set is not there")
    images = np.load(folder / "kmnist-test-imgs.npz")["arr_0"]
    labels = np.load(folder / "kmnist-test-labels.npz")["arr_0"]
    table = read_csv(folder / "kmnist_classmap.csv", ["index", "codepoint"])
    classes = dict(zip(table["index"].astype(int), table["codepoint"]))
    return 255 - images, [classes[int(label)] for label in labels]
