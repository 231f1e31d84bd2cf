"""What recognition produces, as plain records: ``Character``, the page's JSON object, its submission row.

A recognised page (one item of :meth:`~kuzu_lightning.Recognizer.recognize_batch`'s output) is a dict
of ``image_id``, ``size`` (width, height), ``error`` (why the page could not be read, else None) and
its characters as ``boxes`` (xyxy), ``codes``, ``scores`` and ``probabilities``, best detection
first. Every coordinate is in original-scan pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from kuzu_lightning.data.formats import code_to_char, format_predictions
from kuzu_lightning.geometry import box_centres


@dataclass(frozen=True)
class Character:
    """One recognised character; coordinates in original-scan pixels."""

    code: str  # code point, "U+3042"
    char: str  # the character, "あ"
    x: float  # centre
    y: float
    box: tuple[float, float, float, float]  # x1 y1 x2 y2
    score: float  # detection score
    probability: float  # the classifier's probability of ``code``

    def to_dict(self) -> dict:
        return asdict(self)


def characters(page: dict) -> list[Character]:
    """The records of one recognised page."""
    boxes, centres = page["boxes"].tolist(), box_centres(page["boxes"]).tolist()
    return [Character(code, code_to_char(code), x, y, tuple(box), score, probability)
            for code, box, (x, y), score, probability
            in zip(page["codes"], boxes, centres, page["scores"].tolist(), page["probabilities"].tolist())]


def submission_labels(page: dict) -> str:
    """The ``labels`` string of one recognised page: ``U+XXXX x y ...`` (centres), best first."""
    return format_predictions(page["codes"], box_centres(page["boxes"]))


def page_record(page: dict, found: Sequence[Character]) -> dict:
    """The JSON object of one page: ``image_id``, ``width``, ``height``, ``error`` and its ``characters``."""
    width, height = page["size"]
    return {"image_id": page["image_id"], "width": int(width), "height": int(height), "error": page["error"],
            "characters": [c.to_dict() for c in found]}
