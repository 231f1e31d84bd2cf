"""The real Kaggle sample in the real data folder (skipped when absent): loads exactly and sits on its pages."""

import numpy as np

from kuzu_lightning.data.images import decode_page
from kuzu_lightning.data.kaggle import load_test_ids, load_train_pages, read_codh_coordinates, read_labels_csv
from kuzu_lightning.data.vocabulary import Vocabulary


def test_the_464_real_boxes_load_and_lie_on_their_pages(real_dir, caplog):
    vocabulary = Vocabulary.from_csv(real_dir / "unicode_translation.csv")
    assert len(vocabulary) == 4781
    pages = load_train_pages(real_dir, vocabulary)
    assert not caplog.records  # no box clipped or dropped, no page skipped
    assert len(pages) == 5 and sum(len(p) for p in pages) == 464
    assert len({c for p in pages for c in p.codes}) == 179
    for page in pages:
        assert 2300 < page.width < 2500 and 3800 < page.height < 3950
        assert (page.boxes[:, :2] >= 0).all()
        assert (page.boxes[:, 2] <= page.width).all() and (page.boxes[:, 3] <= page.height).all()
        assert (page.boxes[:, 2:] > page.boxes[:, :2]).all()


def test_codh_coordinates_hold_the_same_boxes_as_train_csv(real_dir):
    kaggle = {p.image_id: p for p in read_labels_csv(real_dir / "train.csv")}
    codh = {p.image_id: p for p in read_codh_coordinates(real_dir / "codh" / "100241706_coordinate.csv")}
    page = "100241706_00004_2"
    def as_set(p):
        return sorted(zip(p.codes, map(tuple, p.boxes.tolist())))

    assert as_set(codh[page]) == as_set(kaggle[page])
    assert sum(len(p) for p in codh.values()) == 464


def test_real_pages_decode_at_reduced_size(real_dir):
    page = load_train_pages(real_dir)[0]
    image = decode_page(page.image_path, longest_side=1024)
    assert image.shape[0] == 1024 and abs(image.shape[1] - round(page.width * 1024 / page.height)) <= 1
    assert image.dtype == np.uint8 and 100 < image.mean() < 250
    assert load_test_ids(real_dir) == ["test_24ace5cc", "test_adf346d4"]
