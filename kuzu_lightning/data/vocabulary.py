"""The class table: ``Vocabulary`` (index <-> code point <-> character) and the ``unk`` class."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from kuzu_lightning.data.formats import CODE_POINT, DataFormatError, code_to_char, read_csv, where
from kuzu_lightning.data.kaggle import Page

log = logging.getLogger(__name__)

UNK = "unk"
"""Name of the optional "not a character" class, appended after the real code points."""


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
        frame = read_csv(path, ["Unicode", "char"])
        for i, code in enumerate(frame["Unicode"]):
            if not CODE_POINT.fullmatch(code):
                raise DataFormatError(f"{where(path, i + 2)}: {code!r} is not a code point like 'U+304B'")
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
                        f"{where(page.source, page.row)}: page {page.image_id} has code point(s) missing from "
                        f"the class table: {', '.join(unknown)}"
                    )
                log.warning(
                    "%s: dropped %d character(s) of page %s whose code points are not in the class table: %s",
                    where(page.source, page.row), int((~known).sum()), page.image_id, ", ".join(unknown),
                )
                page.codes = [c for c, k in zip(page.codes, known) if k]
                page.boxes = page.boxes[known]
            checked.append(page)
        return checked
