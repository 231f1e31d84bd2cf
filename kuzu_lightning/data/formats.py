"""Text formats of the Kaggle "Kuzushiji Recognition" data: code points, label strings and the CSV reader.

- Kaggle ``labels`` strings hold ``U+XXXX x y w h`` per character: the top-left corner, width and
  height, in pixels of the original scan ("xywh"; :mod:`kuzu_lightning.geometry` converts boxes).
- Kaggle submissions hold ``U+XXXX cx cy`` per character: a point (the box centre) in pixels of
  the original scan.

Bad input raises :class:`DataFormatError`, whose message names the file and the row (rows are
numbered as in the file, the header being row 1).

This module imports neither torch nor OpenCV, so that the metric's command line starts fast.
"""

from __future__ import annotations

import re
from collections.abc import Container, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

CODE_POINT = re.compile(r"U\+[0-9A-F]{4,6}")


class DataFormatError(ValueError):
    """Malformed input; the message names the file and the row."""


def where(source: str | Path, row: int | None) -> str:
    """``"file, row N"`` (or just the file) for messages."""
    return f"{source}, row {row}" if row is not None else str(source)


def read_csv(path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """Read a UTF-8 CSV as strings (empty cells stay empty strings); it must have ``columns``.

    A missing file raises ``FileNotFoundError``; an empty or malformed file (no header, an unterminated
    quote, bytes that are not UTF-8) or missing columns raise :class:`DataFormatError`, naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise DataFormatError(f"{path}: the file is empty; expected a header with {', '.join(columns)}") from None
    except pd.errors.ParserError as error:
        raise DataFormatError(f"{path}: not a readable CSV ({error})") from None
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{path}: not UTF-8 text ({error.reason}); save it as UTF-8") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataFormatError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    return frame


def check_image_id(image_id: str, earlier: Container[str], source: str | Path, row: int) -> None:
    """Raise :class:`DataFormatError`, naming the file and row, when ``image_id`` is one of ``earlier`` or is not a
    plain file name (empty, ``.``, ``..``, or holding a path separator): ids name the files written for each page."""
    if image_id in ("", ".", "..") or "/" in image_id or "\\" in image_id:
        raise DataFormatError(f"{where(source, row)}: image id {image_id!r} is not a plain file name")
    if image_id in earlier:
        raise DataFormatError(f"{where(source, row)}: image id {image_id!r} appears twice")


def check_image_ids(frame: pd.DataFrame, source: str | Path) -> None:
    """:func:`check_image_id` for every row of an ``image_id`` frame (header = row 1)."""
    seen: set[str] = set()
    for row, image_id in enumerate(frame["image_id"], 2):
        check_image_id(image_id, seen, source, row)
        seen.add(image_id)


# ------------------------------------------------------------------------------ code points


def code_to_char(code: str) -> str:
    """``U+3042`` -> ``あ``; anything else (the ``unk`` class) is returned as it is."""
    return chr(int(code[2:], 16)) if code.startswith("U+") else code


def char_to_code(char: str) -> str:
    """``あ`` -> ``U+3042``."""
    return f"U+{ord(char):04X}"


# ------------------------------------------------------------------------------ label strings


def _is_empty(labels: object) -> bool:
    """No characters: None, NaN, blank, or the text ``nan`` (how pandas writes a missing label)."""
    return labels is None or (isinstance(labels, float) and np.isnan(labels)) or \
        str(labels).strip().lower() in ("", "nan")


def _parse_records(
    labels: object, fields: int, what: str, source: str | Path, row: int | None
) -> tuple[list[str], np.ndarray]:
    """Split ``U+XXXX n1 ... n{fields-1}`` records into code points and a float64 array."""
    if _is_empty(labels):
        return [], np.zeros((0, fields - 1), dtype=np.float64)
    tokens = str(labels).split()
    place = where(source, row)
    if len(tokens) % fields:
        raise DataFormatError(
            f"{place}: {what} has {len(tokens)} tokens, not a multiple of {fields} "
            f"('U+XXXX' followed by {fields - 1} numbers per character)"
        )
    codes = tokens[0::fields]
    for i, code in enumerate(codes):
        if not CODE_POINT.fullmatch(code):
            raise DataFormatError(f"{place}: character {i}: {code!r} is not a code point like 'U+304B'")
    numbers = [t for i, t in enumerate(tokens) if i % fields]
    try:
        values = np.array(numbers, dtype=np.float64).reshape(-1, fields - 1)
    except ValueError:
        bad = next(t for t in numbers if not _is_number(t))
        raise DataFormatError(f"{place}: {what} holds the non-numeric coordinate {bad!r}") from None
    if not np.isfinite(values).all():
        i = int(np.argwhere(~np.isfinite(values))[0, 0])
        raise DataFormatError(f"{place}: character {i} ({codes[i]}) has a non-finite coordinate")
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
            f"{where(source, row)}: character {i} ({codes[i]}) has a negative coordinate or size: "
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
