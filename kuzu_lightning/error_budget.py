"""``ErrorBudget``: where detector + classifier lose the end-to-end F1 on labelled pages.

Per page it takes the detections kept at the detection threshold (boxes xyxy, with the classifier's
probabilities for their crops) and the true boxes (xyxy, in the same frame: original-scan pixels),
with their class indices (-1 for a code point the classifier has no class for) and the classifier's
probabilities for crops cut around the **true** boxes. A detection is *matched* when its IoU with
some true box is at least :data:`MATCH_IOU` (the best such box is its truth); unmatched detections
are the ones a classifier with an ``unk`` class should reject. ``compute()`` returns:

- ``true_box_top1``: the classifier's top-1 on crops around the true boxes;
- ``matched_top1``: its top-1 on crops around the matched detections (the crops it really reads);
- ``matched_share``: the share of detections that are matched;
- ``unk_precision``, ``unk_recall``: of the detections labelled ``unk``, the share that are unmatched;
  of the unmatched detections, the share labelled ``unk`` (NaN without an ``unk`` class or such detections);
- ``median_iou``: the median IoU of the matched detections with their truth;
- ``centre_dx``, ``centre_dy``, ``log_width``, ``log_height``: the standard deviations of the matched
  detections' errors relative to their true box: centre offset in box widths and heights, and the
  log of the width and height ratios (their means are ``*_mean``): the distribution of the detector's
  box errors, which a box jitter for the classifier's training should follow.

Count states are sums and the per-detection errors are concatenated, so the figures are right under DDP.
"""

from __future__ import annotations

import math

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat
from torchvision.ops import box_iou

MATCH_IOU = 0.5
"""IoU at which a detection takes a true box's code point (the second-place solution's rule)."""

COUNTS = ("true_boxes", "true_correct", "detections", "matched", "matched_correct", "unmatched", "unmatched_unk",
          "unk")
ERRORS = ("centre_dx", "centre_dy", "log_width", "log_height")


def box_errors(detected: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """``N x 4`` errors of xyxy boxes ``detected`` against their true xyxy boxes ``truth`` (row by row):
    centre offset in true widths and heights, log width ratio, log height ratio."""
    true_size = (truth[:, 2:] - truth[:, :2]).clamp(min=1e-6)
    size = (detected[:, 2:] - detected[:, :2]).clamp(min=1e-6)
    offset = ((detected[:, :2] + detected[:, 2:]) - (truth[:, :2] + truth[:, 2:])) / 2 / true_size
    return torch.cat([offset, (size / true_size).log()], dim=1)


class ErrorBudget(Metric):
    """The error budget of a recognizer on labelled pages; see the module docstring."""

    is_differentiable = False
    full_state_update = False

    def __init__(self, unk_index: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.unk_index = unk_index
        for name in COUNTS:
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("ious", default=[], dist_reduce_fx="cat")
        self.add_state("errors", default=[], dist_reduce_fx="cat")

    def update(self, boxes: torch.Tensor, probabilities: torch.Tensor, true_boxes: torch.Tensor,
               true_labels: torch.Tensor, true_probabilities: torch.Tensor) -> None:
        """One page: detections ``boxes`` ``N x 4`` with ``probabilities`` ``N x C``; true boxes ``M x 4``, their class
        indices ``M`` and the probabilities of crops around them ``M x C``."""
        boxes, true_boxes = boxes.float().cpu(), true_boxes.float().cpu()
        predicted, true_labels = probabilities.argmax(1).cpu(), true_labels.long().cpu()
        self.true_boxes += len(true_labels)
        self.true_correct += int((true_probabilities.argmax(1).cpu() == true_labels).sum())
        self.detections += len(boxes)
        if len(true_boxes) and len(boxes):
            best_iou, best = box_iou(boxes, true_boxes).max(1)
        else:
            best_iou, best = torch.zeros(len(boxes)), torch.zeros(len(boxes), dtype=torch.long)
        matched = best_iou >= MATCH_IOU
        self.matched += int(matched.sum())
        self.matched_correct += int((predicted[matched] == true_labels[best[matched]]).sum())
        self.unmatched += int((~matched).sum())
        if self.unk_index is not None:
            is_unk = predicted == self.unk_index
            self.unk += int(is_unk.sum())
            self.unmatched_unk += int((is_unk & ~matched).sum())
        self.ious.append(best_iou[matched])
        self.errors.append(box_errors(boxes[matched], true_boxes[best[matched]]))

    def compute(self) -> dict[str, float]:
        def share(part, whole) -> float:
            return int(part) / int(whole) if int(whole) else math.nan

        # a cat state is a list of tensors in one process and one tensor after a DDP sync
        ious = dim_zero_cat(self.ious) if len(self.ious) else torch.zeros(0)
        errors = dim_zero_cat(self.errors).reshape(-1, 4) if len(self.errors) else torch.zeros(0, 4)
        result = {"true_box_top1": share(self.true_correct, self.true_boxes),
                  "matched_top1": share(self.matched_correct, self.matched),
                  "matched_share": share(self.matched, self.detections),
                  "unk_precision": share(self.unmatched_unk, self.unk) if self.unk_index is not None else math.nan,
                  "unk_recall": share(self.unmatched_unk, self.unmatched) if self.unk_index is not None else math.nan,
                  "median_iou": float(ious.median()) if len(ious) else math.nan}
        for i, name in enumerate(ERRORS):
            column = errors[:, i]
            result[name] = float(column.std()) if len(column) > 1 else math.nan
            result[f"{name}_mean"] = float(column.mean()) if len(column) else math.nan
        return result
