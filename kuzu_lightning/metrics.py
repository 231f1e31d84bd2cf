"""The Kaggle "Kuzushiji Recognition" F1, exact and vectorised.

A prediction ``(label, x, y)`` matches a ground-truth box ``(label, X, Y, W, H)`` when the labels
are equal and ``X < x < X + W`` and ``Y < y < Y + H`` (strictly). Ground-truth boxes are taken in
their listed order; each takes the first still-unused matching prediction in submission order.
Unused predictions are false positives, unmatched boxes false negatives; F1 is micro-averaged
over all pages (tp, fp and fn summed). A page with more than 1200 predictions is refused, as
Kaggle does.

Boxes here are xyxy (``x1 y1 x2 y2``) and points ``x y``, both in original-scan pixels.

Command line::

    python -m kuzu_lightning.metrics SUBMISSION.csv SOLUTION.csv

prints one JSON object as its last line: ``f1, precision, recall, tp, fp, fn`` (and ``pages``).
Pages of the solution missing from the submission count as pages without predictions.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torchmetrics import Metric

from kuzu_lightning.data.kaggle import DataFormatError, parse_labels, parse_predictions, xywh_to_xyxy

log = logging.getLogger(__name__)

MAX_PREDICTIONS_PER_PAGE = 1200


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


def _check_prediction_counts(pred_page: np.ndarray, n_pages: int, limit: int | None, names: Sequence[str]) -> None:
    if limit is None:
        return
    counts = np.bincount(pred_page, minlength=n_pages)
    if (counts > limit).any():
        page = int(np.argmax(counts > limit))
        raise ValueError(f"page {names[page]} has {counts[page]} predictions; the competition allows at most {limit}")


def score_frames(submission: pd.DataFrame, solution: pd.DataFrame, submission_name: str = "submission",
                 solution_name: str = "solution", class_agnostic: bool = False, per_page: bool = False) -> dict:
    """Score ``image_id,labels`` frames; rows are numbered as CSV rows (header = row 1) in errors.

    ``class_agnostic`` ignores the code points (a detector's figure). Returns :func:`f1_summary`
    plus ``pages``; with ``per_page``, also ``page_counts``, a frame of ``image_id, tp, fp, fn``
    in solution order.
    """
    for frame, name in ((submission, submission_name), (solution, solution_name)):
        duplicated = frame["image_id"].duplicated()
        if duplicated.any():
            row = int(np.argmax(duplicated.to_numpy()))
            raise DataFormatError(f"{name}, row {row + 2}: image id {frame['image_id'].iloc[row]!r} appears twice")
    page_index = {image_id: i for i, image_id in enumerate(solution["image_id"])}
    extra = [i for i in submission["image_id"] if i not in page_index]
    if extra:
        log.warning("%s: %d page(s) not in %s are ignored, e.g. %s", submission_name, len(extra), solution_name, extra[0])

    gt_page, gt_codes, gt_boxes = [], [], []
    for row, labels in enumerate(solution["labels"]):
        codes, xywh = parse_labels(labels, solution_name, row + 2)
        gt_page.append(np.full(len(codes), row))
        gt_codes += codes
        gt_boxes.append(xywh)
    pred_page, pred_codes, pred_points = [], [], []
    for row, (image_id, labels) in enumerate(zip(submission["image_id"], submission["labels"])):
        if image_id in page_index:
            codes, points = parse_predictions(labels, submission_name, row + 2)
            pred_page.append(np.full(len(codes), page_index[image_id]))
            pred_codes += codes
            pred_points.append(points)

    n_pages = len(solution)
    labels, _ = pd.factorize(pd.Series(gt_codes + pred_codes, dtype=object))
    if class_agnostic:
        labels = np.zeros_like(labels)
    gt_page = np.concatenate(gt_page or [np.zeros(0, int)])
    pred_page = np.concatenate(pred_page or [np.zeros(0, int)])
    _check_prediction_counts(pred_page, n_pages, MAX_PREDICTIONS_PER_PAGE, solution["image_id"].tolist())
    boxes = xywh_to_xyxy(np.concatenate(gt_boxes or [np.zeros((0, 4))]), np.float64)  # as Kaggle adds
    tp, fp, fn = match_counts(
        gt_page, labels[: len(gt_codes)], boxes,
        pred_page, labels[len(gt_codes):], np.concatenate(pred_points or [np.zeros((0, 2))]), n_pages,
    )
    result = {**f1_summary(tp.sum(), fp.sum(), fn.sum()), "pages": n_pages}
    if per_page:
        result["page_counts"] = pd.DataFrame({"image_id": solution["image_id"], "tp": tp, "fp": fp, "fn": fn})
    return result


def read_submission_csv(path: str | Path) -> pd.DataFrame:
    """Read an ``image_id,labels`` CSV as strings, empty labels kept as empty strings."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(frame.columns[:2]) != ["image_id", "labels"]:
        raise DataFormatError(f"{path}: expected the columns image_id,labels; found {','.join(frame.columns)}")
    return frame


def score_csv(submission: str | Path, solution: str | Path, class_agnostic: bool = False) -> dict:
    """Score a submission CSV against a solution CSV (both ``image_id,labels``)."""
    return score_frames(read_submission_csv(submission), read_submission_csv(solution), str(submission), str(solution),
                        class_agnostic)


class KuzushijiF1(Metric):
    """The competition F1 as a torchmetrics ``Metric`` (tp/fp/fn sum states, correct under DDP).

    ``update(preds, target)`` takes one dict per page, torchvision style:

    - ``preds[i]``: ``boxes`` ``(N, 4)`` xyxy (their centres are the predicted points) or
      ``points`` ``(N, 2)``, and ``labels`` ``(N,)`` class indices, in submission order (for
      example by descending score); ``labels`` may be left out when ``class_agnostic``.
    - ``target[i]``: ``boxes`` ``(M, 4)`` xyxy and ``labels`` ``(M,)``, in listed order.

    Coordinates must be in one frame on both sides (original-scan pixels for the competition
    figure). ``class_agnostic=True`` ignores labels: the detector's figure. ``compute()`` returns
    a dict of ``f1``, ``precision`` and ``recall`` tensors.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, class_agnostic: bool = False, max_predictions_per_page: int | None = MAX_PREDICTIONS_PER_PAGE,
                 **kwargs):
        super().__init__(**kwargs)
        self.class_agnostic = class_agnostic
        self.max_predictions_per_page = max_predictions_per_page
        for name in ("tp", "fp", "fn"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _flatten(self, pages: Sequence[dict], points: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        index, labels, coords = [], [], []
        for i, page in enumerate(pages):
            if points and "points" in page:
                xy = page["points"].detach().float().cpu().numpy().reshape(-1, 2)
            else:
                boxes = page["boxes"].detach().float().cpu().numpy().reshape(-1, 4)
                xy = (boxes[:, :2] + boxes[:, 2:]) / 2 if points else boxes
            index.append(np.full(len(xy), i))
            if self.class_agnostic:
                labels.append(np.zeros(len(xy), dtype=np.int64))
            else:
                labels.append(page["labels"].detach().cpu().numpy().reshape(-1).astype(np.int64))
            coords.append(xy)
        return np.concatenate(index), np.concatenate(labels), np.concatenate(coords)

    def update(self, preds: Sequence[dict], target: Sequence[dict]) -> None:
        if len(preds) != len(target):
            raise ValueError(f"{len(preds)} predicted pages for {len(target)} target pages")
        if not preds:
            return
        pred_page, pred_label, pred_points = self._flatten(preds, points=True)
        gt_page, gt_label, gt_boxes = self._flatten(target, points=False)
        _check_prediction_counts(pred_page, len(preds), self.max_predictions_per_page,
                                 [f"#{i} of the batch" for i in range(len(preds))])
        tp, fp, fn = match_counts(gt_page, gt_label, gt_boxes, pred_page, pred_label, pred_points, len(preds))
        self.tp += int(tp.sum())
        self.fp += int(fp.sum())
        self.fn += int(fn.sum())

    def compute(self) -> dict[str, torch.Tensor]:
        summary = f1_summary(int(self.tp), int(self.fp), int(self.fn))
        return {k: torch.tensor(summary[k], dtype=torch.float32) for k in ("f1", "precision", "recall")}


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m kuzu_lightning.metrics",
        description="Score a Kaggle Kuzushiji submission (image_id,labels with 'U+XXXX x y ...') against a "
        "solution (image_id,labels with 'U+XXXX x y w h ...'). Prints one JSON object.",
    )
    parser.add_argument("submission", type=Path)
    parser.add_argument("solution", type=Path)
    parser.add_argument("--class-agnostic", action="store_true", help="ignore code points: detection-only F1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        result = score_csv(args.submission, args.solution, args.class_agnostic)
    except (DataFormatError, FileNotFoundError, ValueError) as error:
        parser.exit(2, f"error: {error}\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
