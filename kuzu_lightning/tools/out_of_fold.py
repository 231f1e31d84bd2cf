"""``kuzu out-of-fold``: the detected boxes of the training pages, out of fold.

    kuzu out-of-fold --detector outputs/detector-fold*/checkpoints/epoch*.ckpt --out data/kaggle/detected.csv

The classifier then trains on what the detector finds (``--data.detected_boxes data/kaggle/detected.csv``,
see :class:`~kuzu_lightning.data.chars.CharDataModule`), as the second-place solution did.

Each detector checkpoint records the book-wise split it was trained with (``n_folds``, ``fold``,
``val_books``). A training page is read by the detector whose validation books hold its book, at
that detector's page scale and detection threshold (the one chosen on its validation books,
``--detection_threshold`` to override), so no page is read by a detector that trained on it: with the fold
models of all K folds, every page. A page that no given detector held out is skipped and counted in
the log, unless ``--in_fold``: then the first detector reads it and its rows say ``out_of_fold`` 0.
That is the shortcut for a single detector, with its caveat: on the books it trained on its boxes
are tighter than on new books, so the classifier meets fewer loose boxes in training than when it
reads new pages.

The CSV (format: :mod:`kuzu_lightning.data.detected_boxes`) is written atomically at the end. A page
that fails to decode is a logged skip.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from kuzu_lightning.data.detected_boxes import write_detected_boxes
from kuzu_lightning.data.kaggle import Page, load_train_pages
from kuzu_lightning.data.pages import EVAL_LONGEST_SIDE
from kuzu_lightning.data.splits import book_split
from kuzu_lightning.models.checkpoints import checkpoint_model, load_trained, trained_data_settings
from kuzu_lightning.models.detector import CharDetector

log = logging.getLogger(__name__)


def held_out_pages(pages: list[Page], detectors: list[str]) -> dict[str, list[str]]:
    """The ids of ``pages`` each detector checkpoint did not train on: its split's validation side."""
    held_out = {}
    for path in detectors:
        settings = trained_data_settings(path, "detector")
        if "n_folds" not in settings:
            raise ValueError(f"{path}: records no training split (not a CharDetector checkpoint of train.py fit?)")
        _, val = book_split(pages, settings["n_folds"], settings["fold"], settings.get("val_books"))
        held_out[path] = [page.image_id for page in val]
    return held_out


def assign_readers(pages: list[Page], detectors: list[str], in_fold: bool = False) -> dict[str, list[tuple[Page, bool]]]:
    """For each detector, the pages it reads and whether out of fold (see the module docstring)."""
    reader_of = {}
    for path, ids in held_out_pages(pages, detectors).items():
        for image_id in ids:
            reader_of.setdefault(image_id, path)
    readers = {path: [] for path in detectors}
    skipped = 0
    for page in pages:
        if page.image_id in reader_of:
            readers[reader_of[page.image_id]].append((page, True))
        elif in_fold:
            readers[detectors[0]].append((page, False))
        else:
            skipped += 1
    if skipped:
        log.warning("%d of %d training page(s) are in the training books of every given detector and are skipped "
                    "(--in_fold reads them with the first one)", skipped, len(pages))
    return readers


def detect_pages(path: str, pages: list[tuple[Page, bool]], threshold: float | None, device: str,
                 workers: int) -> Iterator[tuple[str, np.ndarray, np.ndarray, bool]]:
    """``(image_id, boxes, scores, out_of_fold)`` of ``pages`` read by the detector checkpoint at ``path``."""
    model, settings = load_trained(CharDetector, path)
    model.to(device)
    threshold = model.detection_threshold if threshold is None else threshold
    longest = settings.get("eval_longest_side") or EVAL_LONGEST_SIDE
    log.info("%s reads %d page(s) at %d px, detection threshold %.2f", path, len(pages), longest, threshold)
    found = model.read_pages([page for page, _ in pages], longest, threshold, settings.get("max_pixels"), workers)
    for (_, out_of_fold), (page, boxes, scores) in zip(pages, found):
        yield page.image_id, boxes.cpu().numpy(), scores.cpu().numpy(), out_of_fold


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detector", nargs="+", required=True, metavar="CKPT",
                        help="CharDetector checkpoints (the fold models of one split)")
    parser.add_argument("--out", required=True, type=Path, help="the CSV to write")
    parser.add_argument("--data_dir", help="the Kaggle-layout folder (default: the first detector's)")
    parser.add_argument("--in_fold", action="store_true",
                        help="read pages no detector held out with the first one (rows marked out_of_fold 0)")
    parser.add_argument("--detection_threshold", type=float,
                        help="keep detections scoring this or more (default: each detector's validated one)")
    parser.add_argument("--accelerator", default="auto", help="cpu, gpu, auto (default: a GPU if there is one)")
    parser.add_argument("--num_workers", type=int, default=2, help="page-decoding processes")


def run(args: argparse.Namespace) -> int:
    for path in args.detector:  # all checked before the first page is read
        if checkpoint_model(path) != "CharDetector":
            raise SystemExit(f"error: {path}: not a CharDetector checkpoint" + ("" if Path(path).is_file() else
                                                                              " (no such file)"))
    data_dir = args.data_dir or trained_data_settings(args.detector[0], "detector").get("data_dir")
    if not data_dir:
        raise SystemExit(f"error: {args.detector[0]} records no data_dir: give --data_dir")
    gpu = args.accelerator == "gpu" or (args.accelerator == "auto" and torch.cuda.is_available())
    pages = load_train_pages(data_dir)
    readers = assign_readers(pages, args.detector, args.in_fold)
    detections = (found for path, assigned in readers.items() if assigned
                  for found in detect_pages(path, assigned, args.detection_threshold, "cuda" if gpu else "cpu",
                                            args.num_workers))
    rows = write_detected_boxes(args.out, detections)
    read = sum(len(assigned) for assigned in readers.values())
    print(f"{args.out}: {rows} detections of {read} training page(s) of {data_dir}")
    return 0
