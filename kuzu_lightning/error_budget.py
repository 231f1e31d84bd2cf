"""``ErrorBudget``: where detector + classifier lose the end-to-end F1 on labelled pages.

Per page it takes the detections kept at the detection threshold (boxes xyxy, with the classifier's
probabilities for their crops) and the true boxes (xyxy, in the same frame: original-scan pixels),
with their class indices (-1 for a code point the classifier has no class for) and the classifier's
probabilities for crops cut around the **true** boxes. Detections are related to true boxes in two ways:

- *matched*: its IoU with some true box is at least :data:`MATCH_IOU` (the best such box is its truth),
  the rule by which detections are labelled for training (:mod:`kuzu_lightning.data.detected_boxes`);
  unmatched detections are the ones a classifier with an ``unk`` class should reject;
- *hit*: its centre lies strictly inside some true box (of those, the one it overlaps most is its
  truth), the competition's rule: a hit read as its truth's class is a true positive of the F1,
  however loose its box. A loose box's crop is still read, so hits are what the classifier must read.

``compute()`` returns:

- ``true_box_top1``: the classifier's top-1 on crops around the true boxes;
- ``matched_top1``: its top-1 on crops around the matched detections (the crops it really reads);
- ``matched_true_top1``: its top-1 on crops around the true boxes of those same detections: the
  difference with ``matched_top1`` is what the detected boxes cost, and the difference with
  ``true_box_top1`` is which characters the detector finds;
- ``matched_share``, ``hit_share``: the shares of detections that are matched and that are hits;
- ``hit_top1``: its top-1 on crops around the hits;
- ``unk_precision``, ``unk_recall``: of the detections labelled ``unk``, the share that are unmatched;
  of the unmatched detections, the share labelled ``unk`` (NaN without an ``unk`` class or such detections);
- ``median_iou``, ``hit_median_iou``: the median IoU of the matched detections and of the hits with their truth;
- ``centre_dx``, ``centre_dy``, ``log_width``, ``log_height``: the standard deviations of the matched
  detections' errors relative to their true box: centre offset in box widths and heights, and the
  log of the width and height ratios (their means are ``*_mean``): the distribution of the detector's
  box errors, which a box jitter for the classifier's training should follow. (The hits' errors
  spread about twice as wide; a jitter that wide left the demo's classifier reading worse after its
  8 epochs, see the README.)

Count states are sums and the per-detection figures are concatenated, so the figures are right under DDP.
"""

from __future__ import annotations

import math

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat
from torchvision.ops import box_iou

from kuzu_lightning.geometry import box_centres

MATCH_IOU = 0.5
"""IoU at which a detection takes a true box's code point (the second-place solution's rule)."""

COUNTS = ("true_boxes", "true_correct", "detections", "matched", "matched_correct", "matched_true_correct",
          "hits", "hits_correct", "unmatched", "unmatched_unk", "unk")
ERRORS = ("centre_dx", "centre_dy", "log_width", "log_height")


