"""Pages for the detector: ``PageWindowDataset`` (training), ``PageDataset`` (whole pages), ``PageDataModule``.

Two frames matter (see :mod:`kuzu_lightning.geometry`): **original-scan pixels**, the frame of
``train.csv`` and of every prediction that leaves the package, and **the resized page**, scaled so
that its longer side has ``longest_side`` pixels, with ``scale`` = ``(sx, sy)`` = resized size /
original size.

Training batches (:func:`collate_windows`): ``images``, a list of ``3 x H x W`` uint8 RGB windows
of resized pages, and ``targets``, one dict per window with ``boxes`` ``(N, 4)`` float32 xyxy in
window pixels and ``labels`` ``(N,)`` int64 ones (one foreground class); ``N`` may be 0 (a negative).

Page batches (:func:`collate_whole_pages`): ``images``, a list of ``3 x H x W`` uint8 resized pages,
``None`` for a page that failed to decode (logged with its file; ``errors`` holds why, else
``None``); ``scales`` ``B x 2`` float32; ``boxes`` and ``codes``, the ground truth per page, boxes
xyxy in original-scan pixels (empty when unknown); ``sizes`` ``B x 2`` original ``(width, height)``
(0 when unreadable); ``image_ids``; and with ``originals``, the pages at full size (``3 x H x W``
uint8, ``None`` when unreadable).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from kuzu_lightning.data.draws import ResumableDataModule, seeded
from kuzu_lightning.data.images import PageDecodeError, decode_page, read_image_size, resize_longest_side
from kuzu_lightning.data.kaggle import Page, load_test_ids, load_train_split
from kuzu_lightning.data.loaders import evaluation_options, worker_options
from kuzu_lightning.data.page_cache import ensure_resized_pages
from kuzu_lightning.data.transforms import page_train_transform
from kuzu_lightning.geometry import page_scale, proper_boxes, to_resized
from kuzu_lightning.synthetic.generator import ensure_dataset

log = logging.getLogger(__name__)

EVAL_LONGEST_SIDE = 1688
"""The detector's page scale for whole pages: ``2048 * 384 / 466``, so that characters have the size of
the original's training crops."""
N_FOLDS, FOLD = 5, 0
"""The default book-wise split: fold 0 of 5."""


def _chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


class PageWindowDataset(Dataset):
    """Random training windows: ``crops_per_page`` per page and epoch, from resized page images.

    ``pages`` hold boxes in original-scan pixels and image paths of pages already resized (see
    :mod:`~kuzu_lightning.data.page_cache`); ``transform`` crops and augments (see
    :func:`~kuzu_lightning.data.transforms.page_train_transform`). Items are keyed by position, or by
    ``(position, augmentation seed)`` (training draws, see :mod:`~kuzu_lightning.data.draws`).
    """

    def __init__(self, pages: list[Page], transform, crops_per_page: int = 1):
        self.pages, self.transform, self.crops_per_page = pages, transform, crops_per_page

    def __len__(self) -> int:
        return len(self.pages) * self.crops_per_page

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        i = seeded(self.transform, key)
        page = self.pages[i % len(self.pages)]
        image = decode_page(page.image_path)
        height, width = image.shape[:2]
        boxes = proper_boxes(to_resized(page.boxes, page_scale((width, height), (page.width, page.height))),
                             width, height)
        out = self.transform(image=image, bboxes=boxes, labels=np.ones(len(boxes), np.int64))
        crop = out["image"]
        boxes = proper_boxes(np.asarray(out["bboxes"], np.float32).reshape(-1, 4), crop.shape[1], crop.shape[0])
        return {"image": _chw(crop),
                "target": {"boxes": torch.from_numpy(boxes), "labels": torch.ones(len(boxes), dtype=torch.int64)}}


def collate_windows(items: list[dict]) -> dict:
    return {"images": [item["image"] for item in items], "targets": [item["target"] for item in items]}


def page_item(image_id: str, image: np.ndarray, size: tuple[int, int], longest_side: int,
              original: np.ndarray | None = None) -> dict:
    """One page of a page batch (see the module docstring) from its decoded ``image``.

    ``image`` is the page at any scale of the original ``size`` ``(width, height)``; it is brought
    to ``longest_side``. ``original``, the page at full size, is passed on as ``original`` when given.
    """
    image = resize_longest_side(image, longest_side, size)
    item = {"image": _chw(image), "scale": torch.from_numpy(page_scale((image.shape[1], image.shape[0]), size)),
            "size": torch.tensor(size), "image_id": image_id, "error": None}
    if original is not None:
        item["original"] = _chw(original)
    return item


