"""``kuzu synthetic --out DIR``: write a Kaggle-layout dataset of synthetic brush-written pages
(:func:`~kuzu_lightning.synthetic.generator.generate`), deterministic for a seed."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from kuzu_lightning.synthetic.generator import DEFAULT_VOCABULARY, STYLE_WEIGHTS, VOCABULARIES, generate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="folder to write (created)")
    parser.add_argument("--pages", type=int, default=40, help="train pages (default 40)")
    parser.add_argument("--test_pages", type=int, default=None, help="test pages (default pages / 4)")
    parser.add_argument("--books", type=int, default=None,
                        help="books the train pages come from (default pages / 8, at least 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--height", type=int, default=1536, help="page height in pixels (default 1536; real scans: 3900)")
    parser.add_argument("--vocabulary", default="default",
                        help=f"'default' ({len(DEFAULT_VOCABULARY)} frequent kana and kanji), 'full' (the class table's "
                        "characters the fonts have, long-tailed) or the characters to draw, most frequent first")
    parser.add_argument("--held_out_hand", choices=list(STYLE_WEIGHTS), default=None,
                        help="write no train book in this hand and every test book in it (an unseen hand)")


def run(args: argparse.Namespace) -> Path:
    start = time.perf_counter()
    vocabulary = VOCABULARIES[args.vocabulary]() if args.vocabulary in VOCABULARIES else args.vocabulary
    out = generate(args.out, args.pages, args.seed, args.test_pages, args.books, args.height, vocabulary,
                   held_out_hand=args.held_out_hand)
    seconds = time.perf_counter() - start
    total = args.pages + (args.test_pages if args.test_pages is not None else max(1, args.pages // 4))
    print(f"wrote {total} pages to {args.out} in {seconds:.1f} s ({total / seconds:.1f} pages/s)")
    return out
