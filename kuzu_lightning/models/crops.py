"""Character crops cut on the tensor: the classifier's input at prediction time.

A crop is the crop square of a box (:func:`kuzu_lightning.geometry.crop_squares`, the same squares
as the training crops of :func:`~kuzu_lightning.data.crop_cache.crop_square`), resampled to
``size x size``. Each output pixel is the mean of bilinear
samples at the centres of its 2 x 2 sub-pixels (pixel centres at ``k + 0.5``), which is how the
training crops shrink a square larger than ``size``: there, the two agree to rounding. A square
smaller than ``size`` (enlarged) is a little softer here than in training, where it is sampled once
per pixel.
"""

from __future__ import annotations

import torch
from torchvision.ops import roi_align

from kuzu_lightning.geometry import crop_squares


def cut_crops(page: torch.Tensor, boxes: torch.Tensor, size: int, margin: float) -> torch.Tensor:
    """Crops ``N x 3 x size x size`` float (0..1) of a ``3 x H x W`` uint8 page around its ``(N, 4)``
    xyxy ``boxes`` (in that page's pixels), all in one ``roi_align`` call.

    Samples off the page are black (the training crops repeat the edge pixel instead; characters
    rarely touch the page's edge).
    """
    if len(boxes) == 0:
        return torch.zeros((0, 3, size, size), device=boxes.device)
    squares = crop_squares(boxes.float(), margin)
    crops = roi_align(page[None].float(), [squares], output_size=size, spatial_scale=1.0, sampling_ratio=2,
                      aligned=True)
    return crops / 255
