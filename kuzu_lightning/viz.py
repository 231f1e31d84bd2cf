"""Pictures a person looks at: labelled crop grids, pages with true and detected boxes, recognised pages.

Images are RGB ``uint8`` ``H x W x 3``; characters are drawn in IPAexGothic; :func:`write_png` saves one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from kuzu_lightning.data.formats import code_to_char
from kuzu_lightning.font import japanese_font

RIGHT, WRONG, LABEL = (20, 140, 40), (200, 30, 30), (20, 60, 220)


def crop_grid(crops: np.ndarray, true_codes: Sequence[str], predicted_codes: Sequence[str], columns: int = 8) -> np.ndarray:
    """A grid of ``N x S x S x 3`` crops, each captioned "predicted / true" (green when they agree)."""
    n, size = len(crops), crops.shape[1]
    caption = max(18, size // 3)
    rows = max(1, -(-n // columns))
    grid = Image.new("RGB", (columns * (size + 4), rows * (size + caption + 4)), "white")
    draw = ImageDraw.Draw(grid)
    font = japanese_font(caption - 4)
    for i, (crop, true, predicted) in enumerate(zip(crops, true_codes, predicted_codes)):
        x, y = (i % columns) * (size + 4) + 2, (i // columns) * (size + caption + 4) + 2
        grid.paste(Image.fromarray(np.ascontiguousarray(crop)), (x, y))
        text = f"{code_to_char(predicted)} / {code_to_char(true)}"
        draw.text((x + 2, y + size + 1), text, fill=RIGHT if predicted == true else WRONG, font=font)
    return np.asarray(grid)


def _shrunk(image: np.ndarray, longest_side: int | None) -> tuple[Image.Image, float]:
    """``image`` as a PIL image shrunk to ``longest_side`` (never enlarged), and the scale applied."""
    scale = min(1.0, longest_side / max(image.shape[:2])) if longest_side else 1.0
    page = Image.fromarray(np.ascontiguousarray(image))
    if scale < 1:
        page = page.resize((round(page.width * scale), round(page.height * scale)), Image.Resampling.BOX)
    return page, scale


def draw_boxes(image: np.ndarray, true_boxes: np.ndarray, predicted_boxes: np.ndarray,
               longest_side: int | None = 1024) -> np.ndarray:
    """A page with its true boxes in green and predicted boxes in red, shrunk to ``longest_side``.

    Boxes are xyxy in ``image``'s pixels.
    """
    page, scale = _shrunk(image, longest_side)
    draw = ImageDraw.Draw(page)
    for boxes, colour, width in ((true_boxes, RIGHT, 3), (predicted_boxes, WRONG, 1)):
        for box in np.asarray(boxes, np.float32).reshape(-1, 4) * scale:
            draw.rectangle(box.tolist(), outline=colour, width=width)
    return np.asarray(page)


def draw_characters(image: np.ndarray, boxes: np.ndarray, chars: Sequence[str], longest_side: int | None = 2048,
                    ) -> np.ndarray:
    """A page with each recognised character's box (red) and the character drawn beside it, to the
    box's right, in the Japanese font (blue), shrunk to ``longest_side``. Boxes are xyxy in ``image``'s pixels.
    """
    page, scale = _shrunk(image, longest_side)
    draw = ImageDraw.Draw(page)
    for (x1, y1, x2, y2), char in zip(np.asarray(boxes, np.float32).reshape(-1, 4) * scale, chars):
        draw.rectangle((x1, y1, x2, y2), outline=WRONG, width=1)
        size = max(8, round(min(x2 - x1, y2 - y1) * 0.8))
        draw.text((x2 + 2, (y1 + y2 - size) / 2), char, fill=LABEL, font=japanese_font(size))
    return np.asarray(page)


def side_by_side(pictures: Sequence[np.ndarray], height: int = 1000, gap: int = 16) -> np.ndarray:
    """``pictures`` scaled to ``height`` px and laid left to right, ``gap`` px of white between them."""
    scaled = [cv2.resize(p, (round(p.shape[1] * height / p.shape[0]), height), interpolation=cv2.INTER_AREA)
              for p in pictures]
    spacer = np.full((height, gap, 3), 255, np.uint8)
    return np.concatenate([part for picture in scaled for part in (picture, spacer)][:-1], axis=1)


def write_png(path: Path, picture: np.ndarray) -> None:
    """Save an RGB picture as PNG, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