class PageDataset(Dataset):
    """Whole pages resized to ``longest_side`` (reduced JPEG decoding when possible), see the module docstring.

    With ``originals``, each item also holds the page at full size (``original``), decoded once:
    the Recognizer cuts its character crops from it, at the resolution the classifier trained on.
    A page that fails to decode gives ``image=None``, its ``error`` and a logged error naming its
    file, so a prediction over thousands of pages goes on and still accounts for that page.
    """

    def __init__(self, pages: list[Page], longest_side: int, max_pixels: int | None = None, originals: bool = False):
        self.pages, self.longest_side, self.max_pixels, self.originals = pages, longest_side, max_pixels, originals

    def __len__(self) -> int:
        return len(self.pages)

    def __getitem__(self, i: int) -> dict:
        page = self.pages[i]
        try:
            size = read_image_size(page.image_path, self.max_pixels)
            image = decode_page(page.image_path, None if self.originals else self.longest_side, self.max_pixels)
            item = page_item(page.image_id, image, size, self.longest_side, image if self.originals else None)
        except PageDecodeError as error:
            log.error("page %s could not be read, it gets no predictions: %s", page.image_id, error)
            item = {"image": None, "scale": torch.ones(2), "size": torch.zeros(2, dtype=torch.int64),
                    "image_id": page.image_id, "error": str(error)}
            if self.originals:
                item["original"] = None
        item["boxes"] = torch.from_numpy(np.asarray(page.boxes, np.float32).reshape(-1, 4))
        item["codes"] = list(page.codes)
        return item


def collate_whole_pages(items: list[dict]) -> dict:
    batch = {"images": [item["image"] for item in items], "scales": torch.stack([item["scale"] for item in items]),
             "sizes": torch.stack([item["size"] for item in items])}
    for key, name in (("boxes", "boxes"), ("codes", "codes"), ("image_id", "image_ids"), ("error", "errors"),
                      ("original", "originals")):
        if key in items[0]:
            batch[name] = [item[key] for item in items]
    return batch


