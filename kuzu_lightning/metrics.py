"""The Kaggle "Kuzushiji Recognition" F1, exact and vectorised.

A prediction ``(label, x, y)`` matches a ground-truth box ``(label, X, Y, W, H)`` when the labels
are equal and ``X < x < X + W`` and ``Y < y < Y + H`` (strictly). Ground-truth boxes are taken in
their listed order; each takes the first still-unused matching prediction in submission order.
Unused predictions are false positives, unmatched boxes false negatives; F1 is micro-averaged
over all pages (tp, fp and fn summed). A page with more than 1200 predictions is refused, as
Kaggle does.

Boxes here are xyxy (``x1 y1 x2 y2``) and points ``x y``, both in original-scan pixels.

Pages of the solution missing from the submission count as pages without predictions.

This module needs numpy and pandas only (the torchmetrics form is
:class:`~kuzu_lightning.kuzushiji_f1.KuzushijiF1`), so that ``kuzu score`` starts fast.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from kuzu_lightning.data.formats import DataFormatError, check_image_id, parse_labels, parse_predictions, read_csv, where
from kuzu_lightning.geometry import xywh_to_xyxy

log = logging.getLogger(__name__)

MAX_PREDICTIONS_PER_PAGE = 1200
PAGES_PER_CHUNK = 256
"""Pages matched together: the vectorised matching's speed, in bounded memory."""


def f1_summary(tp: int, fp: int, fn: int) -> dict[str, float | int]:
    """Micro F1, precision and recall from summed counts (0 where undefined, as Kaggle)."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": float(f1), "precision": float(precision), "recall": float(recall),
            "tp": int(tp), "fp": int(fp), "fn": int(fn)}


def match_counts(
    gt_page: np.ndarray, gt_label: np.ndarray, gt_boxes: np.ndarray,
    pred_page: np.ndarray, pred_label: np.ndarray, pred_points: np.ndarray, n_pages: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Match every page at once; return per-page ``(tp, fp, fn)`` integer arrays of length ``n_pages``.

    Inputs are flat over all pages: ``*_page`` the page index of each row, ``*_label`` an integer
    label (the same integer for the same class on both sides), ``gt_boxes`` ``(G, 4)`` xyxy,
    ``pred_points`` ``(P, 2)``. Within a page, ground-truth rows are in listed order and prediction
    rows in submission order; rows of different pages may interleave.

    Candidate pairs (same page, same label, point strictly inside) are found by a sorted join.
    A box with one candidate that is nobody else's candidate is matched at once; the rest (a box
    with several candidates, a prediction inside several boxes of its label) are resolved by the
    competition's greedy rule in one pass over their pairs, which is exact because a box's choice
    only affects the predictions among its own candidates.
    """
    gt_page, gt_label = np.asarray(gt_page, np.int64), np.asarray(gt_label, np.int64)
    pred_page, pred_label = np.asarray(pred_page, np.int64), np.asarray(pred_label, np.int64)
    gt_boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    pred_points = np.asarray(pred_points, np.float64).reshape(-1, 2)
    n_gt, n_pred = len(gt_page), len(pred_page)
    matched = np.zeros(n_gt, dtype=bool)
    if n_gt and n_pred:
        n_labels = int(max(gt_label.max(), pred_label.max())) + 1
        gt_key = gt_page * n_labels + gt_label
        pred_key = pred_page * n_labels + pred_label
        order = np.argsort(pred_key, kind="stable")  # same key: submission order kept
        sorted_key = pred_key[order]
        start = np.searchsorted(sorted_key, gt_key, "left")
        count = np.searchsorted(sorted_key, gt_key, "right") - start
        g = np.repeat(np.arange(n_gt), count)
        offset = np.arange(len(g)) - np.repeat(np.cumsum(count) - count, count)
        p = order[np.repeat(start, count) + offset]
        box, point = gt_boxes[g], pred_points[p]
        inside = (
            (box[:, 0] < point[:, 0]) & (point[:, 0] < box[:, 2])
            & (box[:, 1] < point[:, 1]) & (point[:, 1] < box[:, 3])
        )
        g, p = g[inside], p[inside]  # sorted by box, then by submission order
        simple = (np.bincount(g, minlength=n_gt)[g] == 1) & (np.bincount(p, minlength=n_pred)[p] == 1)
        matched[g[simple]] = True
        used: set[int] = set()
        for gi, pi in zip(g[~simple].tolist(), p[~simple].tolist()):
            if not matched[gi] and pi not in used:
                used.add(pi)
                matched[gi] = True
    tp = np.bincount(gt_page[matched], minlength=n_pages)
    fp = np.bincount(pred_page, minlength=n_pages) - tp
    fn = np.bincount(gt_page, minlength=n_pages) - tp
    return tp, fp, fn


def check_prediction_counts(pred_page: np.ndarray, n_pages: int, limit: int | None, names: Sequence[str]) -> None:
    """Raise ``ValueError`` naming the first page with more than ``limit`` predictions (``pred_page``: each
    prediction's page index into ``names``)."""
    if limit is None:
        return
    counts = np.bincount(pred_page, minlength=n_pages)
    if (counts > limit).any():
        page = int(np.argmax(counts > limit))
        raise ValueError(f"page {names[page]} has {counts[page]} predictions; the competition allows at most {limit}")


