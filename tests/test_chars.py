"""Character crops: geometry, the decode-once cache, negatives, bad input, sampling, the DataModule."""

import logging
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

import kuzu_lightning.data.crop_cache as crop_cache
from kuzu_lightning.data.box_jitter import BoxJitter
from kuzu_lightning.data.chars import CharDataModule, sampling_weights
from kuzu_lightning.data.crop_cache import CropCache, CropSpec, context_pad, crop_square, unk_boxes
from kuzu_lightning.data.kaggle import Page, load_train_pages
from kuzu_lightning.data.vocabulary import UNK, Vocabulary
from kuzu_lightning.error_budget import box_errors
from kuzu_lightning.geometry import CROP_MARGIN
from kuzu_lightning.synthetic.generator import DEFAULT_VOCABULARY


def test_crop_is_centred_square_and_keeps_the_aspect_ratio():
    page = np.full((300, 400, 3), 255, np.uint8)
    page[100:220, 180:220] = 0  # a 40 x 120 ink box
    crop = crop_square(page, np.array([180, 100, 220, 220]), size=60, margin=0.0)
    ink = np.argwhere(crop[:, :, 0] < 128)
    assert crop.shape == (60, 60, 3)
    assert ink[:, 0].min() <= 1 and ink[:, 0].max() >= 58  # full height
    width = ink[:, 1].max() - ink[:, 1].min() + 1
    assert abs(width - 20) <= 2 and abs((ink[:, 1].min() + ink[:, 1].max()) / 2 - 29.5) <= 1  # 40/120 of 60, centred


def test_crop_beyond_the_page_repeats_its_edge():
    page = np.full((50, 50, 3), 200, np.uint8)
    crop = crop_square(page, np.array([0, 0, 10, 10]), size=32, margin=0.5)
    assert (crop == 200).all()


def test_unk_boxes_are_not_centred_on_labelled_characters():
    rng = np.random.default_rng(0)
    page = np.full((400, 300, 3), 230, np.uint8)
    page[50:80, 50:80] = 0  # a labelled character
    page[50:65, 85:92] = 0  # unlabeled ink beside it, like a furigana gloss
    labelled = np.array([[50, 50, 80, 80]], np.float32)
    boxes = unk_boxes(page, labelled, 20, rng)
    assert len(boxes) == 20
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    inside = (centres[:, 0] >= 50) & (centres[:, 0] <= 80) & (centres[:, 1] >= 50) & (centres[:, 1] <= 80)
    assert not inside.any()
    on_ink = (centres[:, 0] >= 85) & (centres[:, 0] <= 92) & (centres[:, 1] >= 50) & (centres[:, 1] <= 65)
    assert on_ink.sum() >= 5  # half the draws aim at unlabeled ink
    interior = (boxes[:, :2] > 0).all(1) & (boxes[:, 2] < 300) & (boxes[:, 3] < 400)  # edge boxes are clipped
    assert interior.sum() >= 10
    np.testing.assert_allclose(boxes[interior, 2:] - boxes[interior, :2], 30, atol=1e-4)  # sized like the characters


def test_each_page_is_decoded_once_for_all_its_crops(synthetic_dir, tmp_path, monkeypatch):
    calls = []
    decode = crop_cache.decode_page
    monkeypatch.setattr(crop_cache, "decode_page", lambda path, **kw: calls.append(path) or decode(path, **kw))
    pages = load_train_pages(synthetic_dir)
    spec = CropSpec(size=32, unk_per_page=3)
    cache = CropCache.ensure(pages, spec, tmp_path)
    assert sorted(calls) == sorted(p.image_path for p in pages)
    assert len(cache) == sum(len(p) for p in pages) + 3 * len(pages)
    assert cache.crops.shape == (len(cache), 32, 32, 3)
    first = pages[0]
    rows = np.flatnonzero(cache.page == 0)
    assert cache.codes[rows[:len(first)]].tolist() == first.codes and (cache.codes[rows[len(first):]] == UNK).all()
    np.testing.assert_array_equal(cache.boxes[rows[:len(first)]], first.boxes)
    calls.clear()
    again = CropCache.ensure(pages, spec, tmp_path)  # cached: nothing decoded again
    assert calls == [] and again.directory == cache.directory
    assert CropCache.ensure(pages, CropSpec(size=40), tmp_path).directory != cache.directory


