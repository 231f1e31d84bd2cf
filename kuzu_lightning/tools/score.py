"""``kuzu score SUBMISSION SOLUTION``: the competition F1 of a Kaggle Kuzushiji submission (``image_id,labels`` with
``U+XXXX x y ...``) against a solution (``image_id,labels`` with ``U+XXXX x y w h ...``), by
:func:`~kuzu_lightning.metrics.score_csv`. Its last line is one JSON object: ``f1, precision, recall, tp, fp, fn,
pages``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kuzu_lightning.data.formats import DataFormatError
from kuzu_lightning.metrics import score_csv


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("submission", type=Path)
    parser.add_argument("solution", type=Path)
    parser.add_argument("--class_agnostic", action="store_true", help="ignore code points: detection-only F1")


def run(args: argparse.Namespace) -> dict:
    try:
        result = score_csv(args.submission, args.solution, args.class_agnostic)
    except (DataFormatError, FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    print(json.dumps(result))
    return result
