"""``KuzushijiF1``: the competition F1 of :mod:`kuzu_lightning.metrics` as a torchmetrics ``Metric``.

Its tp/fp/fn sum states make it correct under DDP. Boxes are xyxy and points ``x y``, in one frame
on both sides (original-scan pixels for the competition figure).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric

from kuzu_lightning.geometry import box_centres
from kuzu_lightning.metrics import MAX_PREDICTIONS_PER_PAGE, check_prediction_counts, f1_summary, match_counts


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
                xy = box_centres(boxes) if points else boxes
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
        check_prediction_counts(pred_page, len(preds), self.max_predictions_per_page,
                                 [f"#{i} of the batch" for i in range(len(preds))])
        tp, fp, fn = match_counts(gt_page, gt_label, gt_boxes, pred_page, pred_label, pred_points, len(preds))
        self.tp += int(tp.sum())
        self.fp += int(fp.sum())
        self.fn += int(fn.sum())

    def compute(self) -> dict[str, torch.Tensor]:
        summary = f1_summary(int(self.tp), int(self.fp), int(self.fn))
        return {k: torch.tensor(summary[k], dtype=torch.float32) for k in ("f1", "precision", "recall")}