def test_a_page_that_fails_to_decode_is_a_logged_skip(synthetic_dir, tmp_path, caplog):
    pages = load_train_pages(synthetic_dir)[:3]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    pages[1] = Page(pages[1].image_id, pages[1].codes, pages[1].boxes, broken)
    with caplog.at_level(logging.ERROR):
        cache = CropCache.ensure(pages, CropSpec(size=32), tmp_path / "cache", workers=2)
    assert cache.image_ids == [pages[0].image_id, pages[2].image_id]
    assert f"skipped page {pages[1].image_id}" in caplog.text and "broken.jpg" in caplog.text
    assert "1 of 3 page(s) failed to decode" in caplog.text


def test_sampling_weights_for_the_long_tail():
    labels = np.array([0] * 90 + [1] * 9 + [2])
    natural, n = sampling_weights(labels)
    assert n == 100 and np.allclose(natural, 1.0)
    balanced, n = sampling_weights(labels, class_balance=1.0)
    per_class = [balanced[labels == c].sum() for c in range(3)]
    assert n == 100 and np.allclose(per_class, 100 / 3)
    floor, n = sampling_weights(labels, min_count=20)
    assert floor[labels == 2].sum() == pytest.approx(20) and floor[labels == 0].sum() == pytest.approx(90)
    assert n == 90 + 20 + 20


@pytest.fixture(scope="module")
def datamodule(synthetic_dir, module_dir):
    module = CharDataModule(str(synthetic_dir), input_size=32, batch_size=8, val_pages_per_batch=2, num_workers=0,
                            n_folds=3, unk_per_page=4, cache_dir=str(module_dir("cache")))
    module.prepare_data()
    module.setup("fit")
    return module


def test_datamodule_splits_by_book_and_links_its_classes(datamodule):
    cache = datamodule.cache
    train_books = {cache.image_ids[p].split("_")[0] for p in np.unique(cache.page[datamodule.train_rows])}
    val_books = {cache.image_ids[p].split("_")[0] for p in datamodule.val_cache_pages}
    assert len(val_books) == 1 and train_books.isdisjoint(val_books) and len(train_books) == 2
    assert datamodule.codes[-1] == UNK and len(datamodule.codes) == len(DEFAULT_VOCABULARY) + 1


def test_synthetic_data_is_generated_by_prepare_data_and_its_classes_are_known_before(tmp_path):
    data_dir = tmp_path / "synthetic"
    module = CharDataModule(str(data_dir), input_size=32, num_workers=0, n_folds=3, unk_per_page=2, synthetic_pages=3)
    assert not data_dir.exists()  # nothing written when it is made: under DDP every process makes one
    before = list(module.codes)  # the class table, for the model, before the data exists
    module.prepare_data()  # on one process per node
    assert (data_dir / "train.csv").is_file()
    assert before == Vocabulary.from_csv(data_dir / "unicode_translation.csv", unk=True).codes


def test_training_and_page_batches(datamodule):
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["images"].shape == (8, 3, 32, 32) and batch["images"].dtype == torch.uint8
    assert batch["labels"].shape == (8,) and batch["labels"].max() < len(datamodule.codes)
    pages = next(iter(datamodule.val_dataloader()))
    n = len(pages["labels"])
    assert pages["images"].shape == (n, 3, 32, 32) and pages["boxes"].shape == (n, 4)
    assert len(pages["image_ids"]) == 2 and set(pages["page"].tolist()) == {0, 1}
    assert (~pages["is_char"]).sum() == 8  # 4 unk crops per page
    codes = [datamodule.codes[i] for i in pages["labels"][pages["is_char"]].tolist()]
    assert UNK not in codes


