"""Pictures a person looks at: labelled crop grids, pages with true and detected boxes, transcribed pages.

Images are RGB ``uint8`` ``H x W x 3``; characters are drawn in IPAexGothic; :func:`write_png` saves one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from kuzu_lightning.data.formats import code_to_char
from kuzu_lightning.records import RecognizedPage
from kuzu_lightning.synthetic.fonts import japanese_font

RIGHT, WRONG = (20, 140, 40), (200, 30, 30)
INK, LOW, LINE, GLOSS = (0, 0, 0), (235, 120, 0), (190, 190, 190), (20, 60, 220)


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


def draw_transcription(image: np.ndarray, page: RecognizedPage, low_confidence: float = 0.5,
                       longest_side: int | None = None) -> np.ndarray:
    """The page as a person reads its transcription: on the left the scan with each recognised character's box (red), on
    the right a white panel of the same size with each character drawn in IPAexGothic at its place and about its size
    (within 0.7 to 1.3 times the page's median), black, or orange when its class probability is below
    ``low_confidence``, and each line's box in grey (glosses in blue). ``image`` is the page at any scale of the
    original ``page.width x page.height`` (the page's boxes are in original-scan pixels); the picture keeps
    ``image``'s resolution, or is shrunk to ``longest_side`` per panel.
    """
    scan, shrink = _shrunk(image, longest_side)
    scale = shrink * image.shape[1] / max(page.width, 1), shrink * image.shape[0] / max(page.height, 1)
    picture = Image.new("RGB", (scan.width * 2, scan.height), "white")
    picture.paste(scan, (0, 0))
    draw = ImageDraw.Draw(picture)
    offset = scan.width
    sizes = [((c.box[2] - c.box[0]) * scale[0] * (c.box[3] - c.box[1]) * scale[1]) ** 0.5 for c in page.characters]
    typical = float(np.median(sizes)) if sizes else 0.0
    for line in page.lines:
        x1, y1, x2, y2 = line.box
        draw.rectangle((offset + x1 * scale[0], y1 * scale[1], offset + x2 * scale[0], y2 * scale[1]),
                       outline=GLOSS if line.gloss else LINE, width=max(1, round(2 * scale[0])))
    for c, side in zip(page.characters, sizes):
        x1, y1, x2, y2 = c.box[0] * scale[0], c.box[1] * scale[1], c.box[2] * scale[0], c.box[3] * scale[1]
        draw.rectangle((x1, y1, x2, y2), outline=WRONG, width=max(1, round(3 * scale[0])))
        size = max(8, round(0.9 * min(max(side, 0.7 * typical), 1.3 * typical)))
        colour = LOW if c.probability < low_confidence else INK
        draw.text((offset + c.x * scale[0], c.y * scale[1]), c.char, fill=colour, font=japanese_font(size), anchor="mm")
    return np.asarray(picture)


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
