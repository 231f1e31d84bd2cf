"""Box geometry, written once: box formats, centres, clipping, the two page frames, the crop square.

**Box formats.** Kaggle strings hold ``x y w h`` ("xywh": top-left corner and size). Inside the
package, boxes are ``(N, 4)`` arrays of ``x1 y1 x2 y2`` ("xyxy", torchvision's convention), float32.
Submissions hold centre points ``x y``.

**Frames.** *Original-scan pixels* are the frame of ``train.csv`` and of everything that leaves the
package. *Resized-page pixels* are those of the page scaled for the detector; a page's ``scale`` is
``(sx, sy)`` = resized size / original size, so ``resized = original * scale``.

**The crop square** around a character box, the classifier's input in training and in prediction:
the square centred on the box whose side is the box's longer side (at least 1 px) plus ``margin`` of
it on each side, so that the aspect ratio is kept; resampled to ``size x size`` pixels.

Functions that take boxes accept numpy arrays and torch tensors alike and return the same kind
(tensors keep their device); torch is never imported here, so the command lines that need no model
start fast.
"""

from __future__ import annotations

import math
import sys

import numpy as np

CROP_SIZE = 96
"""Side of a classifier crop in pixels (the original's 96)."""
CROP_MARGIN = 0.15
"""Context around a box in a crop, as a fraction of the box's longer side, on each side."""


def _is_tensor(value) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _boxes(boxes, dtype=np.float32):
    """``boxes`` as an ``(N, 4)`` array of ``dtype``; tensors are passed through as they are."""
    return boxes if _is_tensor(boxes) else np.asarray(boxes, dtype=dtype).reshape(-1, 4)


def xywh_to_xyxy(boxes, dtype: type = np.float32) -> np.ndarray:
    """``(N, 4)`` top-left corner + size -> ``(N, 4)`` corners ``x1 y1 x2 y2``, as ``dtype``."""
    boxes = np.asarray(boxes, dtype=dtype).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def xyxy_to_xywh(boxes) -> np.ndarray:
    """``(N, 4)`` corners ``x1 y1 x2 y2`` -> ``(N, 4)`` top-left corner + size, as float32."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def box_centres(boxes):
    """``(N, 4)`` xyxy boxes -> ``(N, 2)`` centre points ``cx cy`` (the points a submission holds)."""
    boxes = _boxes(boxes)
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def clip_boxes(boxes, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip xyxy boxes to a ``width x height`` page; return ``(clipped boxes, keep mask)``.

    ``keep`` is False for boxes with no area left after clipping (zero-size or fully outside).
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    clipped = np.empty_like(boxes)
    clipped[:, 0::2] = boxes[:, 0::2].clip(0, width)
    clipped[:, 1::2] = boxes[:, 1::2].clip(0, height)
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    return clipped, keep


def pixel_box(box, width: int, height: int) -> tuple[int, int, int, int]:
    """One xyxy box as whole pixels of a ``width`` x ``height`` page: ``x1 y1`` rounded down, ``x2 y2`` up, all clipped
    to the page (``0..width``, ``0..height``)."""
    x1, y1, x2, y2 = (float(value) for value in box)
    return (min(max(math.floor(x1), 0), width), min(max(math.floor(y1), 0), height),
            min(max(math.ceil(x2), 0), width), min(max(math.ceil(y2), 0), height))


def enclosing_box(boxes) -> tuple:
    """The smallest xyxy box around one or more xyxy ``boxes`` (in their frame and type)."""
    boxes = list(boxes)
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def proper_boxes(boxes, width: int, height: int, min_size: float = 1.0) -> np.ndarray:
    """xyxy boxes clipped to a ``width x height`` image, without those thinner than ``min_size`` px.

    Torchvision's detection losses raise on a box of zero width or height, so every detector
    target passes through here.
    """
    boxes, _ = clip_boxes(boxes, width, height)
    keep = ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)
    return boxes[keep]


def page_scale(resized_size: tuple[int, int], original_size: tuple[int, int]) -> np.ndarray:
    """The ``(sx, sy)`` float32 scale of a page resized from ``original_size`` to ``resized_size``
    (both ``(width, height)``)."""
    return np.array([resized_size[0] / original_size[0], resized_size[1] / original_size[1]], np.float32)


def to_resized(boxes, scale):
    """xyxy boxes in original-scan pixels -> the resized page's pixels, for a page's ``(sx, sy)`` ``scale``."""
    return _boxes(boxes) * scale[[0, 1, 0, 1]]


def to_original(boxes, scale):
    """xyxy boxes in a resized page's pixels -> original-scan pixels, for that page's ``(sx, sy)`` ``scale``."""
    return _boxes(boxes) / scale[[0, 1, 0, 1]]


def crop_squares(boxes, margin: float = CROP_MARGIN):
    """The crop squares (xyxy, same frame) of ``(N, 4)`` xyxy boxes; see the module docstring."""
    boxes = _boxes(boxes, np.float64)
    tensor = _is_tensor(boxes)
    sizes = boxes[:, 2:] - boxes[:, :2]
    longer = (sizes.amax(1) if tensor else sizes.max(1)).clip(min=1.0)
    centres, half = (boxes[:, :2] + boxes[:, 2:]) / 2, (longer * (0.5 + margin))[:, None]
    join = sys.modules["torch"].cat if tensor else np.concatenate
    return join([centres - half, centres + half], 1)
