"""``kuzu codh BOOK... --out DIR [--class_table CSV] [--copy]``: books of CODH's dataset (a folder each, holding
``{book}_coordinate.csv`` and ``images/``) as a Kaggle-layout folder to train or fine-tune on (``--data_dir DIR``).

``DIR`` gets ``train.csv`` (each page's characters in CODH's reading order, ``Char ID``), ``train_images/`` (a link
to each scan, or a copy with ``--copy``) and ``unicode_translation.csv``: the class table given (every code point of
the books must be in it; the Kaggle one keeps a fine-tuned classifier's classes those of the Kaggle data), else the
code points the books hold. A page whose scan is missing is left out with a logged warning naming it; a book folder
without a coordinate CSV, a page id in two books, a malformed row or a code point outside the class table is an
error naming the file (and row).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("books", nargs="+", type=Path, metavar="BOOK", help="CODH book folders")
    parser.add_argument("--out", required=True, type=Path, help="the Kaggle-layout folder to write (created)")
    parser.add_argument("--class_table", type=Path, help="a unicode_translation.csv to use (Unicode,char)")
    parser.add_argument("--copy", action="store_true", help="copy the scans instead of linking to them")


def run(args: argparse.Namespace) -> dict:
    import pandas as pd

    from kuzu_lightning.data.formats import DataFormatError, code_to_char
    from kuzu_lightning.data.kaggle import read_codh_coordinates
    from kuzu_lightning.data.vocabulary import Vocabulary

    pages, books = [], {}
    for book in args.books:
        tables = sorted(book.glob("*_coordinate.csv"))
        if not tables:
            raise DataFormatError(f"{book}: no *_coordinate.csv here: not a CODH book folder")
        for page in read_codh_coordinates(tables, book / "images"):
            if page.image_id in books:
                raise DataFormatError(f"{page.source}: page {page.image_id} is also in {books[page.image_id]}")
            books[page.image_id] = book
            if page.image_path.is_file():
                pages.append(page)
            else:
                log.warning("%s: page %s left out: its scan %s is missing", page.source, page.image_id, page.image_path)
    if args.class_table is not None:
        Vocabulary.from_csv(args.class_table).check(pages)
    images = args.out / "train_images"
    images.mkdir(parents=True, exist_ok=True)
    for page in pages:
        target = images / f"{page.image_id}.jpg"
        target.unlink(missing_ok=True)
        if args.copy:
            shutil.copyfile(page.image_path, target)
        else:
            os.symlink(page.image_path.resolve(), target)
    pd.DataFrame({"image_id": [page.image_id for page in pages], "labels": [page.labels() for page in pages]}).to_csv(
        args.out / "train.csv", index=False)
    if args.class_table is not None:
        shutil.copyfile(args.class_table, args.out / "unicode_translation.csv")
    else:
        codes = sorted({code for page in pages for code in page.codes}, key=lambda code: int(code[2:], 16))
        pd.DataFrame({"Unicode": codes, "char": [code_to_char(code) for code in codes]}).to_csv(
            args.out / "unicode_translation.csv", index=False)
    result = {"books": len(args.books), "pages": len(pages), "characters": sum(len(page) for page in pages),
              "out": str(args.out)}
    print(f"{result['pages']} pages of {result['books']} books, {result['characters']} characters: {args.out}")
    return result
