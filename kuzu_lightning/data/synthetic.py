"""A built-in Kaggle-layout dataset rendered with a real Japanese font: no network, no download.

    python -m kuzu_lightning.data.synthetic --out data/synthetic --pages 40 --seed 0

writes ``train.csv``, ``unicode_translation.csv``, ``train_images/*.jpg``, ``test_images/*.jpg``
and ``sample_submission.csv`` exactly as the Kaggle download lays them out, plus
``test_solution.csv``: the labels of the test pages (synthetic pages know their answers), for
scoring a submission with ``python -m kuzu_lightning.metrics``.

Pages imitate the real scans: vertical columns read right to left inside a page frame,
characters of several sizes with jitter, paper-coloured noisy backgrounds and ink that vary by
"book" (several style presets, so book-wise splits mean something), small unlabeled side glosses
like furigana, unlabeled seals, illustrations and show-through from the other side. Character
frequencies follow a long tail. Labels are tight boxes around each character's ink, in pixels of
the written image (``x y w h``, top-left corner and size). Output is deterministic for a seed:
each page draws from its own random stream, seeded by ``(seed, page number)``.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from kuzu_lightning.data.formats import char_to_code, format_labels
from kuzu_lightning.font import japanese_font
from kuzu_lightning.geometry import xyxy_to_xywh

log = logging.getLogger(__name__)

KANA = (
    "にのてしをはとたるかりなもいれくらすきつまへおこせやあけそうめむちゆよわひゑゐみさぬふほろえ"
    "がでじばずどぞぎぐげござぜだぢづびぶべぼぱぷ"
)
KANJI = (
    "人日大一上也事之年子御云心物時出見中下所為三二國者行其有右天入内十而無月不生家山神此水後可"
    "名方書道得身成手本以王國於前立長主申給候殿様儀候被致候間寺花春夏秋冬風雪雨雲海空光色白黒赤"
    "青高明来帰知読作用法女男口目耳足力気分地千万百五六七八九四小左国文字新古今東西南北門川田石"
    "木林森竹草石金玉衣食飲酒茶米馬牛鳥魚虫犬猫龍鬼仏僧法師弟兄父母妻夫君臣民士農工商町村里京都"
    "江戸城宮殿屋舟車道橋坂野原池浜島岩松梅桜菊葉根実種春秋朝夜昼夕晴時今昔世代歳是非善悪正直誠"
    "信義礼智仁徳孝忠恩情愛恋思念想意志言語話詞歌詩書画絵図品物数量重軽強弱多少早遅始終初末"
)
DEFAULT_VOCABULARY = "".join(dict.fromkeys(KANA + KANJI))
"""Frequent hiragana and kanji, most frequent first (the sampling follows a long tail over this order)."""


@dataclass(frozen=True)
class BookStyle:
    """How one "book" looks: paper, ink, layout. Each book perturbs one of these presets."""

    paper: tuple[int, int, int]  # RGB
    ink: tuple[int, int, int]  # RGB
    columns: tuple[int, int]  # columns per page, min and max
    stain: float  # strength of low-frequency paper blotches
    grain: float  # per-pixel noise, grey levels
    stroke: int  # 0 thin, 1 normal, 2 bold (dilation of the glyph mask)
    frame: bool  # a ruled page frame, as in many woodblock prints


STYLES = (
    BookStyle(paper=(232, 214, 182), ink=(38, 30, 24), columns=(8, 11), stain=14, grain=6, stroke=1, frame=True),
    BookStyle(paper=(236, 228, 208), ink=(20, 20, 22), columns=(6, 9), stain=8, grain=4, stroke=2, frame=True),
    BookStyle(paper=(205, 184, 146), ink=(52, 40, 32), columns=(9, 13), stain=20, grain=8, stroke=0, frame=False),
    BookStyle(paper=(222, 214, 200), ink=(30, 34, 44), columns=(5, 8), stain=10, grain=5, stroke=1, frame=False),
    BookStyle(paper=(214, 196, 160), ink=(60, 42, 30), columns=(7, 10), stain=16, grain=7, stroke=1, frame=True),
)

SEAL_RED = (178, 52, 40)


@lru_cache(maxsize=20_000)
def _glyph(char: str, size: int, stroke: int) -> np.ndarray:
    """The ink mask (uint8, 0..255) of one character at ``size`` px, cropped to its ink."""
    font = japanese_font(size)
    left, top, right, bottom = font.getbbox(char)
    mask = np.zeros((bottom - top + 2 * stroke + 2, right - left + 2 * stroke + 2), np.uint8)
    core = font.getmask(char)
    glyph = np.asarray(core, dtype=np.uint8).reshape(core.size[1], core.size[0])
    mask[stroke + 1:stroke + 1 + glyph.shape[0], stroke + 1:stroke + 1 + glyph.shape[1]] = glyph
    if stroke > 1:
        mask = cv2.dilate(mask, np.ones((2, 2), np.uint8))
    elif stroke < 1 and size >= 24:  # thinner strokes; small glyphs would vanish
        mask = cv2.erode(mask, np.ones((2, 2), np.uint8))
    ys, xs = np.nonzero(mask > 40)
    if len(ys) == 0:
        raise ValueError(f"the font has no ink for {char!r} ({char_to_code(char)})")
    return mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _font_size(size: float) -> int:
    """Round a glyph size to a ladder of steps 8% apart (at least 8 px), so rendered glyphs are reused."""
    return max(8, round(1.08 ** round(math.log(max(size, 1.0), 1.08))))


def _slanted(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A hand-written look: random shear, rotation and aspect of a glyph mask, cropped to its ink."""
    h, w = mask.shape
    angle = math.radians(rng.uniform(-6, 6))
    shear = rng.uniform(-0.15, 0.15)
    sx, sy = rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.15)
    a = np.array([[math.cos(angle) * sx, -math.sin(angle) + shear, 0], [math.sin(angle), math.cos(angle) * sy, 0]])
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64) @ a.T
    a[:, 2] = -corners.min(axis=0) + 1
    size = np.ceil(corners.max(axis=0) - corners.min(axis=0)).astype(int) + 2
    warped = cv2.warpAffine(mask, a, (int(size[0]), int(size[1])), flags=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(warped > 40)
    return warped[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _stamp(page: np.ndarray, mask: np.ndarray, x: int, y: int, colour: tuple[int, int, int], opacity: float) -> bool:
    """Blend ``colour`` through ``mask`` onto ``page`` at top-left ``(x, y)``; False if it does not fit."""
    h, w = mask.shape
    if x < 0 or y < 0 or x + w > page.shape[1] or y + h > page.shape[0]:
        return False
    roi = page[y:y + h, x:x + w]
    alpha = (mask.astype(np.float32) * (opacity / 255.0))[:, :, None]
    roi[:] = (roi * (1 - alpha) + np.asarray(colour, np.float32) * alpha + 0.5).astype(np.uint8)
    return True


class PageRenderer:
    """Renders pages of one vocabulary; ``render`` returns the image and its labelled characters."""

    def __init__(self, vocabulary: str = DEFAULT_VOCABULARY, height: int = 1536, tail: float = 1.0):
        if len(set(vocabulary)) != len(vocabulary) or not vocabulary:
            raise ValueError("the vocabulary must be a non-empty string of distinct characters")
        self.vocabulary = vocabulary
        self.height = height
        weights = 1.0 / (np.arange(len(vocabulary)) + 3.0) ** tail  # a long tail: Zipf-like by rank
        self.weights = weights / weights.sum()

    def book_style(self, book: int, seed: int) -> tuple[BookStyle, float]:
        """The style of book number ``book``: a preset with its colours perturbed, and its aspect ratio."""
        rng = np.random.default_rng([seed, 10_000 + book])
        base = STYLES[book % len(STYLES)]

        def shift(colour, spread):
            return tuple(int(np.clip(c + rng.integers(-spread, spread + 1), 0, 255)) for c in colour)

        style = BookStyle(shift(base.paper, 10), shift(base.ink, 8), base.columns, base.stain, base.grain,
                          base.stroke, base.frame)
        return style, float(rng.uniform(0.58, 0.68))

    def _paper(self, rng: np.random.Generator, style: BookStyle, width: int) -> np.ndarray:
        """Paper colour plus blotches and grain, built at half size in uint8 through a colour table."""
        half = (max(1, width // 2), max(1, self.height // 2))
        stains = cv2.resize(rng.normal(0, style.stain, size=(6, 4)).astype(np.float32), half,
                            interpolation=cv2.INTER_CUBIC)
        grain = rng.normal(0, style.grain, size=(half[1], half[0])).astype(np.float32)
        shade = np.clip(stains + grain + 128, 0, 255).astype(np.uint8)  # 128 = the paper colour itself
        table = np.clip(np.asarray(style.paper)[None, :] + np.arange(-128, 128)[:, None], 0, 255).astype(np.uint8)
        paper = cv2.LUT(cv2.merge([shade, shade, shade]), table[None])
        return cv2.resize(paper, (width, self.height), interpolation=cv2.INTER_NEAREST)

    def render(self, rng: np.random.Generator, style: BookStyle, aspect: float) -> tuple[np.ndarray, list[str], np.ndarray]:
        """One page: RGB uint8 image, the code points, and xyxy boxes (image pixels) of its characters."""
        h = self.height
        w = int(h * aspect)
        page = self._paper(rng, style, w)
        margin_x, margin_y = int(w * rng.uniform(0.07, 0.11)), int(h * rng.uniform(0.07, 0.1))
        if style.frame:
            thickness = max(2, h // 500)
            cv2.rectangle(page, (margin_x, margin_y), (w - margin_x, h - margin_y), style.ink, thickness)
            inset = thickness * 3
            cv2.rectangle(page, (margin_x - inset, margin_y - inset), (w - margin_x + inset, h - margin_y + inset),
                          style.ink, max(1, thickness // 2))
        left, right = margin_x + h // 60, w - margin_x - h // 60
        top, bottom = margin_y + h // 50, h - margin_y - h // 50

        n_columns = int(rng.integers(style.columns[0], style.columns[1] + 1))
        pitch = (right - left) / n_columns
        illustrated = rng.random() < 0.2  # a picture takes the left part of the page
        if illustrated:
            self._illustration(page, rng, style, left, top, int(left + (right - left) * rng.uniform(0.3, 0.6)), bottom)
        codes, boxes = [], []
        column_fill = rng.uniform(0.35, 1.0)  # how full columns are on this page: a realistic spread of counts
        chars = iter(rng.choice(len(self.vocabulary), size=4096, p=self.weights))
        for column in range(n_columns):
            centre = right - pitch * (column + 0.5)  # right to left
            if illustrated and centre < left + (right - left) * 0.6 and len(codes) >= 20:
                break
            small = rng.random() < 0.15  # a column of commentary in smaller characters
            size = int(pitch * (0.42 if small else rng.uniform(0.6, 0.78)))
            end = top + (bottom - top) * (1.0 if len(codes) < 20 else min(1.0, column_fill + rng.uniform(0, 0.4)))
            y = top + rng.uniform(0, size * 0.3)
            while True:
                char = self.vocabulary[next(chars)]
                glyph = _slanted(_glyph(char, _font_size(size * rng.uniform(0.85, 1.1)), style.stroke), rng)
                gh, gw = glyph.shape
                if y + gh > end:
                    break
                x = int(centre - gw / 2 + rng.uniform(-0.08, 0.08) * pitch)
                if _stamp(page, glyph, x, int(y), style.ink, rng.uniform(0.8, 1.0)):
                    codes.append(char_to_code(char))
                    boxes.append((x, int(y), x + gw, int(y) + gh))
                    if rng.random() < 0.12:
                        self._gloss(page, rng, style, x + gw + max(2, int(pitch * 0.04)), int(y), size)
                y += gh + size * rng.uniform(0.08, 0.35)
        for _ in range(int(rng.integers(0, 3))):
            self._seal(page, rng, w, h)
        self._show_through(page, rng, style, w, h)
        return page, codes, np.asarray(boxes, np.float32).reshape(-1, 4)

    def _gloss(self, page, rng, style, x, y, size):
        """Unlabeled furigana: two or three tiny kana beside a character, between the columns."""
        for _ in range(int(rng.integers(1, 4))):
            glyph = _glyph(KANA[int(rng.integers(len(KANA)))], _font_size(size * 0.3), 1)
            _stamp(page, glyph, x, y, style.ink, 0.9)
            y += glyph.shape[0] + 2

    def _seal(self, page, rng, w, h):
        """An unlabeled vermilion seal: a square or a round stamp with a character knocked out."""
        side = int(h * rng.uniform(0.04, 0.08))
        x, y = int(rng.uniform(0, w - side)), int(rng.uniform(0, h - side))
        mask = np.zeros((side, side), np.uint8)
        if rng.random() < 0.5:
            cv2.rectangle(mask, (0, 0), (side - 1, side - 1), 255, -1)
        else:
            cv2.circle(mask, (side // 2, side // 2), side // 2 - 1, 255, -1)
        glyph = _glyph(self.vocabulary[int(rng.integers(len(self.vocabulary)))], _font_size(side * 0.6), 1)
        gy, gx = (side - glyph.shape[0]) // 2, (side - glyph.shape[1]) // 2
        region = mask[gy:gy + glyph.shape[0], gx:gx + glyph.shape[1]]
        region[...] = np.minimum(region, 255 - glyph)
        _stamp(page, mask, x, y, SEAL_RED, rng.uniform(0.6, 0.9))

    def _illustration(self, page, rng, style, x1, y1, x2, y2):
        """Unlabeled ink drawing: strokes, curves and filled shapes in a region of the page."""
        for _ in range(int(rng.integers(15, 40))):
            kind = rng.random()
            p = (int(rng.uniform(x1, x2)), int(rng.uniform(y1, y2)))
            if kind < 0.5:
                q = (int(np.clip(p[0] + rng.normal(0, 60), x1, x2)), int(np.clip(p[1] + rng.normal(0, 60), y1, y2)))
                cv2.line(page, p, q, style.ink, int(rng.integers(1, 5)))
            elif kind < 0.85:
                axes = (int(rng.uniform(10, 80)), int(rng.uniform(10, 80)))
                cv2.ellipse(page, p, axes, rng.uniform(0, 180), 0, rng.uniform(90, 360), style.ink, int(rng.integers(1, 4)))
            else:
                cv2.circle(page, p, int(rng.uniform(3, 15)), style.ink, -1)

    def _show_through(self, page, rng, style, w, h):
        """Faint mirrored characters from the other side of thin paper: ink to be ignored."""
        faded = tuple(int(p * 0.75 + i * 0.25) for p, i in zip(style.paper, style.ink))
        for _ in range(int(rng.integers(0, 25))):
            glyph = _glyph(self.vocabulary[int(rng.integers(len(self.vocabulary)))], _font_size(h * 0.03), 0)[:, ::-1]
            _stamp(page, glyph, int(rng.uniform(0, w - glyph.shape[1])), int(rng.uniform(0, h - glyph.shape[0])),
                   faded, 0.6)


def _write_jpeg(path: Path, image: np.ndarray, quality: int = 90) -> None:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"{path}: JPEG encoding failed")
    path.write_bytes(data.tobytes())


def generate(
    out: str | Path, pages: int = 40, seed: int = 0, test_pages: int | None = None, books: int | None = None,
    height: int = 1536, vocabulary: str = DEFAULT_VOCABULARY,
) -> Path:
    """Write a Kaggle-layout dataset of ``pages`` train pages and ``test_pages`` test pages to ``out``.

    ``books`` (default: one per 8 train pages, at least 3) sets how many books the train pages are
    spread over; test pages come from books of their own. ``height`` is the page height in pixels
    (widths follow each book's aspect ratio, about 0.6). ``vocabulary`` is the string of characters
    to draw, most frequent first. Returns ``out``.
    """
    if pages < 1:
        raise ValueError("pages must be at least 1")
    out = Path(out)
    test_pages = max(1, pages // 4) if test_pages is None else test_pages
    books = books or max(3, math.ceil(pages / 8))
    renderer = PageRenderer(vocabulary, height)
    (out / "train_images").mkdir(parents=True, exist_ok=True)
    (out / "test_images").mkdir(parents=True, exist_ok=True)
    train_rows, test_rows = [], []
    for index in range(pages + test_pages):
        rng = np.random.default_rng([seed, index])
        if index < pages:
            book, number = index % books, index // books
            image_id, folder, rows = f"synth{book:03d}_{number // 2 + 1:05d}_{number % 2 + 1}", "train_images", train_rows
        else:
            book = books + (index - pages) % 3
            image_id, folder, rows = f"test_{rng.bytes(4).hex()}", "test_images", test_rows
        image, codes, boxes = renderer.render(rng, *renderer.book_style(book, seed))
        _write_jpeg(out / folder / f"{image_id}.jpg", image)
        rows.append((image_id, format_labels(codes, xyxy_to_xywh(boxes))))
    columns = ["image_id", "labels"]
    pd.DataFrame(train_rows, columns=columns).to_csv(out / "train.csv", index=False)
    pd.DataFrame(test_rows, columns=columns).to_csv(out / "test_solution.csv", index=False)
    pd.DataFrame({"image_id": [r[0] for r in test_rows], "labels": ""}).to_csv(out / "sample_submission.csv", index=False)
    pd.DataFrame({"Unicode": [char_to_code(c) for c in vocabulary], "char": list(vocabulary)}).to_csv(
        out / "unicode_translation.csv", index=False)
    return out


def ensure_dataset(data_dir: str | Path, **kwargs) -> Path:
    """Generate the synthetic dataset into ``data_dir`` unless it already holds a ``train.csv``."""
    data_dir = Path(data_dir)
    if not (data_dir / "train.csv").is_file():
        log.info("generating a synthetic dataset in %s", data_dir)
        generate(data_dir, **kwargs)
    return data_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kuzu_lightning.data.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write (created)")
    parser.add_argument("--pages", type=int, default=40, help="train pages (default 40)")
    parser.add_argument("--test-pages", type=int, default=None, help="test pages (default pages / 4)")
    parser.add_argument("--books", type=int, default=None,
                        help="books the train pages come from (default pages / 8, at least 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--height", type=int, default=1536, help="page height in pixels (default 1536)")
    parser.add_argument("--vocabulary", default=DEFAULT_VOCABULARY,
                        help=f"characters to draw, most frequent first (default: {len(DEFAULT_VOCABULARY)} kana and kanji)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    generate(args.out, args.pages, args.seed, args.test_pages, args.books, args.height, args.vocabulary)
    seconds = time.perf_counter() - start
    total = args.pages + (args.test_pages if args.test_pages is not None else max(1, args.pages // 4))
    print(f"wrote {total} pages to {args.out} in {seconds:.1f} s ({total / seconds:.1f} pages/s)")


if __name__ == "__main__":
    main()