def box_errors(detected: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """``N x 4`` errors of xyxy boxes ``detected`` against their true xyxy boxes ``truth`` (row by row):
    centre offset in true widths and heights, log width ratio, log height ratio."""
    true_size = (truth[:, 2:] - truth[:, :2]).clamp(min=1e-6)
    size = (detected[:, 2:] - detected[:, :2]).clamp(min=1e-6)
    offset = ((detected[:, :2] + detected[:, 2:]) - (truth[:, :2] + truth[:, 2:])) / 2 / true_size
    return torch.cat([offset, (size / true_size).log()], dim=1)


def centre_hits(boxes: torch.Tensor, true_boxes: torch.Tensor, iou: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The hits among xyxy ``boxes`` ``N x 4``: detections whose centre lies strictly inside one of ``true_boxes``
    ``M x 4`` (the competition's rule); ``(N,)`` mask and, for each hit, the index of its truth: of the true boxes
    holding its centre, the one with the highest ``iou`` (``N x M``)."""
    centres = box_centres(boxes)
    inside = ((true_boxes[:, :2] < centres[:, None]) & (centres[:, None] < true_boxes[:, 2:])).all(2)
    hit = inside.any(1)
    if not hit.any():
        return hit, torch.zeros(0, dtype=torch.long)
    return hit, torch.where(inside, iou, -1.0)[hit].argmax(1)


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
        self.add_state("hit_ious", default=[], dist_reduce_fx="cat")
        self.add_state("errors", default=[], dist_reduce_fx="cat")

    def update(self, boxes: torch.Tensor, probabilities: torch.Tensor, true_boxes: torch.Tensor,
               true_labels: torch.Tensor, true_probabilities: torch.Tensor) -> None:
        """One page: detections ``boxes`` ``N x 4`` with ``probabilities`` ``N x C``; true boxes ``M x 4``, their class
        indices ``M`` and the probabilities of crops around them ``M x C``."""
        boxes, true_boxes = boxes.float().cpu(), true_boxes.float().cpu()
        predicted, true_labels = probabilities.argmax(1).cpu(), true_labels.long().cpu()
        true_right = true_probabilities.argmax(1).cpu() == true_labels
        self.true_boxes += len(true_labels)
        self.true_correct += int(true_right.sum())
        self.detections += len(boxes)
        iou = box_iou(boxes, true_boxes)
        if len(true_boxes) and len(boxes):
            best_iou, best = iou.max(1)
        else:
            best_iou, best = torch.zeros(len(boxes)), torch.zeros(len(boxes), dtype=torch.long)
        matched = best_iou >= MATCH_IOU
        self.matched += int(matched.sum())
        self.matched_correct += int((predicted[matched] == true_labels[best[matched]]).sum())
        self.matched_true_correct += int(true_right[best[matched]].sum())
        self.unmatched += int((~matched).sum())
        if self.unk_index is not None:
            is_unk = predicted == self.unk_index
            self.unk += int(is_unk.sum())
            self.unmatched_unk += int((is_unk & ~matched).sum())
        hit, truth = centre_hits(boxes, true_boxes, iou)
        self.hits += int(hit.sum())
        self.hits_correct += int((predicted[hit] == true_labels[truth]).sum())
        self.ious.append(best_iou[matched])
        self.hit_ious.append(iou[hit, truth])
        self.errors.append(box_errors(boxes[matched], true_boxes[best[matched]]))

    def compute(self) -> dict[str, float]:
        def share(part, whole) -> float:
            return int(part) / int(whole) if int(whole) else math.nan

        # a cat state is a list of tensors in one process and one tensor after a DDP sync
        ious, hit_ious = (dim_zero_cat(state) if len(state) else torch.zeros(0) for state in (self.ious, self.hit_ious))
        errors = dim_zero_cat(self.errors).reshape(-1, 4) if len(self.errors) else torch.zeros(0, 4)
        result = {"true_box_top1": share(self.true_correct, self.true_boxes),
                  "matched_top1": share(self.matched_correct, self.matched),
                  "matched_true_top1": share(self.matched_true_correct, self.matched),
                  "matched_share": share(self.matched, self.detections),
                  "hit_share": share(self.hits, self.detections),
                  "hit_top1": share(self.hits_correct, self.hits),
                  "unk_precision": share(self.unmatched_unk, self.unk) if self.unk_index is not None else math.nan,
                  "unk_recall": share(self.unmatched_unk, self.unmatched) if self.unk_index is not None else math.nan,
                  "median_iou": float(ious.median()) if len(ious) else math.nan,
                  "hit_median_iou": float(hit_ious.median()) if len(hit_ious) else math.nan}
        for i, name in enumerate(ERRORS):
            column = errors[:, i]
            result[name] = float(column.std()) if len(column) > 1 else math.nan
            result[f"{name}_mean"] = float(column.mean()) if len(column) else math.nan
        return result
