"""The Kaggle "Kuzushiji Recognition" and CODH data formats.

Box conventions (the only place where they are converted):

- Kaggle ``labels`` strings hold ``U+XXXX x y w h`` per character: the top-left corner, width and
  height, in pixels of the original scan ("xywh").
- Inside the package, boxes are ``float32`` arrays of shape ``(N, 4)`` holding ``x1 y1 x2 y2``
  (torchvision's convention, "xyxy"), in pixels of the original scan.
- Kaggle submissions hold ``U+XXXX cx cy`` per character: a point (the box centre) in pixels of
  the original scan.

A data folder in the Kaggle layout holds ``train.csv``, ``unicode_translation.csv``,
``train_images/``, ``test_images/`` and ``sample_submission.csv``.

Bad input either raises :class:`DataFormatError`, whose message names the file and the row, or is
skipped with a logged warning that names the file (documented on each function).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kuzu_lightning.data.images import PageDecodeError, read_image_size

log = logging.getLogger(__name__)

CODE_POINT = re.compile(r"U\+[0-9A-F]{4,6}")
UNK = "unk"
"""Name of the optional "not a character" class, appended after the real code points."""


class DataFormatError(ValueError):
    """Malformed input; the message names the file and the row."""


def _where(source: str | Path, row: int | None) -> str:
    return f"{source}, row {row}" if row is not None else str(source)


# --------------------------------------------------------------------------------------- boxes


def xywh_to_xyxy(boxes: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """``(N, 4)`` top-left corner + size -> ``(N, 4)`` corners ``x1 y1 x2 y2``, as ``dtype``."""
    boxes = np.asarray(boxes, dtype=dtype).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4)`` corners ``x1 y1 x2 y2`` -> ``(N, 4)`` top-left corner + size, as float32."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def box_centres(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4)`` xyxy boxes -> ``(N, 2)`` centre points ``cx cy``."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip xyxy boxes to a ``width x height`` page; return ``(clipped boxes, keep mask)``.

    ``keep`` is False for boxes with no area left after clipping (zero-size or fully outside).
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    clipped = np.empty_like(boxes)
    clipped[:, 0::2] = boxes[:, 0::2].clip(0, width)
    clipped[:, 1::2] = boxes[:, 1::2].clip(0, height)
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    return clipped, keep


# ------------------------------------------------------------------------------ code points


def code_to_char(code: str) -> str:
    """``U+3042`` -> ``あ``; anything else (the ``unk`` class) is returned as it is."""
    return chr(int(code[2:], 16)) if code.startswith("U+") else code


def char_to_code(char: str) -> str:
    """``あ`` -> ``U+3042``."""
    return f"U+{ord(char):04X}"


# ------------------------------------------------------------------------------ label strings


def _is_empty(labels: object) -> bool:
    return labels is None or (isinstance(labels, float) and np.isnan(labels)) or not str(labels).strip()


def _parse_records(
    labels: object, fields: int, what: str, source: str | Path, row: int | None
) -> tuple[list[str], np.ndarray]:
    """Split ``U+XXXX n1 ... n{fields-1}`` records into code points and a float64 array."""
    if _is_empty(labels):
        return [], np.zeros((0, fields - 1), dtype=np.float64)
    tokens = str(labels).split()
    where = _where(source, row)
    if len(tokens) % fields:
        raise DataFormatError(
            f"{where}: {what} has {len(tokens)} tokens, not a multiple of {fields} "
            f"('U+XXXX' followed by {fields - 1} numbers per character)"
        )
    codes = tokens[0::fields]
    for i, code in enumerate(codes):
        if not CODE_POINT.fullmatch(code):
            raise DataFormatError(f"{where}: character {i}: {code!r} is not a code point like 'U+304B'")
    numbers = [t for i, t in enumerate(tokens) if i % fields]
    try:
        values = np.array(numbers, dtype=np.float64).reshape(-1, fields - 1)
    except ValueError:
        bad = next(t for t in numbers if not _is_number(t))
        raise DataFormatError(f"{where}: {what} holds the non-numeric coordinate {bad!r}") from None
    if not np.isfinite(values).all():
        i = int(np.argwhere(~np.isfinite(values))[0, 0])
        raise DataFormatError(f"{where}: character {i} ({codes[i]}) has a non-finite coordinate")
    return codes, values


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def parse_labels(
    labels: object, source: str | Path = "labels", row: int | None = None
) -> tuple[list[str], np.ndarray]:
    """Parse a Kaggle ``labels`` string ``U+XXXX x y w h ...``.

    Returns the code points and a float64 ``(N, 4)`` array of xywh boxes (top-left corner and
    size, original-scan pixels), exactly as written. Empty or NaN labels are a page without characters. A token count
    that is not a multiple of 5, a malformed code point, a non-numeric or a negative value raise
    :class:`DataFormatError` naming ``source`` and ``row``.
    """
    codes, values = _parse_records(labels, 5, "labels", source, row)
    if (values < 0).any():
        i = int(np.argwhere(values < 0)[0, 0])
        raise DataFormatError(
            f"{_where(source, row)}: character {i} ({codes[i]}) has a negative coordinate or size: "
            f"{' '.join(f'{v:g}' for v in values[i])}"
        )
    return codes, values


def parse_predictions(
    labels: object, source: str | Path = "labels", row: int | None = None
) -> tuple[list[str], np.ndarray]:
    """Parse a submission string ``U+XXXX cx cy ...`` into code points and float64 ``(N, 2)`` points."""
    return _parse_records(labels, 3, "prediction", source, row)


def _number(value: float) -> str:
    """Shortest faithful text for a coordinate: ``12`` not ``12.0``; at most two decimals."""
    return np.format_float_positional(round(float(value), 2), trim="-")


def format_labels(codes: Sequence[str], boxes_xywh: np.ndarray) -> str:
    """Code points and xywh boxes -> a Kaggle ``labels`` string ``U+XXXX x y w h ...``."""
    boxes_xywh = np.asarray(boxes_xywh).reshape(-1, 4)
    return " ".join(f"{c} {' '.join(_number(v) for v in b)}" for c, b in zip(codes, boxes_xywh, strict=True))


def format_predictions(codes: Sequence[str], centres: np.ndarray) -> str:
    """Code points and ``(N, 2)`` centre points -> a submission string ``U+XXXX cx cy ...``."""
    centres = np.asarray(centres).reshape(-1, 2)
    return " ".join(f"{c} {_number(x)} {_number(y)}" for c, (x, y) in zip(codes, centres, strict=True))


# ---------------------------------------------------------------------------------- book ids

_BOOK_ID = re.compile(r"^(.+?)[-_]\d+(?:_\d+)?$")


def book_id(image_id: str) -> str:
    """The book an image belongs to.

    ``100241706_00004_2`` -> ``100241706``, ``umgy010-028`` -> ``umgy010``,
    ``200014685-00005_2`` -> ``200014685``, ``hnsd004-026`` -> ``hnsd004``. An id without a page
    suffix is its own book.
    """
    match = _BOOK_ID.match(image_id)
    return match.group(1) if match else image_id


# --------------------------------------------------------------------------------- the pages


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
            "%s: dropped %d %s box(es) of page %s", _where(page.source, page.row), int((~keep).sum()), reason,
            page.image_id,
        )
        page.codes = [c for c, k in zip(page.codes, keep) if k]
        page.boxes = page.boxes[keep]
    return page


def read_labels_csv(path: str | Path, image_dir: str | Path | None = None) -> list[Page]:
    """Read a Kaggle ``image_id,labels`` CSV (``train.csv`` or a solution file) into pages.

    Rows are numbered as in the file, the header being row 1. Malformed labels and duplicated
    image ids raise :class:`DataFormatError`; zero-size boxes are dropped with a logged warning.
    With ``image_dir``, each page's ``image_path`` is ``image_dir/<image_id>.jpg``.
    """
    path = Path(path)
    frame = _read_csv(path, ["image_id", "labels"])
    duplicated = frame["image_id"].duplicated()
    if duplicated.any():
        i = int(np.argmax(duplicated.to_numpy()))
        raise DataFormatError(f"{_where(path, i + 2)}: image id {frame['image_id'].iloc[i]!r} appears twice")
    pages = []
    for i, (image_id, labels) in enumerate(zip(frame["image_id"], frame["labels"])):
        codes, xywh = parse_labels(labels, path, i + 2)
        page = Page(str(image_id), codes, xywh_to_xyxy(xywh), source=str(path), row=i + 2)
        if image_dir is not None:
            page.image_path = Path(image_dir) / f"{image_id}.jpg"
        pages.append(_drop_zero_size(page, (xywh[:, 2] > 0) & (xywh[:, 3] > 0), "zero-size"))
    return pages


def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataFormatError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    return frame


def read_sample_submission(path: str | Path) -> list[str]:
    """The image ids of ``sample_submission.csv``, in file order (the order a submission keeps)."""
    return _read_csv(Path(path), ["image_id"])["image_id"].tolist()


def read_codh_coordinates(paths: str | Path | Iterable[str | Path], image_dir: str | Path | None = None) -> list[Page]:
    """Read CODH per-book coordinate CSVs (``Unicode,Image,X,Y,Block ID,Char ID,Width,Height``).

    ``X, Y`` is the top-left corner, ``Width, Height`` the size, in original-scan pixels. Pages
    come out in order of first appearance, characters in file order; the same checks and errors as
    :func:`read_labels_csv` apply, naming the CSV and its row. With ``image_dir``, each page's
    ``image_path`` is ``image_dir/<Image>.jpg`` (CODH ships them as ``<book>/images/<Image>.jpg``).
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    pages: dict[str, Page] = {}
    for path in map(Path, paths):
        frame = _read_csv(path, ["Unicode", "Image", "X", "Y", "Width", "Height"])
        for i, record in enumerate(frame[["Unicode", "Image", "X", "Y", "Width", "Height"]].itertuples(index=False)):
            code, image_id, *numbers = record
            codes, xywh = parse_labels(" ".join([code, *numbers]), path, i + 2)
            page = pages.get(image_id)
            if page is None:
                page = pages[image_id] = Page(image_id, source=str(path), row=i + 2)
                if image_dir is not None:
                    page.image_path = Path(image_dir) / f"{image_id}.jpg"
            if xywh[0, 2] > 0 and xywh[0, 3] > 0:
                page.codes.append(codes[0])
                page.boxes = np.concatenate([page.boxes, xywh_to_xyxy(xywh)])
            else:
                log.warning("%s: dropped a zero-size box of page %s", _where(path, i + 2), image_id)
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
            log.error("skipped page %s (%s): %s", page.image_id, _where(page.source, page.row), error)
            continue
        clipped, keep = clip_boxes(page.boxes, page.width, page.height)
        outside = (clipped != page.boxes).any(axis=1)
        if outside.any():
            log.warning(
                "%s: clipped %d box(es) of page %s to its %dx%d image",
                _where(page.source, page.row), int(outside.sum()), page.image_id, page.width, page.height,
            )
        page.boxes = clipped
        kept.append(_drop_zero_size(page, keep, "outside-the-page"))
    return kept


