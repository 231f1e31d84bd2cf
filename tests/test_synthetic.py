"""The built-in synthetic dataset: Kaggle layout, labels on the ink, books, determinism."""

import filecmp
import logging
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from kuzu_lightning.data.images import decode_page
from kuzu_lightning.data.kaggle import load_test_ids, load_train_pages, read_labels_csv, read_sample_submission
from kuzu_lightning.data.splits import book_kfold
from kuzu_lightning.data.vocabulary import Vocabulary
from kuzu_lightning.synthetic import generator as synthetic
from kuzu_lightning.synthetic.fonts import STYLES
from kuzu_lightning.synthetic.generator import DEFAULT_VOCABULARY, PageRenderer, ensure_dataset, generate
from kuzu_lightning.synthetic.glyphs import reference_glyph
from kuzu_lightning.tools.kuzu import run


def test_writes_the_kaggle_layout(synthetic_dir):
    for name in ("train.csv", "unicode_translation.csv", "sample_submission.csv", "test_solution.csv"):
        assert (synthetic_dir / name).is_file()
    assert len(list((synthetic_dir / "train_images").glob("*.jpg"))) == 9
    test_ids = read_sample_submission(synthetic_dir / "sample_submission.csv")
    assert sorted(test_ids) == sorted(p.stem for p in (synthetic_dir / "test_images").glob("*.jpg"))
    assert all(i.startswith("test_") for i in test_ids)
    assert [p.image_id for p in read_labels_csv(synthetic_dir / "test_solution.csv")] == test_ids
    assert (pd.read_csv(synthetic_dir / "sample_submission.csv", keep_default_na=False)["labels"] == "").all()


def test_labels_load_cleanly_through_the_data_layer(synthetic_dir, caplog):
    vocabulary = Vocabulary.from_csv(synthetic_dir / "unicode_translation.csv")
    assert len(vocabulary) == len(DEFAULT_VOCABULARY) >= 200
    pages = load_train_pages(synthetic_dir, vocabulary)  # raises on a code point outside the table
    assert len(pages) == 9 and not caplog.records  # nothing clipped, dropped or skipped
    assert all(len(page) >= 20 for page in pages)
    assert len({c for page in pages for c in page.codes}) > 50


def test_every_box_is_on_its_page_and_holds_ink(synthetic_dir):
    for page in load_train_pages(synthetic_dir):
        image = decode_page(page.image_path).astype(np.float32).mean(axis=2)
        assert image.shape == (page.height, page.width) == (640, image.shape[1])
        boxes = page.boxes.astype(int)
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= page.width).all() and (boxes[:, 3] <= page.height).all()
        paper = np.median(image)  # most of a scan is paper; the scanner bed around it is darker
        inside = np.zeros(image.shape, bool)
        for x1, y1, x2, y2 in boxes:
            inside[y1:y2, x1:x2] = True
            assert image[y1:y2, x1:x2].min() < paper - 60  # each box holds dark ink
        text = np.zeros(image.shape, bool)  # the text area; between boxes: strokes, glosses, seals, drawings
        text[boxes[:, 1].min():boxes[:, 3].max(), boxes[:, 0].min():boxes[:, 2].max()] = True
        ink = image < paper - 60
        assert ink[inside].mean() > 0.1 and ink[inside].mean() > 5 * ink[text & ~inside].mean()


