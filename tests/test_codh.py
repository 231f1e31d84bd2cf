"""``kuzu codh``: CODH books (real CSVs in CODH's layout, written from synthetic pages, and the real ``codh-sample``)
as a Kaggle-layout folder that the training data loaders read."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kuzu_lightning.data.formats import DataFormatError
from kuzu_lightning.data.kaggle import load_train_pages, read_labels_csv
from kuzu_lightning.data.real_pages import codh_sample_pages
from kuzu_lightning.data.vocabulary import Vocabulary
from kuzu_lightning.geometry import xyxy_to_xywh


def kuzu_codh(*arguments: str) -> dict:
    from kuzu_lightning.tools.kuzu import run

    return run(["codh", *arguments])


def write_codh_book(folder: Path, book: str, pages, rng: np.random.Generator) -> Path:
    """A CODH book folder of ``pages`` (their scans copied), its CSV's rows shuffled, ``Char ID`` the reading order."""
    (folder / book / "images").mkdir(parents=True)
    rows = []
    for page in pages:
        shutil.copy(page.image_path, folder / book / "images" / f"{page.image_id}.jpg")
        for code, (x, y, w, h) in zip(page.codes, xyxy_to_xywh(page.boxes).round()):
            rows.append({"Unicode": code, "Image": page.image_id, "X": int(x), "Y": int(y), "Block ID": "B1",
                         "Char ID": f"C{len(rows):05d}", "Width": int(w), "Height": int(h)})
    frame = pd.DataFrame(rows).iloc[rng.permutation(len(rows))]
    frame.to_csv(folder / book / f"{book}_coordinate.csv", index=False)
    return folder / book


@pytest.fixture(scope="module")
def books(synthetic_dir, module_dir):
    pages = read_labels_csv(synthetic_dir / "train.csv", synthetic_dir / "train_images")[:5]
    rng = np.random.default_rng(0)
    root = module_dir("codh")
    first = write_codh_book(root, "bookA", pages[:3], rng)
    second = write_codh_book(root, "bookB", pages[3:], rng)
    return first, second, pages


def test_codh_books_become_a_kaggle_folder_in_reading_order(books, tmp_path):
    first, second, pages = books
    (first / "images" / f"{pages[2].image_id}.jpg").rename(first / "gone.jpg")
    try:
        result = kuzu_codh(str(first), str(second), "--out", str(tmp_path / "kaggle"))
    finally:
        (first / "gone.jpg").rename(first / "images" / f"{pages[2].image_id}.jpg")
    kept = [page for page in pages if page is not pages[2]]  # its scan was missing
    assert (result["pages"], result["characters"]) == (4, sum(len(page) for page in kept))
    loaded = load_train_pages(tmp_path / "kaggle", Vocabulary.from_csv(tmp_path / "kaggle" / "unicode_translation.csv"))
    assert [page.image_id for page in loaded] == [page.image_id for page in kept]
    for page, original in zip(loaded, kept):
        assert page.codes == original.codes  # CODH's Char ID order, the synthetic pages' reading order
        np.testing.assert_allclose(page.boxes, original.boxes, atol=1)
        assert (tmp_path / "kaggle" / "train_images" / f"{page.image_id}.jpg").is_symlink()
    table = pd.read_csv(tmp_path / "kaggle" / "unicode_translation.csv")
    assert sorted(table["Unicode"]) == sorted({code for page in kept for code in page.codes})


def test_what_is_no_codh_book_is_an_error_naming_it(books, synthetic_dir, tmp_path):
    first, second, pages = books
    with pytest.raises(DataFormatError, match=f"{tmp_path}: no \\*_coordinate.csv here"):
        kuzu_codh(str(tmp_path), "--out", str(tmp_path / "out"))
    with pytest.raises(DataFormatError, match=f"page {pages[0].image_id} is also in {first}"):
        kuzu_codh(str(first), str(first), "--out", str(tmp_path / "out"))
    small = tmp_path / "small.csv"
    small.write_text("Unicode,char\nU+3042,あ\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bookA_coordinate.csv.*missing from the class table"):
        kuzu_codh(str(first), "--out", str(tmp_path / "out"), "--class_table", str(small))


def test_the_real_codh_sample_converts_with_the_kaggle_class_table(shared_dir, tmp_path):
    books = sorted(path.parent for path in (shared_dir / "codh-sample").glob("*/*_coordinate.csv"))
    table = shared_dir / "kuzushiji-real" / "unicode_translation.csv"
    result = kuzu_codh(*map(str, books), "--out", str(tmp_path / "kaggle"), "--class_table", str(table), "--copy")
    assert (result["books"], result["pages"], result["characters"]) == (5, 5, 828)
    loaded = load_train_pages(tmp_path / "kaggle", Vocabulary.from_csv(tmp_path / "kaggle" / "unicode_translation.csv"))
    expected = codh_sample_pages(shared_dir)
    assert [(page.image_id, page.codes, page.width) for page in loaded] == [
        (page.image_id, page.codes, page.width) for page in expected]
