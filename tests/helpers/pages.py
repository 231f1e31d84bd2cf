"""A recognised page built by hand: two columns and a side gloss, each character with three readings."""

import numpy as np
import torch

CHARS = "あいうえおかきくけこさしカナルビ"


def column(x: float, n: int) -> list[list[float]]:
    return [[x - 40, 10 + 120 * k, x + 40, 100 + 120 * k] for k in range(n)]


def hand_built_page(error: str | None = None) -> dict:
    """Two columns of six characters (right first) and four small kana beside the 2nd to 4th of the first: a gloss.
    Each character has three readings, best first: its own, then two others."""
    boxes = column(700, 6) + column(540, 6) + [[760, y, 795, y + 35] for y in (130, 170, 210, 250)]
    boxes[0][1] = -3.4  # off the page by a little: written clipped
    codes = [f"U+{ord(char):04X}" for char in CHARS]
    others = [["U+3042", "U+30A2"] if code != "U+3042" else ["U+3044", "U+30A2"] for code in codes]
    probabilities = np.linspace(0.95, 0.3, len(codes), dtype=np.float32)  # the last five below 0.5: doubtful
    alternative_probabilities = np.stack([probabilities, (1 - probabilities) * 0.3, (1 - probabilities) * 0.2], 1)
    if error:
        boxes, codes, others, probabilities, alternative_probabilities = [], [], [], probabilities[:0], np.zeros((0, 3))
    return {"image_id": "book/page1", "size": (900, 760), "error": error, "boxes": torch.tensor(boxes).reshape(-1, 4),
            "codes": codes, "scores": torch.linspace(0.99, 0.6, len(codes)),
            "probabilities": torch.from_numpy(probabilities),
            "alternatives": [[code, *other] for code, other in zip(codes, others)],
            "alternative_probabilities": torch.from_numpy(alternative_probabilities)}