# ----------------------------------------------------------------------------- vocabulary


class Vocabulary:
    """The class table: a stable index <-> code point <-> character mapping.

    Code points are ordered by their numeric value, so the order does not depend on the row order
    of ``unicode_translation.csv``. With ``unk=True`` an extra last class :data:`UNK` stands for
    "not a character" (lets a classifier reject false detections).
    """

    def __init__(self, codes: Sequence[str], chars: Sequence[str] | None = None, unk: bool = False):
        chars = list(chars) if chars is not None else [code_to_char(c) for c in codes]
        order = sorted(range(len(codes)), key=lambda i: int(codes[i][2:], 16))
        self.codes = [codes[i] for i in order]
        self.chars = [chars[i] for i in order]
        if unk:
            self.codes.append(UNK)
            self.chars.append(UNK)
        self.unk = unk
        self._index = {code: i for i, code in enumerate(self.codes)}
        if len(self._index) != len(self.codes):
            seen = set()
            duplicate = next(c for c in self.codes if c in seen or seen.add(c))
            raise DataFormatError(f"the class table lists {duplicate} twice")

    @classmethod
    def from_csv(cls, path: str | Path, unk: bool = False) -> Vocabulary:
        """Read ``unicode_translation.csv`` (``Unicode,char``); malformed code points raise, naming the row."""
        path = Path(path)
        frame = _read_csv(path, ["Unicode", "char"])
        for i, code in enumerate(frame["Unicode"]):
            if not CODE_POINT.fullmatch(code):
                raise DataFormatError(f"{_where(path, i + 2)}: {code!r} is not a code point like 'U+304B'")
        try:
            return cls(frame["Unicode"].tolist(), frame["char"].tolist(), unk=unk)
        except DataFormatError as error:
            raise DataFormatError(f"{path}: {error}") from None

    def __len__(self) -> int:
        return len(self.codes)

    def __contains__(self, code: str) -> bool:
        return code in self._index

    def index(self, code: str) -> int:
        return self._index[code]

    def indices(self, codes: Iterable[str]) -> np.ndarray:
        """Class indices of code points; a code point outside the table raises ``KeyError``."""
        return np.fromiter((self._index[c] for c in codes), dtype=np.int64)

    def char(self, code: str) -> str:
        return self.chars[self._index[code]]

    def check(self, pages: Iterable[Page], on_unknown: str = "raise") -> list[Page]:
        """Check that every code point of ``pages`` is in the table.

        ``on_unknown="raise"`` raises :class:`DataFormatError` naming the file and row;
        ``"drop"`` removes those characters with a logged warning (their boxes are lost, so do not
        use it for detector training, where every character is a positive).
        """
        if on_unknown not in ("raise", "drop"):
            raise ValueError(f"on_unknown must be 'raise' or 'drop', not {on_unknown!r}")
        checked = []
        for page in pages:
            known = np.array([c in self._index and c != UNK for c in page.codes], dtype=bool)
            if not known.all():
                unknown = sorted({c for c, k in zip(page.codes, known) if not k})
                if on_unknown == "raise":
                    raise DataFormatError(
                        f"{_where(page.source, page.row)}: page {page.image_id} has code point(s) missing from "
                        f"the class table: {', '.join(unknown)}"
                    )
                log.warning(
                    "%s: dropped %d character(s) of page %s whose code points are not in the class table: %s",
                    _where(page.source, page.row), int((~known).sum()), page.image_id, ", ".join(unknown),
                )
                page.codes = [c for c, k in zip(page.codes, known) if k]
                page.boxes = page.boxes[known]
            checked.append(page)
        return checked