def test_pages_come_from_several_books_that_look_different(synthetic_dir):
    pages = load_train_pages(synthetic_dir)
    books = sorted({p.book for p in pages})
    assert books == ["synth000", "synth001", "synth002"]
    def paper(page):  # the middle rows of the scan: paper, with a minority of ink
        image = decode_page(page.image_path)
        return image[image.shape[0] // 2 - 10:image.shape[0] // 2 + 10].reshape(-1, 3)

    paper = {b: np.median(np.concatenate([paper(p) for p in pages if p.book == b]), 0) for b in books}
    assert min(np.abs(paper[a] - paper[b]).sum() for a in books for b in books if a < b) > 10
    train, val = book_kfold(pages, 3, 0)
    assert {p.book for p in val}.isdisjoint({p.book for p in train})


def test_same_seed_same_bytes_other_seed_other_pages(tmp_path):
    a = generate(tmp_path / "a", pages=2, test_pages=1, seed=3, height=400)
    b = generate(tmp_path / "b", pages=2, test_pages=1, seed=3, height=400)
    c = generate(tmp_path / "c", pages=2, test_pages=1, seed=4, height=400)
    for name in ("train.csv", "test_solution.csv", "sample_submission.csv", "unicode_translation.csv"):
        assert filecmp.cmp(a / name, b / name, shallow=False)
    for image in (a / "train_images").glob("*.jpg"):
        assert filecmp.cmp(image, b / "train_images" / image.name, shallow=False)
    assert not filecmp.cmp(a / "train.csv", c / "train.csv", shallow=False)


def test_custom_vocabulary_and_the_command_line(tmp_path, capsys):
    run(["synthetic", "--out", str(tmp_path / "kana"), "--pages", "3", "--test_pages", "1", "--height", "400",
          "--vocabulary", "あいうえお"])
    assert "wrote 4 pages" in capsys.readouterr().out
    vocabulary = Vocabulary.from_csv(tmp_path / "kana" / "unicode_translation.csv")
    assert vocabulary.chars == list("あいうえお")
    pages = load_train_pages(tmp_path / "kana", vocabulary)
    assert {c for p in pages for c in p.codes} <= set(vocabulary.codes)
    assert len(load_test_ids(tmp_path / "kana")) == 1


def test_ensure_dataset_generates_only_into_a_folder_without_train_csv(tmp_path, synthetic_dir, caplog):
    made = ensure_dataset(tmp_path / "new", pages=2, test_pages=1, height=400)
    assert len(read_labels_csv(made / "train.csv")) == 2
    before = (synthetic_dir / "train.csv").stat().st_mtime_ns
    assert ensure_dataset(synthetic_dir, pages=2) == synthetic_dir
    assert (synthetic_dir / "train.csv").stat().st_mtime_ns == before
    assert "holds 9 train pages, not the 2 asked for; they are used as they are" in caplog.text
    caplog.clear()
    ensure_dataset(made, pages=2)
    assert "asked for" not in caplog.text


def test_ensure_dataset_puts_a_whole_dataset_in_place_and_removes_what_a_killed_run_left(tmp_path, monkeypatch):
    abandoned = tmp_path / ".data.partial-4194305"  # above Linux's largest process id: its writer is gone
    (abandoned / "train_images").mkdir(parents=True)
    generating = synthetic.generate
    seen = []

    def watched(out, **kwargs):
        seen.append((tmp_path / "data").exists())  # nothing under the final name while the pages are written
        return generating(out, **kwargs)

    monkeypatch.setattr(synthetic, "generate", watched)
    ensure_dataset(tmp_path / "data", pages=2, test_pages=1, height=400)
    assert seen == [False] and len(read_labels_csv(tmp_path / "data" / "train.csv")) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_of_two_processes_generating_at_once_the_first_to_finish_wins(tmp_path, monkeypatch, caplog):
    generating = synthetic.generate

    def overtaken(out, **kwargs):  # another process puts its dataset in place while this one writes
        generating(tmp_path / "data", **{**kwargs, "pages": 3})
        return generating(out, **kwargs)

    monkeypatch.setattr(synthetic, "generate", overtaken)
    with caplog.at_level(logging.INFO):
        ensure_dataset(tmp_path / "data", pages=2, test_pages=1, height=400)
    assert len(read_labels_csv(tmp_path / "data" / "train.csv")) == 3  # the other's, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    assert "generated by another process meanwhile" in caplog.text


@pytest.mark.parametrize("font", STYLES)
def test_a_book_in_every_hand_renders_pages_whose_boxes_hold_ink(font):
    renderer = PageRenderer(height=640)
    style, aspect = renderer.book_style(0, seed=0)
    image, codes, boxes = renderer.render(np.random.default_rng(1), replace(style, font=font), aspect)
    grey = image.astype(np.float32).mean(axis=2)
    paper = np.median(grey)
    assert len(codes) == len(boxes) >= 20
    for x1, y1, x2, y2 in boxes.astype(int):
        assert grey[y1:y2, x1:x2].min() < paper - 60


def test_kana_written_as_source_kanji_keep_their_kana_labels(monkeypatch):
    written = []

    def recording(font, char):
        if font == "sousho":  # the book's hand (seals are cut in kaisho)
            written.append(char)
        return reference_glyph(font, char)

    monkeypatch.setattr(synthetic, "reference_glyph", recording)
    renderer = PageRenderer("なはの", height=640)
    style, aspect = renderer.book_style(0, seed=0)
    for rate, forms in ((0.0, set("なはの")), (1.0, set("奈那名難南波者八盤半葉頗乃能野農"))):
        written.clear()
        _, codes, _ = renderer.render(np.random.default_rng(2), replace(style, font="sousho", hentaigana=rate, gloss=0),
                                      aspect)
        assert set(codes) == {"U+306A", "U+306F", "U+306E"}  # the labels are the kana
        assert len(written) >= len(codes) and set(written) == forms  # the ink


def test_a_held_out_hand_writes_every_test_book_and_no_train_book(tmp_path, monkeypatch):
    hands = {"train_images": [], "test_images": []}
    render = PageRenderer.render

    def recording(self, rng, style, aspect):  # the real renderer, its hand noted
        hands["test_images" if self.styles == {"sousho": synthetic.STYLE_WEIGHTS["sousho"]} else "train_images"].append(
            style.font)
        return render(self, rng, style, aspect)

    monkeypatch.setattr(PageRenderer, "render", recording)
    out = generate(tmp_path / "unseen", pages=12, test_pages=3, height=400, held_out_hand="sousho")
    assert len(hands["train_images"]) == 12 and "sousho" not in hands["train_images"]
    assert len(set(hands["train_images"])) > 1 and hands["test_images"] == ["sousho"] * 3
    assert len(list((out / "test_images").glob("*.jpg"))) == 3
    with pytest.raises(ValueError, match="held_out_hand must be one of"):
        generate(tmp_path / "bad", pages=2, height=256, held_out_hand="copperplate")
    with pytest.raises(ValueError, match="no hand"):
        generate(tmp_path / "bad", pages=2, height=256, styles=["sousho"], held_out_hand="sousho")