def test_code_points_outside_the_class_table_are_logged_and_dropped(synthetic_dir, tmp_path, caplog):
    data = shutil.copytree(synthetic_dir, tmp_path / "data", ignore=shutil.ignore_patterns("cache"))
    train = pd.read_csv(data / "train.csv")
    train.loc[0, "labels"] += " U+9999 5 5 20 20"
    train.to_csv(data / "train.csv", index=False)
    with caplog.at_level(logging.WARNING):
        module = CharDataModule(str(data), input_size=32, num_workers=0, n_folds=3)
        module.setup("fit")
    assert "dropped 1 character(s)" in caplog.text and "U+9999" in caplog.text and "row 2" in caplog.text
    assert "U+9999" not in module.cache.codes


def test_an_interrupted_build_is_cleaned_up_and_the_key_is_the_resolved_path(synthetic_dir, tmp_path, monkeypatch):
    pages = load_train_pages(synthetic_dir)[:2]
    abandoned = tmp_path / "crops-32px-0123456789abcdef.partial-999999999"  # no such process
    abandoned.mkdir()
    (abandoned / "crops.u8").write_bytes(b"half")
    cache = CropCache.ensure(pages, CropSpec(size=32), tmp_path)
    assert not abandoned.exists() and cache.directory.is_dir()
    monkeypatch.chdir(synthetic_dir.parent)  # the same images, spelled relative to here
    relative = [Page(p.image_id, p.codes, p.boxes, p.image_path.relative_to(synthetic_dir.parent)) for p in pages]
    assert CropCache.ensure(relative, CropSpec(size=32), tmp_path).directory == cache.directory


def test_training_pages_without_a_usable_box_are_a_clear_error(synthetic_dir, tmp_path):
    data = shutil.copytree(synthetic_dir, tmp_path / "data", ignore=shutil.ignore_patterns("cache"))
    train = pd.read_csv(data / "train.csv")
    train["labels"] = ""
    train.to_csv(data / "train.csv", index=False)
    module = CharDataModule(str(data), input_size=32, num_workers=0, n_folds=3)
    with pytest.raises(ValueError, match=r"train.csv: its training pages hold no character crop to train on"):
        module.setup("fit")


def test_training_draws_are_a_function_of_seed_epoch_and_position(datamodule):
    def first_batches(loader, epoch, count=3):
        loader.sampler.set_epoch(epoch)
        batches = iter(loader)
        return [next(batches)["images"] for _ in range(count)]

    loader = datamodule.train_dataloader()
    epoch1 = first_batches(loader, 1)
    assert not torch.equal(first_batches(loader, 0)[0], epoch1[0])  # each epoch its own order and augmentation
    again = first_batches(datamodule.train_dataloader(), 1)  # a new loader (a resumed run's) draws the same
    assert all(torch.equal(a, b) for a, b in zip(epoch1, again))
    resumed = datamodule.train_dataloader()
    resumed.sampler.resume(epoch=1, position=2 * datamodule.hparams.batch_size)
    assert torch.equal(first_batches(resumed, 1, count=1)[0], epoch1[2])  # starts at the third batch


def test_box_jitter_draws_the_detector_errors_it_is_given():
    budget = {"val/budget/centre_dx": 0.07, "val/budget/centre_dx_mean": 0.02, "val/budget/centre_dy": 0.15,
              "val/budget/centre_dy_mean": -0.02, "val/budget/log_width": 0.2, "val/budget/log_width_mean": 0.07,
              "val/budget/log_height": 0.26, "val/budget/log_height_mean": -0.13, "val/budget/median_iou": 0.56}
    jitter = BoxJitter.from_budget(budget)
    assert jitter.log_height == (-0.13, 0.26)
    true = np.tile(np.array([[100.0, 200.0, 140.0, 280.0]]), (20000, 1))
    moved = jitter.boxes(true, np.random.default_rng(0))
    errors = box_errors(torch.from_numpy(moved), torch.from_numpy(true)).numpy()
    np.testing.assert_allclose(errors.mean(0), [0.02, -0.02, 0.07, -0.13], atol=0.006)
    np.testing.assert_allclose(errors.std(0), [0.07, 0.15, 0.2, 0.26], rtol=0.04)  # clipped at 3 std: ~1.3% less
    assert np.abs(errors[:, 3] + 0.13).max() <= 3 * 0.26 + 1e-9
    with pytest.raises(KeyError, match="lacks log_height, log_height_mean"):
        BoxJitter.from_budget({key: value for key, value in budget.items() if "log_height" not in key})


