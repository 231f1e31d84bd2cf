"""Reading a page with several models or several views of it: the rules that merge them.

- **Detections** of several detectors, or of one detector at several page scales, are merged by
  :func:`fuse_detections`, weighted box fusion (Solovyev et al., 2019): boxes that overlap across sources become
  one box, the score-weighted mean of theirs, scored the mean of their scores over *all* sources (a source that
  found nothing there adds 0), so a character found by one model of three keeps a third of its score.
- **Class probabilities** are averaged: over classifiers and over crop views (:func:`view_boxes`: the box shifted
  and scaled a little), each view's probabilities the mean of a classifier's two heads.

Boxes are ``(N, 4)`` xyxy tensors, all in one frame (original-scan pixels in the Recognizer).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.ops import box_iou

FUSION_IOU = 0.55
"""The IoU above which boxes of different sources are one character (the fusion's default)."""

IDENTITY_VIEW = (0.0, 0.0, 1.0)


def fuse_detections(sources: Sequence[dict[str, torch.Tensor]], iou_threshold: float = FUSION_IOU
                    ) -> dict[str, torch.Tensor]:
    """Weighted box fusion of the ``boxes`` and ``scores`` of each source; see the module docstring.

    Boxes are taken best score first; each joins the fused box it overlaps most, with an IoU above
    ``iou_threshold``, among those that hold no box of its own source yet, else it starts a fused box of its own.
    Returns ``boxes`` and ``scores``, best first. One source is returned as it is.
    """
    if len(sources) == 1:
        return {"boxes": sources[0]["boxes"], "scores": sources[0]["scores"]}
    device = sources[0]["boxes"].device
    boxes = torch.cat([source["boxes"] for source in sources]).float().cpu().reshape(-1, 4)
    scores = torch.cat([source["scores"] for source in sources]).float().cpu()
    origin = torch.cat([torch.full((len(s["scores"]),), n, dtype=torch.long) for n, s in enumerate(sources)])
    order = scores.argsort(descending=True, stable=True)
    boxes, scores, origin = boxes[order], scores[order], origin[order]
    weighted = torch.zeros_like(boxes)  # per fused box: the sum of its members' score-weighted boxes
    total = torch.zeros_like(scores)  # per fused box: the sum of its members' scores
    holds = torch.zeros(len(scores), len(sources), dtype=torch.bool)  # per fused box: the sources it holds
    fused = 0
    for i in range(len(scores)):
        overlap = box_iou(boxes[i:i + 1], weighted[:fused] / total[:fused, None])[0]
        overlap[holds[:fused, origin[i]]] = 0
        best = int(overlap.argmax()) if fused else -1
        if best < 0 or overlap[best] <= iou_threshold:
            best, fused = fused, fused + 1
        holds[best, origin[i]] = True
        weighted[best] += scores[i] * boxes[i]
        total[best] += scores[i]
    result_boxes = weighted[:fused] / total[:fused, None]
    result_scores = total[:fused] / len(sources)
    best_first = result_scores.argsort(descending=True, stable=True)
    return {"boxes": result_boxes[best_first].to(device), "scores": result_scores[best_first].to(device)}


def view_boxes(boxes: torch.Tensor, view: Sequence[float]) -> torch.Tensor:
    """``boxes`` (xyxy) seen in a crop ``view`` ``(dx, dy, scale)``: the centre moved by ``dx`` of the box's width
    and ``dy`` of its height, the size multiplied by ``scale``."""
    dx, dy, scale = view
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2 + dx * width, (boxes[:, 1] + boxes[:, 3]) / 2 + dy * height
    half_w, half_h = width * scale / 2, height * scale / 2
    return torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=1)
