"""The detector's data: training crops with box-aware augmentation, whole pages, the resized-page cache."""

import logging

import cv2
import numpy as np
import pytest
import torch

from kuzu_lightning.data.kaggle import Page, load_test_ids, load_train_pages
from kuzu_lightning.data.page_cache import ensure_resized_pages
from kuzu_lightning.data.pages import PageDataModule, PageDataset, PageWindowDataset
from kuzu_lightning.data.transforms import page_train_transform
from kuzu_lightning.geometry import proper_boxes


def test_augmentation_keeps_boxes_on_the_ink():
    page = np.full((700, 900, 3), 255, np.uint8)
    box = np.array([[380, 250, 460, 350]], np.float32)  # a filled black character box
    page[250:350, 380:460] = 0
    transform = page_train_transform(crop_size=(192, 256), crop_heights=(200, 266))
    kept = dropped = 0
    for seed in range(60):
        np.random.seed(seed)
        transform.set_random_seed(seed)
        out = transform(image=page, bboxes=box, labels=np.ones(1, np.int64))
        ink = out["image"].min(axis=2) < 100
        if len(out["bboxes"]):
            kept += 1
            x1, y1, x2, y2 = np.asarray(out["bboxes"][0])
            ys, xs = np.nonzero(ink)
            # the ink sits inside the box, and the box hugs the ink (within the resampling blur)
            rim = (slice(max(0, int(y1) - 1), int(np.ceil(y2)) + 1), slice(max(0, int(x1) - 1), int(np.ceil(x2)) + 1))
            assert ink[rim].sum() == ink.sum()
            assert abs(xs.min() - x1) <= 2 and abs(xs.max() + 1 - x2) <= 2
            assert abs(ys.min() - y1) <= 2 and abs(ys.max() + 1 - y2) <= 2
        else:
            dropped += 1  # less than half of the box was visible: at most half its area at the largest zoom
            assert ink.sum() < 0.5 * 80 * 100 * (192 / 200) ** 2 + 2 * (80 + 100)  # plus a blurred rim
    assert kept > 10 and dropped > 10  # both cases were exercised


def test_degenerate_boxes_are_removed_before_torchvision():
    boxes = np.array([[5, 5, 20, 30], [10, 10, 10, 40], [10, 10, 40, 10.5], [-20, 5, -2, 9], [90, 90, 130, 120]],
                     np.float32)
    assert proper_boxes(boxes, 100, 100).tolist() == [[5, 5, 20, 30], [90, 90, 100, 100]]
    assert proper_boxes(np.zeros((0, 4), np.float32), 100, 100).shape == (0, 4)


def test_a_crop_without_boxes_is_a_negative_sample(tmp_path):
    image = np.full((600, 400, 3), 230, np.uint8)
    cv2.imwrite(str(tmp_path / "blank.jpg"), image)
    page = Page("blank", image_path=tmp_path / "blank.jpg", width=400, height=600)
    item = PageWindowDataset([page], page_train_transform((128, 160), (150, 200)))[0]
    assert item["image"].shape == (3, 128, 160) and item["image"].dtype == torch.uint8
    assert item["target"]["boxes"].shape == (0, 4) and item["target"]["labels"].shape == (0,)


def test_training_crops_carry_the_page_boxes_scaled(synthetic_dir, tmp_path):
    pages = load_train_pages(synthetic_dir)[:1]
    cached = ensure_resized_pages(pages, 320, tmp_path)
    identity = page_train_transform(crop_size=(320, 320), crop_heights=(320, 320), augment=False)
    item = PageWindowDataset(cached, identity)[0]
    # the page is 320 px high once resized, so the 320 x 320 window spans its height: y is only scaled
    scale = 320 / pages[0].height
    expected = pages[0].boxes[:, [1, 3]] * scale
    found = item["target"]["boxes"][:, [1, 3]].numpy()
    assert len(found) > 0
    assert all(np.abs(expected - row).sum(axis=1).min() < 0.5 for row in found)


def test_resized_page_cache_is_built_once_and_skips_a_corrupt_page(synthetic_dir, tmp_path, caplog):
    pages = load_train_pages(synthetic_dir)[:3]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(pages[0].image_path.read_bytes()[:300])
    pages.append(Page("broken", image_path=broken, width=10, height=10))
    with caplog.at_level(logging.ERROR):
        cached = ensure_resized_pages(pages, 400, tmp_path / "cache")
    assert [p.image_id for p in cached] == [p.image_id for p in pages[:3]]
    assert "broken" in caplog.text and "1 of 4 page(s)" in caplog.text
    stamps = [p.image_path.stat().st_mtime_ns for p in cached]
    for original, copy in zip(pages, cached):
        image = cv2.imread(str(copy.image_path))
        assert max(image.shape[:2]) == 400
        assert (copy.width, copy.height) == (original.width, original.height)
        assert np.array_equal(copy.boxes, original.boxes)
    again = ensure_resized_pages(pages[:3], 400, tmp_path / "cache")
    assert [p.image_path.stat().st_mtime_ns for p in again] == stamps


