"""Brush-written glyphs for synthetic pages: a character in a font style, as real books wrote it.

A glyph is an ink mask (uint8, 0 = paper, 255 = full ink), cropped to its ink. Each character is
rendered once per style at :data:`REFERENCE` pixels and then scaled, thickened or thinned, slanted
and dried (:func:`brush`), so that pages of any size reuse the cache.

Kana are often written as their source kanji in cursive (hentaigana): :func:`ink_form` returns the
character whose ink stands for a label, drawing from ``hentaigana.csv`` (kana, source kanji, the
common ones first).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from kuzu_lightning.data.formats import char_to_code
from kuzu_lightning.synthetic.fonts import style_font

REFERENCE = 96
"""The em size, in pixels, at which glyphs are rendered once and cached."""

CURSIVE = ("gyosho", "sousho", "soseki")
"""The styles in which kana may be written as their source kanji."""

HENTAIGANA = Path(__file__).with_name("hentaigana.csv")


@lru_cache(maxsize=1)
def hentaigana() -> dict[str, str]:
    """Each kana's source kanji, the most common first (``hentaigana.csv``)."""
    lines = HENTAIGANA.read_text(encoding="utf-8").split()[1:]
    return dict(line.split(",") for line in lines)


def ink_form(char: str, style: str, rate: float, rng: np.random.Generator) -> str:
    """The character whose ink stands for label ``char``: with probability ``rate``, in a cursive
    style, one of its source kanji (the first ones more often), else ``char`` itself."""
    sources = hentaigana().get(char)
    if not sources or style not in CURSIVE or rng.random() >= rate:
        return char
    weights = 1.0 / np.arange(1, len(sources) + 1)
    return sources[rng.choice(len(sources), p=weights / weights.sum())]


@lru_cache(maxsize=6000)
def reference_glyph(style: str, char: str) -> np.ndarray:
    """The ink mask of ``char`` in ``style`` at :data:`REFERENCE` px, cropped to its ink.

    Raises ``ValueError`` when the font has no ink for it.
    """
    font = style_font(style, REFERENCE)
    pad = REFERENCE // 4
    left, top, right, bottom = font.getbbox(char)
    mask = np.zeros((bottom - top + 2 * pad, right - left + 2 * pad), np.uint8)
    core = font.getmask(char)
    glyph = np.asarray(core, dtype=np.uint8).reshape(core.size[1], core.size[0])
    mask[pad:pad + glyph.shape[0], pad:pad + glyph.shape[1]] = glyph
    return crop_to_ink(mask, f"the {style} font has no ink for {char!r} ({char_to_code(char)})")


def crop_to_ink(mask: np.ndarray, message: str = "no ink left") -> np.ndarray:
    """``mask`` cropped to its pixels above 40; ``ValueError(message)`` when there are none."""
    ys, xs = np.nonzero(mask > 40)
    if len(ys) == 0:
        raise ValueError(message)
    return mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def brush(glyph: np.ndarray, em: float, stretch: float, weight: float, dryness: float,
          rng: np.random.Generator) -> np.ndarray:
    """A reference glyph written at an em size of ``em`` px (its width scaled by ``1 / stretch``), cropped to its ink.

    ``weight`` thickens (> 0) or thins (< 0) the strokes, in pixels at the reference size;
    ``dryness`` (0..1) breaks strokes into the streaks of a dry brush. A small random rotation and
    shear give each copy its own hand.
    """
    if weight:
        kernel = np.ones((2, 2) if abs(weight) < 1.5 else (3, 3), np.uint8)
        glyph = cv2.dilate(glyph, kernel) if weight > 0 else cv2.erode(glyph, kernel)
    scale = max(em, 4.0) / REFERENCE
    h, w = glyph.shape
    size = (max(1, round(w * scale / stretch)), max(1, round(h * scale)))
    glyph = cv2.resize(glyph, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    h, w = glyph.shape
    angle, shear = math.radians(rng.uniform(-4, 4)), rng.uniform(-0.12, 0.12)
    a = np.array([[math.cos(angle), shear - math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0]])
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64) @ a.T
    a[:, 2] = -corners.min(axis=0) + 1
    size = np.ceil(corners.max(axis=0) - corners.min(axis=0)).astype(int) + 2
    ink = cv2.warpAffine(glyph, a, (int(size[0]), int(size[1])), flags=cv2.INTER_LINEAR)
    if 0 < ink.max() < 255:  # strokes thinner than a pixel are averaged away: the densest stroke keeps full ink
        ink = (ink.astype(np.float32) * (255.0 / ink.max())).astype(np.uint8)
    if dryness > 0:
        dried = _dry(ink, dryness, rng)
        ink = dried if (dried > 40).any() else ink
    return crop_to_ink(ink)


def _dry(ink: np.ndarray, dryness: float, rng: np.random.Generator) -> np.ndarray:
    """Streaks of bare paper along a random brush direction, and a fainter tail of the stroke."""
    h, w = ink.shape
    noise = rng.random((h, w)).astype(np.float32)
    length = max(3, int(max(h, w) * 0.25)) | 1
    streak = np.zeros((length, length), np.float32)
    cv2.line(streak, (0, length // 2), (length - 1, length // 2), 1.0, 1)
    turn = cv2.getRotationMatrix2D((length / 2, length / 2), rng.uniform(45, 135), 1.0)
    streak = cv2.warpAffine(streak, turn, (length, length))
    streaks = cv2.filter2D(noise, -1, streak / max(streak.sum(), 1e-6))
    streaks = (streaks - streaks.mean()) / max(float(streaks.std()), 1e-6)
    keep = np.clip(1.0 - dryness * np.clip(streaks, 0, None), 0.0, 1.0)
    return (ink * keep).astype(np.uint8)
