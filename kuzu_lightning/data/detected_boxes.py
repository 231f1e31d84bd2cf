"""Detected boxes of training pages, for training the classifier on what the detector finds.

The file (written by ``kuzu out-of-fold``) is a UTF-8 CSV, one row per detection::

    image_id,x_min,y_min,x_max,y_max,score,out_of_fold
    100241706_00004_2,1203.5,388.25,1290.0,470.75,0.9812,1

``x_min .. y_max``: the box, xyxy in original-scan pixels (the frame of ``train.csv``); ``score``: the
detector's; ``out_of_fold``: 1 when the page was read by a detector that did not train on its book,
0 when not (a shortcut, see the command). A page without detections has no row.

:func:`label_detections` gives each detection the code point of the true box it overlaps at IoU
:data:`~kuzu_lightning.error_budget.MATCH_IOU` (0.5) or more (the best one, as the error budget matches them), else
:data:`~kuzu_lightning.data.vocabulary.UNK`: the second-place solution's ``seg_fp`` class, detections
that are no character.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou

from kuzu_lightning.atomic import atomic_file
from kuzu_lightning.data.formats import DataFormatError, read_csv, where
from kuzu_lightning.data.vocabulary import UNK
from kuzu_lightning.error_budget import MATCH_IOU

COLUMNS = ("image_id", "x_min", "y_min", "x_max", "y_max", "score", "out_of_fold")


def write_detected_boxes(path: str | Path, pages: Iterable[tuple[str, np.ndarray, np.ndarray, bool]]) -> int:
    """Write ``(image_id, boxes N x 4 xyxy, scores N, out_of_fold)`` per page to ``path`` (atomically: the file
    appears when all is written); the rows written."""
    rows = 0
    with atomic_file(path) as file:
        writer = csv.writer(file)
        writer.writerow(COLUMNS)
        for image_id, boxes, scores, out_of_fold in pages:
            for box, score in zip(np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64)):
                writer.writerow([image_id, *(f"{v:.2f}" for v in box), f"{score:.4f}", int(out_of_fold)])
                rows += 1
    return rows


def read_detected_boxes(path: str | Path) -> dict[str, np.ndarray]:
    """The boxes of a detected-boxes file by page: ``image_id -> N x 4`` float32 xyxy, in file order.

    A cell that is not a number, a box whose corners are not finite or whose sides are not positive,
    and an ``out_of_fold`` other than 0 or 1 raise :class:`~kuzu_lightning.data.formats.DataFormatError`
    naming the file and row.
    """
    frame = read_csv(path, COLUMNS)
    values = frame[list(COLUMNS[1:6])].apply(lambda column: column.str.strip()).to_numpy()
    numbers = np.full(values.shape, np.nan)
    for (i, j), text in np.ndenumerate(values):
        try:
            numbers[i, j] = float(text)
        except ValueError:
            raise DataFormatError(f"{where(path, i + 2)}: {COLUMNS[j + 1]} {text!r} is not a number") from None
    boxes = numbers[:, :4]
    bad = ~np.isfinite(boxes).all(1) | (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    bad |= ~frame["out_of_fold"].str.strip().isin(["0", "1"]).to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise DataFormatError(f"{where(path, i + 2)}: not a detection (a box x_min < x_max, y_min < y_max and "
                              f"out_of_fold 0 or 1): {', '.join(frame.iloc[i].tolist())}")
    ids = frame["image_id"].to_numpy()
    return {image_id: boxes[ids == image_id].astype(np.float32) for image_id in dict.fromkeys(ids)}


def label_detections(detected: np.ndarray, true_boxes: np.ndarray, codes: list[str]) -> list[str]:
    """The code point of each xyxy ``detected`` box: its best true box's (``true_boxes``, ``codes``) at IoU
    ``MATCH_IOU`` or more, else :data:`~kuzu_lightning.data.vocabulary.UNK`."""
    if not len(detected) or not len(true_boxes):
        return [UNK] * len(detected)
    iou, best = box_iou(torch.as_tensor(detected, dtype=torch.float64),
                        torch.as_tensor(true_boxes, dtype=torch.float64)).max(1)
    return [codes[j] if overlap >= MATCH_IOU else UNK for overlap, j in zip(iou.tolist(), best.tolist())]