def test_half_written_pages_of_an_interrupted_build_are_removed(synthetic_dir, tmp_path):
    pages = load_train_pages(synthetic_dir)[:1]
    folder = tmp_path / "cache" / "pages-400px"
    folder.mkdir(parents=True)
    (folder / f"{pages[0].image_id}.jpg.partial-999999999").write_bytes(b"half a jpeg")  # its process is gone
    cached = ensure_resized_pages(pages, 400, tmp_path / "cache")
    assert sorted(p.name for p in folder.iterdir()) == [cached[0].image_path.name]


def test_whole_pages_are_resized_and_an_unreadable_page_is_kept_empty(synthetic_dir, tmp_path, caplog):
    page = load_train_pages(synthetic_dir)[0]
    (tmp_path / "truncated.jpg").write_bytes(page.image_path.read_bytes()[:2000])
    pages = [page, Page("truncated", image_path=tmp_path / "truncated.jpg"), Page("gone", image_path=tmp_path / "x.jpg")]
    with caplog.at_level(logging.ERROR):
        items = [PageDataset(pages, longest_side=300)[i] for i in range(3)]
    image = items[0]["image"]
    assert max(image.shape[1:]) == 300
    assert items[0]["scale"].tolist() == pytest.approx([image.shape[2] / page.width, image.shape[1] / page.height])
    assert items[0]["size"].tolist() == [page.width, page.height]
    assert np.array_equal(items[0]["boxes"].numpy(), page.boxes)
    assert items[1]["image"] is None and items[2]["image"] is None
    assert "truncated" in caplog.text and "gone" in caplog.text


def test_datamodule_splits_by_book_and_batches_variable_box_counts(synthetic_dir, tmp_path):
    data = PageDataModule(str(synthetic_dir), train_longest_side=400, crop_heights=(150, 200), crop_size=(128, 160),
                          eval_longest_side=360, batch_size=3, num_workers=0, n_folds=3, cache_dir=str(tmp_path))
    data.prepare_data()
    data.setup("fit")
    assert not {p.book for p in data.train_pages} & {p.book for p in data.val_pages}
    batch = next(iter(data.train_dataloader()))
    assert len(batch["images"]) == 3 and all(image.shape == (3, 128, 160) for image in batch["images"])
    counts = [len(t["boxes"]) for t in batch["targets"]]
    assert all(t["labels"].tolist() == [1] * n for t, n in zip(batch["targets"], counts))
    pages = next(iter(data.val_dataloader()))
    assert len(pages["images"]) == 2 and pages["scales"].shape == (2, 2) and len(pages["boxes"]) == 2
    ids = [image_id for batch in data.predict_dataloader() for image_id in batch["image_ids"]]
    assert ids == load_test_ids(synthetic_dir) and len(ids) == 3


def test_synthetic_pages_are_generated_by_prepare_data_not_when_the_datamodule_is_made(tmp_path):
    data = PageDataModule(str(tmp_path / "synthetic"), num_workers=0, n_folds=3, synthetic_pages=3,
                          train_longest_side=400)
    assert not (tmp_path / "synthetic").exists()  # under DDP every process makes one; one per node prepares
    data.prepare_data()
    assert len(load_train_pages(tmp_path / "synthetic")) == 3


def test_a_list_of_scans_is_predicted_in_order_at_full_size_and_at_the_detector_scale(synthetic_dir):
    scans = [Page(f"book/{path.stem}", image_path=path) for path in sorted((synthetic_dir / "test_images").glob("*"))]
    data = PageDataModule.for_scans(scans, eval_longest_side=300, num_workers=0)
    data.prepare_data()
    data.setup("predict")
    batches = list(data.predict_dataloader())
    assert [batch["image_ids"] for batch in batches] == [[page.image_id] for page in scans]  # one page a batch
    for batch, page in zip(batches, scans):
        original = cv2.cvtColor(cv2.imread(str(page.image_path)), cv2.COLOR_BGR2RGB)
        assert np.array_equal(batch["originals"][0].permute(1, 2, 0).numpy(), original)
        assert max(batch["images"][0].shape[1:]) == 300