def score_frames(submission: pd.DataFrame, solution: pd.DataFrame, submission_name: str = "submission",
                 solution_name: str = "solution", class_agnostic: bool = False) -> dict:
    """Score ``image_id,labels`` frames; rows are numbered as CSV rows (header = row 1) in errors.

    ``class_agnostic`` ignores the code points (a detector's figure). Returns :func:`f1_summary`
    plus ``pages``.
    """
    def rows(frame: pd.DataFrame) -> Iterator[tuple[int, str, str]]:
        return zip(range(2, len(frame) + 2), frame["image_id"], frame["labels"])

    return score_rows(rows(submission), rows(solution), submission_name, solution_name, class_agnostic)


def score_csv(submission: str | Path, solution: str | Path, class_agnostic: bool = False) -> dict:
    """Score a submission CSV against a solution CSV (both ``image_id,labels``), streaming: memory holds the
    submission's text and a chunk of pages, never the whole of either as arrays."""
    return score_rows(read_rows(submission), read_rows(solution), str(submission), str(solution), class_agnostic)


def score_rows(submission: Iterable[tuple[int, str, str]], solution: Iterable[tuple[int, str, str]],
               submission_name: str = "submission", solution_name: str = "solution",
               class_agnostic: bool = False) -> dict:
    """Score ``(row, image_id, labels)`` rows of a submission against those of a solution (see the module
    docstring): the submission is kept as its text, a string per page; the solution's pages are parsed and matched
    :data:`PAGES_PER_CHUNK` at a time. Errors name the file and row. Returns :func:`f1_summary` plus ``pages``."""
    predictions: dict[str, tuple[int, str]] = {}
    for row, image_id, labels in submission:
        check_image_id(image_id, predictions, submission_name, row)
        predictions[image_id] = (row, labels)
    counts, chunk, seen = np.zeros(3, np.int64), [], set()
    for row, image_id, labels in solution:
        check_image_id(image_id, seen, solution_name, row)
        seen.add(image_id)
        codes, xywh = parse_labels(labels, solution_name, row)
        submitted_row, submitted = predictions.pop(image_id, (None, ""))
        predicted, points = parse_predictions(submitted, submission_name, submitted_row)
        if len(predicted) > MAX_PREDICTIONS_PER_PAGE:
            raise ValueError(f"page {image_id} has {len(predicted)} predictions; the competition allows at most "
                             f"{MAX_PREDICTIONS_PER_PAGE}")
        chunk.append((codes, xywh, predicted, points))
        if len(chunk) == PAGES_PER_CHUNK:
            counts += _chunk_counts(chunk, class_agnostic)
            chunk = []
    counts += _chunk_counts(chunk, class_agnostic)
    if predictions:
        log.warning("%s: %d page(s) not in %s are ignored, e.g. %s", submission_name, len(predictions), solution_name,
                    next(iter(predictions)))
    return {**f1_summary(*counts.tolist()), "pages": len(seen)}


def _chunk_counts(pages: list[tuple[list[str], np.ndarray, list[str], np.ndarray]], class_agnostic: bool) -> np.ndarray:
    """``(tp, fp, fn)`` summed over ``pages``, each ``(true codes, true xywh, predicted codes, predicted points)``."""
    if not pages:
        return np.zeros(3, np.int64)
    gt_codes = [code for codes, *_ in pages for code in codes]
    pred_codes = [code for *_, codes, _ in pages for code in codes]
    labels, _ = pd.factorize(pd.Series(gt_codes + pred_codes, dtype=object))
    if class_agnostic:
        labels = np.zeros_like(labels)
    gt_page = np.repeat(np.arange(len(pages)), [len(codes) for codes, *_ in pages])
    pred_page = np.repeat(np.arange(len(pages)), [len(codes) for *_, codes, _ in pages])
    boxes = xywh_to_xyxy(np.concatenate([xywh for _, xywh, *_ in pages]).reshape(-1, 4), np.float64)  # as Kaggle adds
    points = np.concatenate([points for *_, points in pages]).reshape(-1, 2)
    tp, fp, fn = match_counts(gt_page, labels[: len(gt_codes)], boxes, pred_page, labels[len(gt_codes):], points,
                              len(pages))
    return np.array([tp.sum(), fp.sum(), fn.sum()], np.int64)


def read_submission_csv(path: str | Path) -> pd.DataFrame:
    """An ``image_id,labels`` CSV (a submission or a solution) as strings, empty labels as empty strings."""
    return read_csv(path, ["image_id", "labels"])


def read_rows(path: str | Path) -> Iterator[tuple[int, str, str]]:
    """The ``(row, image_id, labels)`` of an ``image_id,labels`` CSV, one at a time (header = row 1; a row without
    labels has empty ones). An empty or malformed file raises :class:`DataFormatError` naming it (and the row)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    row = 1
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise DataFormatError(f"{path}: the file is empty; expected a header with image_id, labels")
            missing = [name for name in ("image_id", "labels") if name not in header]
            if missing:
                raise DataFormatError(f"{path}: missing column(s) {missing}; found {header}")
            at_id, at_labels = header.index("image_id"), header.index("labels")
            for row, fields in enumerate(reader, 2):
                if not fields:
                    continue
                if len(fields) > len(header):
                    raise DataFormatError(f"{where(path, row)}: {len(fields)} fields, the header has {len(header)}")
                fields += [""] * (len(header) - len(fields))
                yield row, fields[at_id], fields[at_labels]
    except UnicodeDecodeError as error:
        raise DataFormatError(f"{where(path, row + 1)}: not UTF-8 text ({error.reason}); save it as UTF-8") from None
    except csv.Error as error:
        raise DataFormatError(f"{where(path, row + 1)}: not a readable CSV ({error})") from None