class PageDataModule(ResumableDataModule):
    """Pages of a Kaggle-layout folder for the detector, split book-wise.

    Args:
        data_dir: the Kaggle-layout folder (``train.csv``, ``train_images/``, ``test_images/``,
            optionally ``sample_submission.csv``, whose order prediction follows).
        train_longest_side: training pages are resized to this longer side (cached once, see
            :mod:`~kuzu_lightning.data.page_cache`).
        crop_heights, crop_size: training windows, see :func:`~kuzu_lightning.data.transforms.page_train_transform`.
        eval_longest_side: validation, test and prediction pages are resized to this longer side
            (None: :data:`EVAL_LONGEST_SIDE`; ``predict.py``: the detector checkpoint's).
        crops_per_page: training crops per page and epoch.
        min_visibility: a cropped box is kept when at least this fraction of it stays visible.
        augment: colour jitter on training crops (the random crop is always applied).
        batch_size: training crops per batch.  eval_batch_size: whole pages per batch.
        num_workers: loader workers; also the processes that build the page cache.
        n_folds, fold, val_books: book-wise K-fold split, or these books held out for validation
            (None: fold 0 of 5; ``predict.py``: the detector checkpoint's).
        cache_dir: where resized pages live (default ``data_dir/cache``).
        synthetic_pages, seed: if > 0 and ``data_dir`` has no ``train.csv``, ``prepare_data`` generates that many
            synthetic pages there (:func:`~kuzu_lightning.synthetic.generator.ensure_dataset`).
        max_pixels: page size limit (default :data:`~kuzu_lightning.data.images.DEFAULT_MAX_PIXELS`).
        originals: whole-page batches also carry each page at full size (``originals``), for the
            Recognizer's character crops.

    :meth:`for_scans` makes one that predicts any list of scans instead of a folder's test pages (``kuzu recognize``).
    """

    def __init__(self, data_dir: str = "data/kaggle", train_longest_side: int = 2048,
                 crop_heights: tuple[int, int] = (400, 533), crop_size: tuple[int, int] = (384, 512),
                 eval_longest_side: int | None = None, crops_per_page: int = 1, min_visibility: float = 0.5,
                 augment: bool = True, batch_size: int = 8, eval_batch_size: int = 2, num_workers: int = 4,
                 n_folds: int | None = None, fold: int | None = None, val_books: list[str] | None = None,
                 cache_dir: str | None = None, synthetic_pages: int = 0, seed: int = 0, max_pixels: int | None = None,
                 originals: bool = False):
        super().__init__()
        self.save_hyperparameters()
        self.hparams.update(eval_longest_side=eval_longest_side or EVAL_LONGEST_SIDE,
                            n_folds=N_FOLDS if n_folds is None else n_folds, fold=FOLD if fold is None else fold)
        # Paths recorded as text, so that checkpoints load with weights_only=True.
        self.hparams.update(data_dir=str(data_dir), cache_dir=str(cache_dir) if cache_dir else None)
        self.data_dir = Path(data_dir)
        self.cache_dir = Path(cache_dir) if cache_dir else self.data_dir / "cache"
        self.scans: list[Page] | None = None  # see for_scans
        self.train_split: list[Page] | None = None  # training pages as listed
        self.train_pages: list[Page] | None = None  # the same, pointing at their resized copies
        self.val_pages: list[Page] | None = None

    def _split(self) -> tuple[list[Page], list[Page]]:
        hp = self.hparams
        return load_train_split(self.data_dir, hp.n_folds, hp.fold, hp.val_books, max_pixels=hp.max_pixels)

    def _cache(self, pages: list[Page]) -> list[Page]:
        return ensure_resized_pages(pages, self.hparams.train_longest_side, self.cache_dir, self.hparams.num_workers,
                                    self.hparams.max_pixels)

    @classmethod
    def for_scans(cls, pages: list[Page], eval_longest_side: int, num_workers: int = 2) -> PageDataModule:
        """A DataModule that predicts ``pages`` (each with its ``image_path``; its ``image_id`` names its outputs),
        one page a batch, resized to ``eval_longest_side`` and at full size (``originals``), for a Recognizer."""
        data = cls(data_dir="", eval_longest_side=eval_longest_side, eval_batch_size=1, num_workers=num_workers,
                   originals=True)
        data.scans = list(pages)
        return data

    def prepare_data(self) -> None:
        if self.scans is not None:
            return
        if self.hparams.synthetic_pages > 0:  # on one process per node, before any reads (Lightning's promise)
            ensure_dataset(self.data_dir, pages=self.hparams.synthetic_pages, seed=self.hparams.seed)
        fitting = self.trainer is None or self.trainer.state.fn == "fit"
        if fitting and (self.data_dir / "train.csv").is_file():
            self._cache(self._split()[0])

    def setup(self, stage: str | None = None) -> None:
        if stage == "predict":
            return
        if self.val_pages is None:
            self.train_split, self.val_pages = self._split()
        if stage in ("fit", None) and self.train_pages is None:
            self.train_pages = self._cache(self.train_split)
            log.info("%d training pages, %d validation pages", len(self.train_pages), len(self.val_pages))

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        dataset = PageWindowDataset(self.train_pages, page_train_transform(tuple(hp.crop_size), tuple(hp.crop_heights),
                                                                         hp.min_visibility, augment=hp.augment),
                                  hp.crops_per_page)
        return DataLoader(dataset, batch_size=hp.batch_size, sampler=self.training_draws(len(dataset)), drop_last=True,
                          collate_fn=collate_windows, **worker_options(hp.num_workers))

    def _pages_loader(self, pages: list[Page]) -> DataLoader:
        dataset = PageDataset(pages, self.hparams.eval_longest_side, self.hparams.max_pixels, self.hparams.originals)
        return DataLoader(dataset, batch_size=self.hparams.eval_batch_size, collate_fn=collate_whole_pages,
                          **evaluation_options(len(dataset), self.hparams.num_workers))

    def val_dataloader(self) -> DataLoader:
        return self._pages_loader(self.val_pages)

    test_dataloader = val_dataloader

    def predict_pages(self) -> list[Page]:
        """The pages to predict: the scans of :meth:`for_scans`, else the test pages, every id of
        ``sample_submission.csv`` in its order (else every ``test_images/*.jpg``)."""
        if self.scans is not None:
            return self.scans
        image_dir = self.data_dir / "test_images"
        return [Page(image_id, image_path=image_dir / f"{image_id}.jpg") for image_id in load_test_ids(self.data_dir)]

    def predict_dataloader(self) -> DataLoader:
        return self._pages_loader(self.predict_pages())
