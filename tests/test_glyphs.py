"""Brush fonts and glyphs: every style renders from the installed package, hentaigana stand for kana."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kuzu_lightning
from kuzu_lightning.synthetic.fonts import BRUSH_STYLES, STYLES, brush_characters, font_path
from kuzu_lightning.synthetic.generator import DEFAULT_VOCABULARY, KANA, full_vocabulary
from kuzu_lightning.synthetic.glyphs import CURSIVE, brush, hentaigana, ink_form, reference_glyph


@pytest.mark.parametrize("style", STYLES)
def test_every_style_renders_kana_and_kanji_with_ink(style):
    for char in "あなは人御候":
        glyph = reference_glyph(style, char)
        assert glyph.dtype == np.uint8 and glyph.max() > 200 and min(glyph.shape) >= 8
        assert (glyph > 40).mean() > 0.05  # cropped to its ink: no empty margins
    shapes = {reference_glyph(style, char).shape for char in "あなは人御候"}
    assert len(shapes) > 1


def test_the_styles_are_different_hands():
    masks = [reference_glyph(style, "候") for style in STYLES]
    for i, a in enumerate(masks):
        for b in masks[i + 1:]:
            if a.shape == b.shape:
                assert np.abs(a.astype(int) - b.astype(int)).mean() > 5


def test_the_fonts_load_from_the_installed_package_without_network():
    package = Path(kuzu_lightning.__file__).parent
    for style in BRUSH_STYLES:
        assert font_path(style).parent == package / "synthetic" / "brush_fonts"
    script = ("import socket\n"
              "def refuse(*args, **kwargs): raise OSError('no network')\n"
              "socket.socket.connect = refuse; socket.create_connection = refuse; socket.getaddrinfo = refuse\n"
              "from kuzu_lightning.synthetic.glyphs import reference_glyph\n"
              "from kuzu_lightning.synthetic.fonts import STYLES\n"
              "print(sum(int(reference_glyph(s, '奈').max() > 200) for s in STYLES))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == str(len(STYLES))


def test_the_manifest_says_what_each_font_draws():
    counts = {style: len(brush_characters(style)) for style in BRUSH_STYLES}
    assert counts == {"kaisho": 4642, "gyosho": 4380, "sousho": 4448, "soseki": 4403, "kouzan_t": 2845}
    for style in BRUSH_STYLES:
        covered = brush_characters(style)
        assert len(covered) == len(set(covered))
        for char in covered[::97]:
            assert reference_glyph(style, char).max() > 200
        with pytest.raises(ValueError, match="no ink"):
            reference_glyph(style, "A")  # not in the class table: subset away
    with pytest.raises(ValueError, match="no ink"):
        reference_glyph("kouzan_t", "刧")  # mapped to a blank glyph in that font, so not listed
    assert "刧" not in brush_characters("kouzan_t") and "刧" in brush_characters("kaisho")


def test_the_full_vocabulary_is_the_class_table_the_fonts_draw_most_frequent_first():
    vocabulary = full_vocabulary()
    assert vocabulary.startswith(DEFAULT_VOCABULARY)
    assert len(vocabulary) == len(set(vocabulary)) == 4643
    assert set(vocabulary) == set().union(*(brush_characters(s) for s in BRUSH_STYLES))


def test_hentaigana_stand_for_their_kana_in_cursive_hands_only():
    table = hentaigana()
    assert set(table) <= set(KANA) and len(table) == 48
    assert table["な"].startswith("奈") and "者" in table["は"] and "乃" in table["の"]
    rng = np.random.default_rng(0)
    forms = [ink_form("は", "sousho", 1.0, rng) for _ in range(200)]
    assert set(forms) <= set(table["は"]) and len(set(forms)) >= 4
    assert forms.count(table["は"][0]) > forms.count(table["は"][-1])  # the common source kanji first
    assert {ink_form("は", "sousho", 0.0, rng) for _ in range(20)} == {"は"}
    assert all(ink_form("は", style, 1.0, rng) == "は" for style in STYLES if style not in CURSIVE)
    assert ink_form("人", "sousho", 1.0, rng) == "人"  # a kanji is written as itself


def test_brush_scales_thickens_and_dries():
    rng = np.random.default_rng(0)
    glyph = reference_glyph("gyosho", "候")
    small, large = brush(glyph, 24, 1.0, 0, 0, rng), brush(glyph, 96, 1.0, 0, 0, rng)
    assert 0.2 < small.shape[0] / large.shape[0] < 0.3
    narrow = brush(glyph, 96, 1.5, 0, 0, rng)
    assert narrow.shape[1] < large.shape[1] * 0.8
    bold, thin = brush(glyph, 96, 1.0, 2, 0, rng), brush(glyph, 96, 1.0, -1, 0, rng)
    assert (bold > 40).sum() > (large > 40).sum() > (thin > 40).sum()
    dry = brush(glyph, 96, 1.0, 0, 0.8, rng)
    assert (dry > 40).sum() < 0.9 * (large > 40).sum()
    assert brush(reference_glyph("sousho", "の"), 4, 1.0, 0, 0.5, rng).max() > 40  # tiny glyphs keep their ink
