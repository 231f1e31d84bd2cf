"""Book-wise splits: the pages of one book are never on both sides of a split.

``book_split`` is the one rule both DataModules use: the named ``val_books`` held out, else fold
``fold`` of ``n_folds`` book-wise folds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TypeVar

import numpy as np

P = TypeVar("P")  # a page: anything with a ``book`` attribute

_BOOK_ID = re.compile(r"^(.+?)[-_]\d+(?:_\d+)?$")


def book_id(image_id: str) -> str:
    """The book an image belongs to.

    ``100241706_00004_2`` -> ``100241706``, ``umgy010-028`` -> ``umgy010``,
    ``200014685-00005_2`` -> ``200014685``, ``hnsd004-026`` -> ``hnsd004``. An id without a page
    suffix is its own book.
    """
    match = _BOOK_ID.match(image_id)
    return match.group(1) if match else image_id


def book_kfold(pages: Sequence[P], n_splits: int = 5, fold: int = 0, seed: int = 0) -> tuple[list[P], list[P]]:
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


def book_holdout(pages: Sequence[P], books: Iterable[str]) -> tuple[list[P], list[P]]:
    """``(train, val)`` with the named books held out for validation; unknown book names raise."""
    books = set(books)
    unknown = books - {p.book for p in pages}
    if unknown:
        raise ValueError(f"hold-out book(s) not in the data: {', '.join(sorted(unknown))}")
    return [p for p in pages if p.book not in books], [p for p in pages if p.book in books]


def book_split(pages: Sequence[P], n_folds: int = 5, fold: int = 0,
               val_books: Iterable[str] | None = None) -> tuple[list[P], list[P]]:
    """``(train, val)``: the ``val_books`` held out when given, else fold ``fold`` of :func:`book_kfold`."""
    if val_books:
        return book_holdout(pages, val_books)
    return book_kfold(pages, n_folds, fold)