# ------------------------------------------------------------------------------ the folder


def load_train_pages(
    data_dir: str | Path, vocabulary: Vocabulary | None = None, on_unknown: str = "raise",
    max_pixels: int | None = None,
) -> list[Page]:
    """Load ``train.csv`` of a Kaggle-layout folder with image paths, scan sizes and clipped boxes.

    See :func:`read_labels_csv` and :func:`attach_image_sizes` for what is raised and what is
    skipped; with a ``vocabulary``, code points are checked by :meth:`Vocabulary.check`.
    """
    data_dir = Path(data_dir)
    pages = read_labels_csv(data_dir / "train.csv", data_dir / "train_images")
    if vocabulary is not None:
        pages = vocabulary.check(pages, on_unknown)
    return attach_image_sizes(pages, max_pixels)


def load_test_ids(data_dir: str | Path) -> list[str]:
    """Image ids to predict: ``sample_submission.csv`` order, else the sorted ``test_images/*.jpg``."""
    data_dir = Path(data_dir)
    if (data_dir / "sample_submission.csv").is_file():
        return read_sample_submission(data_dir / "sample_submission.csv")
    return sorted(p.stem for p in (data_dir / "test_images").glob("*.jpg"))


# ---------------------------------------------------------------------------------- splits


def book_kfold(pages: Sequence[Page], n_splits: int = 5, fold: int = 0, seed: int = 0) -> tuple[list[Page], list[Page]]:
    """Book-wise K-fold: ``(train, val)`` for ``fold``; the pages of one book are never on both sides.

    Books are shuffled with ``seed`` and dealt to folds greedily by page count (largest first, to
    the fold with fewest pages), so folds are balanced and the split is deterministic.
    """
    if not 0 <= fold < n_splits:
        raise ValueError(f"fold must be in [0, {n_splits}), not {fold}")
    counts: dict[str, int] = {}
    for page in pages:
        counts[page.book] = counts.get(page.book, 0) + 1
    if len(counts) < n_splits:
        raise ValueError(f"{len(counts)} book(s) cannot make {n_splits} book-wise folds")
    books = sorted(counts)
    np.random.default_rng(seed).shuffle(books)
    books.sort(key=lambda b: -counts[b])  # stable: ties keep the shuffled order
    load = [0] * n_splits
    fold_of = {}
    for book in books:
        target = int(np.argmin(load))
        fold_of[book] = target
        load[target] += counts[book]
    train = [p for p in pages if fold_of[p.book] != fold]
    val = [p for p in pages if fold_of[p.book] == fold]
    return train, val


def book_holdout(pages: Sequence[Page], books: Iterable[str]) -> tuple[list[Page], list[Page]]:
    """``(train, val)`` with the named books held out for validation; unknown book names raise."""
    books = set(books)
    unknown = books - {p.book for p in pages}
    if unknown:
        raise ValueError(f"hold-out book(s) not in the data: {', '.join(sorted(unknown))}")
    return [p for p in pages if p.book not in books], [p for p in pages if p.book in books]
