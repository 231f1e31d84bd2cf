"""A model-free reference point: ink blobs as characters, each labelled with the most frequent one.

    kuzu baseline --data_dir data/synthetic --csv outputs/baseline_submission.csv

Generates the built-in synthetic dataset into ``--data_dir`` when it holds no ``train.csv``, finds
ink blobs on every test page (Otsu threshold and connected components on a page decoded at a
reduced size), labels each with the most frequent code point of ``train.csv``, and writes a Kaggle
submission with a row for every test image id, in order (a page that fails to decode gets an empty
row and a logged error). When the folder holds ``test_solution.csv`` (synthetic data does), the
submission is scored by the competition metric, with classes and class-agnostic; the last line
printed is one JSON object. The trained models are measured against this floor.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from kuzu_lightning.data.formats import code_to_char, format_predictions
from kuzu_lightning.data.images import PageDecodeError, decode_page, read_image_size
from kuzu_lightning.data.kaggle import load_test_ids, read_labels_csv
from kuzu_lightning.metrics import MAX_PREDICTIONS_PER_PAGE, score_csv
from kuzu_lightning.outputs import write_submission_rows
from kuzu_lightning.synthetic.generator import ensure_dataset

log = logging.getLogger(__name__)

DECODE_SIDE = 1024


def ink_blob_centres(image: np.ndarray, min_area: float = 2e-5, max_area: float = 4e-3) -> np.ndarray:
    """Centres ``(N, 2)`` of dark connected blobs whose area is a plausible character's, in image pixels.

    Areas are fractions of the page; blobs are sorted right to left, top to bottom (reading order).
    """
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    _, ink = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    ink = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    _, _, stats, centroids = cv2.connectedComponentsWithStats(ink)
    area = stats[1:, cv2.CC_STAT_WIDTH] * stats[1:, cv2.CC_STAT_HEIGHT] / gray.size
    centres = centroids[1:][(area >= min_area) & (area <= max_area)]
    return centres[np.lexsort((centres[:, 1], -centres[:, 0]))]


def predict_page(path: Path, code: str) -> str:
    """A submission string for one page: every ink blob, labelled ``code``, in original-scan pixels."""
    width, height = read_image_size(path)
    image = decode_page(path, longest_side=DECODE_SIDE)
    centres = ink_blob_centres(image) * np.array([width / image.shape[1], height / image.shape[0]])
    centres = centres[:MAX_PREDICTIONS_PER_PAGE]
    return format_predictions([code] * len(centres), centres.round())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data_dir", type=Path, default=Path("data/synthetic"),
                        help="Kaggle-layout folder (synthetic data is generated there when it has no train.csv)")
    parser.add_argument("--csv", type=Path, default=Path("outputs/baseline_submission.csv"),
                        help="the submission to write (default outputs/baseline_submission.csv)")


def run(args: argparse.Namespace) -> dict:
    data_dir = ensure_dataset(args.data_dir)
    code = Counter(c for page in read_labels_csv(data_dir / "train.csv") for c in page.codes).most_common(1)[0][0]
    rows = []
    for image_id in load_test_ids(data_dir):
        try:
            rows.append((image_id, predict_page(data_dir / "test_images" / f"{image_id}.jpg", code)))
        except PageDecodeError as error:
            log.error("page %s left empty: %s", image_id, error)
            rows.append((image_id, ""))
    write_submission_rows(args.csv, rows)
    print(f"wrote {args.csv}: {len(rows)} pages, every ink blob labelled {code} ({code_to_char(code)})")
    result = {"submission": str(args.csv)}
    solution = data_dir / "test_solution.csv"
    if solution.is_file():
        scored = score_csv(args.csv, solution)
        result.update(scored, detection_f1=score_csv(args.csv, solution, class_agnostic=True)["f1"])
    print(json.dumps(result))
    return result
