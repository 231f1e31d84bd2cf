"""A built-in Kaggle-layout dataset of brush-written pages: no network, no download.

    kuzu synthetic --out data/synthetic --pages 40 --seed 0 [--vocabulary full]

writes ``train.csv``, ``unicode_translation.csv``, ``train_images/*.jpg``, ``test_images/*.jpg``
and ``sample_submission.csv`` exactly as the Kaggle download lays them out, plus
``test_solution.csv``: the labels of the test pages (synthetic pages know their answers), for
scoring a submission with ``kuzu score``.

Pages imitate the real scans (``kuzu statistics`` compares them with
the labelled real pages): each "book" is written in one hand, a brush font of
:data:`~kuzu_lightning.synthetic.fonts.STYLES` (IPAexGothic, a printed face, for a few books), with kana often
written as their source kanji (hentaigana, :mod:`~kuzu_lightning.synthetic.glyphs`); vertical columns
read right to left, character sizes and gaps that vary along a column, connecting strokes between
consecutive characters, characters that touch, dry brush and ink that fades until the brush is
dipped again; paper colour, stains and foxing, show-through of the other side, unlabelled
furigana, illustrations and red seals stamped over the text, and the scanner bed around the page
with the facing page's edge. Books differ in hand, paper, ink and layout, so book-wise splits
mean something. Character frequencies follow a long tail over the vocabulary.

Labels are tight boxes around each character's ink, in pixels of the written image (``x y w h``,
top-left corner and size), **in reading order**: columns right to left, each top to bottom (the
order of CODH's ``Char ID``). Output is deterministic for a seed: each page draws from its own
random stream, seeded by ``(seed, page number)``, each book's style from ``(seed, book)``.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from kuzu_lightning.atomic import partial_name, remove_abandoned_partials
from kuzu_lightning.data.formats import char_to_code, format_labels
from kuzu_lightning.geometry import xyxy_to_xywh
from kuzu_lightning.synthetic.fonts import BRUSH_STYLES, brush_characters
from kuzu_lightning.synthetic.glyphs import brush, ink_form, reference_glyph

log = logging.getLogger(__name__)

KANA = (
    "にのてしをはとたるかりなもいれくらすきつまへおこせやあけそうめむちゆよわひゑゐみさぬふほろえんね"
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
KANA_SET = frozenset(KANA)


def full_vocabulary() -> str:
    """Every character of the Kaggle class table that a brush font has (4,643 of 4,781; a book whose
    hand lacks one writes it in another): :data:`DEFAULT_VOCABULARY` first, then the rest in code
    point order, so that the long tail of :class:`PageRenderer` gives the rare classes a few examples each."""
    covered = set().union(*(brush_characters(style) for style in BRUSH_STYLES))
    return DEFAULT_VOCABULARY + "".join(sorted(covered - set(DEFAULT_VOCABULARY)))


VOCABULARIES = {"default": lambda: DEFAULT_VOCABULARY, "full": full_vocabulary}
"""Named vocabularies of the command line."""


STYLE_WEIGHTS = {"sousho": 0.25, "gyosho": 0.25, "soseki": 0.2, "kouzan_t": 0.1, "kaisho": 0.1, "gothic": 0.1}
"""How often a book is written in each font style (:data:`~kuzu_lightning.synthetic.fonts.STYLES`)."""

PAPERS = ((232, 214, 182), (236, 228, 208), (205, 184, 146), (222, 214, 200), (214, 196, 160), (226, 206, 170))
INKS = ((38, 30, 24), (20, 20, 22), (52, 40, 32), (30, 34, 44), (60, 42, 30), (26, 24, 20))
BACKGROUNDS = ((28, 28, 30), (52, 50, 48), (18, 20, 30), (196, 196, 192), (120, 118, 112))  # the scanner bed
SEAL_RED = (178, 52, 40)


@dataclass(frozen=True)
class BookStyle:
    """How one "book" looks: its hand, paper and layout.

    The ranges :meth:`PageRenderer.book_style` draws these from make pages whose layout follows the
    labelled real pages (see ``kuzu statistics``).
    """

    font: str  # the style of the main hand (kuzu_lightning.synthetic.fonts.STYLES)
    paper: tuple[int, int, int]  # RGB
    ink: tuple[int, int, int]  # RGB
    background: tuple[int, int, int]  # RGB of the scanner bed around the page
    em: float  # the font size of the main text / page height (a character's ink is about 0.6 of it)
    stretch: float  # glyph height / width, relative to the font's
    pitch: float  # column pitch / em
    gap: float  # median gap between consecutive characters / em
    weight: float  # stroke thickening (> 0) or thinning (< 0), pixels at the reference size
    dryness: float  # 0..1, streaks of a dry brush
    connect: float  # probability of a connecting stroke to the next character of the column
    hentaigana: float  # probability that a kana is written as its source kanji (in a cursive hand)
    gloss: float  # probability of unlabelled furigana beside a character
    stain: float  # strength of low-frequency paper blotches
    grain: float  # per-pixel noise, grey levels
    frame: bool  # a ruled page frame, as in many woodblock prints


class PageRenderer:
    """Renders pages of one vocabulary; ``render`` returns the image and its labelled characters."""

    def __init__(self, vocabulary: str = DEFAULT_VOCABULARY, height: int = 1536, tail: float = 1.0,
                 styles: Sequence[str] | None = None):
        if len(set(vocabulary)) != len(vocabulary) or not vocabulary:
            raise ValueError("the vocabulary must be a non-empty string of distinct characters")
        unknown = set(styles or ()) - set(STYLE_WEIGHTS)
        if unknown or (styles is not None and not styles):
            raise ValueError(f"styles must be some of {', '.join(STYLE_WEIGHTS)}, not {sorted(unknown) or styles}")
        self.styles = {style: weight for style, weight in STYLE_WEIGHTS.items() if styles is None or style in styles}
        self.vocabulary = vocabulary
        self.height = height
        weights = 1.0 / (np.arange(len(vocabulary)) + 3.0) ** tail  # a long tail: Zipf-like by rank
        self.weights = weights / weights.sum()

    def book_style(self, book: int, seed: int) -> tuple[BookStyle, float]:
        """The style of book number ``book`` (drawn from ``(seed, book)``), and its scans' width / height."""
        rng = np.random.default_rng([seed, 10_000 + book])

        def shift(colour, spread):
            return tuple(int(np.clip(c + rng.integers(-spread, spread + 1), 0, 255)) for c in colour)

        weights = np.asarray(list(self.styles.values()))
        font = str(rng.choice(list(self.styles), p=weights / weights.sum()))
        style = BookStyle(
            font=font, paper=shift(PAPERS[book % len(PAPERS)], 10), ink=shift(INKS[book % len(INKS)], 8),
            background=shift(BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))], 8),
            em=float(np.exp(rng.normal(math.log(0.062), 0.25))), stretch=rng.uniform(0.9, 1.25),
            pitch=rng.uniform(1.25, 1.9), gap=rng.uniform(0.02, 0.16), weight=float(rng.choice([-1, 0, 0, 1, 2])),
            dryness=rng.uniform(0.0, 0.6), connect=rng.uniform(0.1, 0.6), hentaigana=rng.uniform(0.15, 0.6),
            gloss=rng.choice([0.0, 0.05, 0.15]), stain=rng.uniform(6, 22), grain=rng.uniform(3, 8), frame=rng.random() < 0.4)
        return style, float(rng.uniform(0.6, 0.78))

    def render(self, rng: np.random.Generator, style: BookStyle, aspect: float) -> tuple[np.ndarray, list[str], np.ndarray]:
        """One scan: RGB uint8 image, the code points in reading order (columns right to left, each
        top to bottom), and their xyxy boxes (image pixels, tight around each character's ink)."""
        h = self.height
        w = int(h * aspect)
        ink = np.zeros((h, w), np.float32)  # ink opacity, 0..1, composited once at the end
        px1, py1 = int(w * rng.uniform(0.005, 0.05)), int(h * rng.uniform(0.005, 0.03))
        px2, py2 = w - int(w * rng.uniform(0.005, 0.06)), h - int(h * rng.uniform(0.005, 0.03))
        left = px1 + int((px2 - px1) * rng.uniform(0.06, 0.12))
        right = px2 - int((px2 - px1) * rng.uniform(0.06, 0.12))
        top = py1 + int((py2 - py1) * rng.uniform(0.06, 0.15))
        bottom = py2 - int((py2 - py1) * rng.uniform(0.05, 0.1))
        size = style.em * h * rng.uniform(0.9, 1.1)
        pitch = size * style.pitch
        if style.frame:
            thickness = max(2, h // 600)
            cv2.rectangle(ink, (left - int(pitch * 0.3), top - int(size * 0.3)),
                          (right + int(pitch * 0.3), bottom + int(size * 0.3)), 0.9, thickness)
        illustrated = rng.random() < 0.12  # a picture takes the left part of the page
        text_left = left
        if illustrated:
            text_left = int(left + (right - left) * rng.uniform(0.4, 0.7))
            self._illustration(ink, rng, left, top, text_left - int(pitch * 0.5), bottom)
        codes, boxes = [], []
        chars = iter(rng.choice(len(self.vocabulary), size=8192, p=self.weights))
        n_columns = max(1, int((right - text_left) / pitch))
        for column in range(n_columns):
            centre = right - pitch * (column + 0.5)
            end = bottom if rng.random() > 0.25 else top + (bottom - top) * rng.uniform(0.15, 0.9)  # a paragraph ends
            y = top + (size * rng.integers(1, 3) if rng.random() < 0.1 else 0) + rng.uniform(0, size * 0.2)
            drift, density, previous = rng.normal(0, 0.05) * pitch, rng.uniform(0.85, 1.0), None
            while True:
                label = self.vocabulary[next(chars)]
                glyph = self._glyph(label, style, size, rng)
                gh, gw = glyph.shape
                if y + gh > end:
                    break
                x = int(centre - gw / 2 + drift * (y - top) / (bottom - top) + rng.normal(0, 0.04) * pitch)
                if not _place(ink, glyph, x, int(y), density):
                    break
                if previous is not None and y > previous[3] and rng.random() < style.connect:
                    _connecting_stroke(ink, previous, (x, int(y), x + gw, int(y) + gh), size, density, rng)
                previous = (x, int(y), x + gw, int(y) + gh)
                codes.append(char_to_code(label))
                boxes.append(previous)
                if rng.random() < style.gloss:
                    self._gloss(ink, rng, style, x + gw + max(2, int(size * 0.08)), int(y), size)
                density = density - rng.uniform(0.0, 0.06) if rng.random() > 0.15 else rng.uniform(0.85, 1.0)
                density = max(density, 0.65)
                y += gh + max(size * float(np.clip(rng.normal(style.gap, 0.1), -0.2, 0.9)), -0.3 * gh)  # always down
        page = self._scan(rng, style, w, h, (px1, py1, px2, py2), ink)
        for _ in range(int(rng.integers(1, 3)) if rng.random() < 0.35 else 0):
            self._seal(page, rng, (px1, py1, px2, py2), size)
        return page, codes, np.asarray(boxes, np.float32).reshape(-1, 4)

    def _glyph(self, label: str, style: BookStyle, size: float, rng: np.random.Generator) -> np.ndarray:
        """The ink mask of one character: its ink form in the book's hand (another brush when the
        hand lacks it), a size that varies along the column, small kana now and then."""
        height = size * float(np.exp(rng.normal(0, 0.18)))
        if label in KANA_SET and rng.random() < 0.2:
            height *= rng.uniform(0.45, 0.65)
        form = ink_form(label, style.font, style.hentaigana, rng)
        for font, char in ((style.font, form), (style.font, label), *((other, label) for other in BRUSH_STYLES)):
            try:
                glyph = reference_glyph(font, char)
            except ValueError:
                continue
            return brush(glyph, height, style.stretch * rng.uniform(0.8, 1.3), style.weight, style.dryness, rng)
        raise ValueError(f"no font has ink for {label!r} ({char_to_code(label)})")

    def _scan(self, rng, style, w, h, paper_box, ink) -> np.ndarray:
        """The scanner bed, the page's paper with its stains, show-through and edge, and the ink."""
        x1, y1, x2, y2 = paper_box
        shade = self._paper_shade(rng, style, w, h)
        page = np.empty((h, w, 3), np.float32)
        page[:] = style.background
        paper = np.asarray(style.paper, np.float32) + shade[:, :, None]
        page[y1:y2, x1:x2] = paper[y1:y2, x1:x2]
        if rng.random() < 0.5:  # the facing page's edge, beyond a gutter shadow
            side = x2 + int(w * rng.uniform(0.005, 0.015)) if rng.random() < 0.5 else 0
            width = int(w * rng.uniform(0.01, 0.03))
            page[y1:y2, side:side + width] = paper[y1:y2, side:side + width] * 0.93
        through = cv2.GaussianBlur(ink[:, ::-1], (0, 0), max(1.0, h / 700)) * rng.uniform(0.0, 0.25)
        alpha = np.maximum(ink, through * (ink < 0.05))[:, :, None]
        faded = np.asarray(style.ink, np.float32) * 0.3 + np.asarray(style.paper, np.float32) * 0.7
        colour = np.where((ink >= 0.05)[:, :, None], np.asarray(style.ink, np.float32), faded)
        inside = np.zeros((h, w, 1), np.float32)
        inside[y1:y2, x1:x2] = 1.0
        page = page * (1 - alpha * inside) + colour * alpha * inside
        return np.clip(page + 0.5, 0, 255).astype(np.uint8)

    def _paper_shade(self, rng, style, w, h) -> np.ndarray:
        """Grey-level offsets of the paper: blotches, grain and a few foxing spots."""
        half = (max(1, w // 2), max(1, h // 2))
        stains = cv2.resize(rng.normal(0, style.stain, size=(6, 4)).astype(np.float32), half,
                            interpolation=cv2.INTER_CUBIC)
        stains += rng.normal(0, style.grain, size=(half[1], half[0])).astype(np.float32)
        spots = np.zeros_like(stains)
        for _ in range(int(rng.integers(0, 8))):
            centre = (int(rng.uniform(0, half[0])), int(rng.uniform(0, half[1])))
            cv2.circle(spots, centre, int(rng.uniform(1, h / 300)), -float(rng.uniform(10, 30)), -1)
        stains += cv2.GaussianBlur(spots, (0, 0), 2)
        return cv2.resize(stains, (w, h), interpolation=cv2.INTER_LINEAR)

    def _gloss(self, ink, rng, style, x, y, size):
        """Unlabelled furigana: one to three tiny kana beside a character, between the columns."""
        for _ in range(int(rng.integers(1, 4))):
            glyph = brush(reference_glyph(style.font, KANA[int(rng.integers(46))]), size * 0.28, 1.0, 0, 0, rng)
            _place(ink, glyph, x, y, 0.9)
            y += glyph.shape[0] + 2

    def _seal(self, page, rng, paper_box, size):
        """A vermilion seal stamped over the page, text included: a bordered square or a circle with
        two to four characters (multiplied into the page, so ink under it stays dark)."""
        x1, y1, x2, y2 = paper_box
        side = int(size * rng.uniform(1.5, 3.5))
        if x2 - x1 <= side or y2 - y1 <= side:
            return
        mask = np.zeros((side, side), np.float32)
        border = max(2, side // 14)
        if rng.random() < 0.7:
            cv2.rectangle(mask, (0, 0), (side - 1, side - 1), 1.0, border)
        else:
            cv2.circle(mask, (side // 2, side // 2), side // 2 - 1, 1.0, border)
        n = 2 if rng.random() < 0.5 else 4
        cell = (side - 4 * border) // 2
        for i in range(n):
            glyph = brush(reference_glyph("kaisho", KANJI[int(rng.integers(len(KANJI)))]),
                          cell if n == 4 else side - 4 * border, 1.0 if n == 4 else 2.0, 1, 0, rng)
            gx = 2 * border + (i % 2) * cell if n == 4 else 2 * border + i * cell
            gy = 2 * border + (i // 2) * cell if n == 4 else 2 * border
            _place(mask, glyph[:side - gy, :side - gx], gx, gy, 1.0)
        x, y = int(rng.uniform(x1, x2 - side)), int(rng.uniform(y1, y2 - side))
        alpha = (mask * rng.uniform(0.6, 0.95))[:, :, None]
        tint = np.asarray(SEAL_RED, np.float32) / 255.0
        roi = page[y:y + side, x:x + side].astype(np.float32)
        page[y:y + side, x:x + side] = np.clip(roi * (1 - alpha + alpha * tint) + 0.5, 0, 255).astype(np.uint8)

    def _illustration(self, ink, rng, x1, y1, x2, y2):
        """Unlabelled ink drawing: strokes, curves and filled shapes in a region of the page."""
        if x2 - x1 < 4 or y2 - y1 < 4:
            return
        for _ in range(int(rng.integers(15, 40))):
            kind = rng.random()
            p = (int(rng.uniform(x1, x2)), int(rng.uniform(y1, y2)))
            if kind < 0.5:
                q = (int(np.clip(p[0] + rng.normal(0, 60), x1, x2)), int(np.clip(p[1] + rng.normal(0, 60), y1, y2)))
                cv2.line(ink, p, q, 0.9, int(rng.integers(1, 5)))
            elif kind < 0.85:
                axes = (int(rng.uniform(10, 80)), int(rng.uniform(10, 80)))
                cv2.ellipse(ink, p, axes, rng.uniform(0, 180), 0, rng.uniform(90, 360), 0.9, int(rng.integers(1, 4)))
            else:
                cv2.circle(ink, p, int(rng.uniform(3, 15)), 0.9, -1)


def _place(layer: np.ndarray, mask: np.ndarray, x: int, y: int, opacity: float) -> bool:
    """Add ``mask`` (uint8) at top-left ``(x, y)`` to the opacity ``layer`` (the darker wins); False if it does not fit."""
    h, w = mask.shape
    if x < 0 or y < 0 or x + w > layer.shape[1] or y + h > layer.shape[0]:
        return False
    roi = layer[y:y + h, x:x + w]
    np.maximum(roi, mask.astype(np.float32) * (opacity / 255.0), out=roi)
    return True


def _connecting_stroke(ink: np.ndarray, above, below, size: float, opacity: float, rng: np.random.Generator) -> None:
    """A thin brush stroke from the foot of the character ``above`` to the head of the one ``below``
    (xyxy boxes), bowed sideways, as a hand that does not lift between them."""
    start = np.array([rng.uniform(above[0], above[2]) * 0.5 + (above[0] + above[2]) * 0.25, above[3] - size * 0.1])
    end = np.array([rng.uniform(below[0], below[2]) * 0.5 + (below[0] + below[2]) * 0.25, below[1] + size * 0.1])
    bow = np.array([rng.normal(0, 0.25) * size, 0.0])
    t = np.linspace(0, 1, 12)[:, None]
    points = (1 - t) ** 2 * start + 2 * t * (1 - t) * ((start + end) / 2 + bow) + t ** 2 * end
    thickness = max(1, int(round(size * rng.uniform(0.02, 0.05))))
    cv2.polylines(ink, [points.round().astype(np.int32)], False, float(opacity * 0.85), thickness, cv2.LINE_AA)


def _write_jpeg(path: Path, image: np.ndarray, quality: int = 90) -> None:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"{path}: JPEG encoding failed")
    path.write_bytes(data.tobytes())


def generate(
    out: str | Path, pages: int = 40, seed: int = 0, test_pages: int | None = None, books: int | None = None,
    height: int = 1536, vocabulary: str = DEFAULT_VOCABULARY, styles: Sequence[str] | None = None,
    held_out_hand: str | None = None,
) -> Path:
    """Write a Kaggle-layout dataset of ``pages`` train pages and ``test_pages`` test pages to ``out``.

    ``books`` (default: one per 8 train pages, at least 3) sets how many books the train pages are
    spread over; test pages come from books of their own. ``height`` is the page height in pixels
    (widths follow each book's aspect ratio, about 0.6). ``vocabulary`` is the string of characters
    to draw, most frequent first; ``styles`` the hands books may be written in (default: every one of
    :data:`STYLE_WEIGHTS`, at those weights). With ``held_out_hand`` (one of them), no train book is written in that
    hand and every test book is: test pages in a hand no model trained on, a stand-in for a real book unlike the
    training books, to measure adaptation without a real label. Returns ``out``.
    """
    if pages < 1:
        raise ValueError("pages must be at least 1")
    out = Path(out)
    test_pages = max(1, pages // 4) if test_pages is None else test_pages
    books = books or max(3, math.ceil(pages / 8))
    renderer = test_renderer = PageRenderer(vocabulary, height, styles=styles)
    if held_out_hand is not None:
        if held_out_hand not in renderer.styles:
            raise ValueError(f"held_out_hand must be one of {', '.join(renderer.styles)}, not {held_out_hand!r}")
        if len(renderer.styles) == 1:
            raise ValueError(f"held_out_hand {held_out_hand!r} would leave the train books no hand")
        renderer = PageRenderer(vocabulary, height, styles=[style for style in renderer.styles if style != held_out_hand])
        test_renderer = PageRenderer(vocabulary, height, styles=[held_out_hand])
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
        pages_renderer = renderer if index < pages else test_renderer
        image, codes, boxes = pages_renderer.render(rng, *pages_renderer.book_style(book, seed))
        _write_jpeg(out / folder / f"{image_id}.jpg", image)
        rows.append((image_id, format_labels(codes, xyxy_to_xywh(boxes))))
    columns = ["image_id", "labels"]
    pd.DataFrame(train_rows, columns=columns).to_csv(out / "train.csv", index=False)
    pd.DataFrame(test_rows, columns=columns).to_csv(out / "test_solution.csv", index=False)
    pd.DataFrame({"image_id": [r[0] for r in test_rows], "labels": ""}).to_csv(out / "sample_submission.csv", index=False)
    pd.DataFrame({"Unicode": [char_to_code(c) for c in vocabulary], "char": list(vocabulary)}).to_csv(
        out / "unicode_translation.csv", index=False)
    return out


def synthetic_class_table(vocabulary: str = DEFAULT_VOCABULARY) -> list[str]:
    """The code points of the ``unicode_translation.csv`` that :func:`generate` writes for ``vocabulary``."""
    return [char_to_code(c) for c in vocabulary]


def ensure_dataset(data_dir: str | Path, **kwargs) -> Path:
    """Generate the synthetic dataset (:func:`generate` with ``kwargs``) into ``data_dir`` unless it already holds a
    ``train.csv`` (a warning says when that one holds another number of ``pages`` than asked for: it is used as it is).

    Atomic: the pages are written into a temporary folder beside ``data_dir`` and renamed into place, so a reader
    never sees half a dataset, an interrupted run leaves nothing the next one takes for data, and of several
    processes generating at once (one per node under DDP) the first to finish wins and the others discard theirs.
    """
    data_dir = Path(data_dir)
    if (data_dir / "train.csv").is_file():
        if "pages" in kwargs:
            with open(data_dir / "train.csv", encoding="utf-8") as rows:
                held = sum(1 for _ in rows) - 1
            if held != kwargs["pages"]:
                log.warning("%s holds %d train pages, not the %d asked for; they are used as they are (delete the "
                            "folder to generate %d)", data_dir, held, kwargs["pages"], kwargs["pages"])
        return data_dir
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_partials(data_dir.parent)
    partial = data_dir.with_name(partial_name(f".{data_dir.name}"))
    log.info("generating a synthetic dataset in %s", data_dir)
    try:
        generate(partial, **kwargs)
        if data_dir.is_dir() and not any(data_dir.iterdir()):
            data_dir.rmdir()
        try:
            partial.rename(data_dir)
        except OSError:
            if not (data_dir / "train.csv").is_file():
                raise OSError(f"{data_dir} exists and holds no train.csv: cannot put the synthetic dataset there") from None
            log.info("%s was generated by another process meanwhile; using it", data_dir)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return data_dir