@pytest.fixture
def inked_page():
    """A 400 x 300 page of smooth random ink, so that every pixel of a crop tells where it was cut."""
    noise = np.random.default_rng(0).random((400, 300, 3)) * 255
    return cv2.GaussianBlur(noise, (0, 0), 3).astype(np.uint8)


@pytest.mark.parametrize("box, size", [((100, 120, 140, 200), 48), ((100, 120, 110, 130), 48),
                                       ((10, 10, 200, 390), 96)])
def test_a_crop_with_context_holds_the_crop_without_in_its_centre(inked_page, box, size):
    box, pad = np.array(box, np.float32), context_pad(size, 2.0)
    wide = crop_square(inked_page, box, size, 0.15, pad)
    assert pad == size // 2 and wide.shape == (2 * size, 2 * size, 3)
    centre = wide[pad:pad + size, pad:pad + size].astype(int)
    assert np.abs(centre - crop_square(inked_page, box, size, 0.15)).max() <= 1  # cv2's fixed-point rounding


def test_a_cached_crop_is_recut_around_a_moved_box_as_if_cut_from_the_page(inked_page, tmp_path):
    image = tmp_path / "page.jpg"
    cv2.imwrite(str(image), inked_page[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100])
    page_pixels = crop_cache.decode_page(image)
    boxes = np.array([[100, 120, 140, 200], [150, 50, 210, 90]], np.float32)
    page = Page("book_1", ["U+3042", "U+3044"], boxes, image)
    cache = CropCache.ensure([page], CropSpec(size=48, context=2.0), tmp_path / "cache")
    assert cache.pad == 24 and cache.crops.shape == (2, 96, 96, 3) and cache.exact(slice(0, 2)).shape == (2, 48, 48, 3)
    for row, moved in [(0, (106, 110, 150, 190)), (1, (140, 58, 204, 102))]:
        expected = crop_square(page_pixels, np.array(moved, np.float32), 48, CROP_MARGIN).astype(int)
        recut = cache.recut(row, np.array(moved, np.float32), CROP_MARGIN).astype(int)
        unmoved = np.abs(cache.exact(row).astype(int) - expected).mean()  # how far the true box's crop is
        assert np.abs(recut - expected).mean() < min(2.5, unmoved / 4)  # resampled twice, not once
        np.testing.assert_array_equal(cache.recut(row, boxes[row], CROP_MARGIN).shape, (48, 48, 3))
        assert np.abs(cache.recut(row, boxes[row], CROP_MARGIN).astype(int) - cache.exact(row)).mean() < 1


def test_jittered_training_crops_are_drawn_again_each_draw_and_validation_keeps_true_boxes(synthetic_dir, tmp_path):
    budget = {name: 0.1 for name in ("centre_dx", "centre_dy", "log_width", "log_height")}
    budget |= {f"{name}_mean": 0.0 for name in budget}
    module = CharDataModule(str(synthetic_dir), input_size=32, num_workers=0, n_folds=3, box_jitter=budget,
                            cache_dir=str(tmp_path))
    module.setup("fit")
    assert module.cache.pad == 16
    dataset = module.train_dataloader().dataset
    a, b, again = dataset[(0, 1)]["images"], dataset[(0, 2)]["images"], dataset[(0, 1)]["images"]
    assert torch.equal(a, again) and not torch.equal(a, b)  # a function of the draw's seed
    plain = CharDataModule(str(synthetic_dir), input_size=32, num_workers=0, n_folds=3, cache_dir=str(tmp_path))
    plain.setup("fit")
    assert plain.cache.directory != module.cache.directory and plain.cache.pad == 0
    jittered, exact = next(iter(module.val_dataloader())), next(iter(plain.val_dataloader()))
    assert (jittered["images"].int() - exact["images"].int()).abs().max() <= 1
