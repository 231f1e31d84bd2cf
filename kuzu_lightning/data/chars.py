"""Character crops for the classifier: ``CharCropDataset``, ``CharsByPageDataset``, ``CharDataModule``.

Crops come from a :class:`~kuzu_lightning.data.crop_cache.CropCache`: every page is decoded once,
ever, for all its crops. Pseudo-labelled pages (:mod:`~kuzu_lightning.data.pseudo_labels`) have a cache of
their own, and train beside the labelled ones. Training draws single crops (shuffled, or class-balanced); validation,
test and prediction take whole pages, so that the competition F1 can be computed page by page,
exactly, also when pages are spread over several processes.

Batches are dicts. Training: ``images`` ``B x 3 x S x S`` uint8 RGB, ``labels`` ``B`` class
indices. Pages: the same for all crops of the batch's pages plus ``boxes`` ``B x 4`` (xyxy,
original-scan pixels), ``page`` (index of each crop's page within the batch), ``is_char``
(False for ``unk`` crops) and ``image_ids`` (one per page).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from kuzu_lightning.data.box_jitter import BoxJitter
from kuzu_lightning.data.crop_cache import DETECTED, CropCache, CropSpec
from kuzu_lightning.data.detected_boxes import read_detected_boxes
from kuzu_lightning.data.draws import ResumableDataModule, seeded
from kuzu_lightning.data.kaggle import Page, load_train_split
from kuzu_lightning.data.loaders import evaluation_options, worker_options
from kuzu_lightning.data.pseudo_labels import read_pseudo_labels
from kuzu_lightning.data.transforms import char_strong_transform, char_train_transform
from kuzu_lightning.data.vocabulary import UNK, Vocabulary
from kuzu_lightning.geometry import CROP_MARGIN, CROP_SIZE
from kuzu_lightning.synthetic.generator import ensure_dataset, synthetic_class_table

log = logging.getLogger(__name__)

JITTER_CONTEXT = 2.0
"""With a box jitter, crops are cached with a square twice as wide: a box grown up to twice its size
about its centre is cut from the page (2.6 std of the demo's measured log height error); beyond, the
crop's edge repeats."""


def _to_tensor(crops: np.ndarray) -> torch.Tensor:
    """``N x S x S x 3`` uint8 -> ``N x 3 x S x S`` uint8 tensor (the model normalises)."""
    return torch.from_numpy(np.ascontiguousarray(crops.transpose(0, 3, 1, 2)))


class CharCropDataset(Dataset):
    """Single crops ``rows`` of a cache, with their class indices, augmented by ``transform``.

    With ``jitter`` (a cache cut with context, ``margin`` its crops' margin) each crop is cut around its
    box moved by one draw of the jitter first. Items are keyed by position in ``rows``, or by
    ``(position, augmentation seed)`` (training draws, see :mod:`~kuzu_lightning.data.draws`), which
    seeds the jitter too.
    """

    def __init__(self, cache: CropCache, rows: np.ndarray, labels: np.ndarray, transform=None,
                 jitter: BoxJitter | None = None, margin: float = CROP_MARGIN):
        self.cache, self.rows, self.labels, self.transform = cache, rows, labels, transform
        self.jitter, self.margin = jitter, margin

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        row = self.rows[seeded(self.transform, key)]
        if self.jitter is None:
            crop = self.cache.exact(row)
        else:
            rng = np.random.default_rng(key[1] if isinstance(key, tuple) else None)
            crop = self.cache.recut(row, self.jitter.boxes(self.cache.boxes[row], rng)[0], self.margin)
        if self.transform is not None:
            crop = self.transform(image=crop)["image"]
        return {"images": _to_tensor(crop[None])[0], "labels": int(self.labels[row])}


class ConcatCrops(Dataset):
    """Crop datasets one after the other as one, keyed as :class:`CharCropDataset` (an index, or an index and
    an augmentation seed)."""

    def __init__(self, parts: list[Dataset]):
        self.parts = parts
        self.starts = np.cumsum([0] + [len(part) for part in parts])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, seed = key if isinstance(key, tuple) else (key, None)
        part = int(np.searchsorted(self.starts, index, side="right")) - 1
        local = int(index - self.starts[part])
        return self.parts[part][local if seed is None else (local, seed)]


class CharsByPageDataset(Dataset):
    """All crops of one page per item, labelled ones in their listed order, without its detections (see the
    module docstring)."""

    def __init__(self, cache: CropCache, pages: np.ndarray, labels: np.ndarray):
        self.cache, self.pages, self.labels = cache, pages, labels
        starts = np.searchsorted(cache.page, np.arange(len(cache.image_ids) + 1))
        # a page's detections come last; they are training crops, not the page's characters
        self.spans = [(starts[p], starts[p] + int((cache.kind[starts[p]:starts[p + 1]] != DETECTED).sum()))
                      for p in pages]

    def __len__(self) -> int:
        return len(self.pages)

    def __getitem__(self, i: int) -> dict:
        start, stop = self.spans[i]
        return {
            "images": _to_tensor(self.cache.exact(slice(start, stop))),
            "labels": torch.from_numpy(self.labels[start:stop]),
            "boxes": torch.from_numpy(self.cache.boxes[start:stop]),
            "is_char": torch.from_numpy(self.cache.codes[start:stop] != UNK),
            "image_id": self.cache.image_ids[self.pages[i]],
        }


def collate_chars_by_page(items: list[dict]) -> dict:
    """Concatenate pages' crops; ``page`` says which page of the batch each crop came from."""
    batch = {key: torch.cat([item[key] for item in items]) for key in ("images", "labels", "boxes", "is_char")}
    batch["page"] = torch.cat([torch.full((len(item["labels"]),), i) for i, item in enumerate(items)])
    batch["image_ids"] = [item["image_id"] for item in items]
    return batch


def sampling_weights(labels: np.ndarray, class_balance: float = 0.0, min_count: int = 0) -> tuple[np.ndarray, int]:
    """Per-crop sampling weights and the epoch length for the long tail of classes.

    A class seen ``n`` times gets a share of the epoch proportional to ``n ** (1 - class_balance)``
    (0: natural frequencies, 1: every class equally often), and at least ``min_count`` draws.
    The epoch keeps the dataset's length, plus whatever ``min_count`` adds.
    """
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    share = counts ** (1.0 - class_balance)
    quota = np.maximum(share / share.sum() * len(labels), min(min_count, len(labels)))
    return (quota / counts)[inverse], int(round(quota.sum()))


def with_share(weights: np.ndarray, part: np.ndarray, share: float) -> np.ndarray:
    """``weights`` rescaled so that the items where ``part`` is True take ``share`` of all draws, and the others
    the rest (within each side, in proportion to ``weights``)."""
    return np.where(part, share / weights[part].sum(), (1 - share) / weights[~part].sum()) * weights


class CharDataModule(ResumableDataModule):
    """Character crops of a Kaggle-layout folder, split book-wise.

    Args:
        data_dir: the Kaggle-layout folder (``train.csv``, ``unicode_translation.csv``, ``train_images/``).
        input_size: crop side in pixels (96 as in the original).
        margin: context around each box, as a fraction of its longer side.
        batch_size: training crops per batch.
        val_pages_per_batch: pages per validation/test/predict batch (all their crops).
        num_workers: loader workers; also the processes that build the crop cache.
        n_folds, fold: book-wise K-fold validation split (ignored when ``val_books`` is given).
        val_books: hold these books out for validation instead.
        class_balance, min_count: long-tail sampling, see :func:`sampling_weights`.
        unk_per_page: "not a character" crops per page; > 0 adds the class ``unk`` to the vocabulary.
        augment: training augmentation (:func:`~kuzu_lightning.data.transforms.char_train_transform`).
        box_jitter: the detector's box errors, as ``kuzu validate recognizer``'s error budget prints them
            (``centre_dx`` and ``centre_dx_mean``, ... ``log_height_mean``): each training crop is cut
            around its box moved by a draw of them (:class:`~kuzu_lightning.data.box_jitter.BoxJitter`),
            from a cache kept with :data:`JITTER_CONTEXT` times the context; validation stays on true boxes.
            For when no detected boxes exist.
        detected_boxes: a detected-boxes CSV of the training pages (:mod:`~kuzu_lightning.data.detected_boxes`,
            written by ``kuzu out-of-fold``): their crops train too, each labelled by the
            true box it matches at IoU 0.5 or more, else ``unk`` (which it adds to the vocabulary).
        detected_share: the share of training draws that are detected-box crops (the rest: true boxes and
            ``unk_per_page`` crops, in their natural proportion); class balance applies within each part.
        pseudo_labels: a ``kuzu recognize`` output folder of unlabelled scans (:mod:`~kuzu_lightning.data.pseudo_labels`):
            the characters it read with a class probability of ``pseudo_confidence`` or more train too, as
            read, under the strong augmentation of self-training
            (:func:`~kuzu_lightning.data.transforms.char_strong_transform`); code points outside the class
            table are dropped with a warning. Validation stays on the labelled books.
        pseudo_share: the share of training draws that are pseudo-labelled crops; the labelled crops keep
            their draws per epoch (the epoch grows by ``1 / (1 - pseudo_share)``).
        cache_dir: where crop caches live (default ``data_dir/cache``).
        synthetic_pages: if > 0 and ``data_dir`` has no ``train.csv``, ``prepare_data`` generates that many
            synthetic pages there (:func:`~kuzu_lightning.synthetic.generator.ensure_dataset`); the class table is
            known before, the one the generator writes.
        seed: seed of the synthetic data.
        max_pixels: page size limit (default :data:`~kuzu_lightning.data.images.DEFAULT_MAX_PIXELS`).
    """

    def __init__(self, data_dir: str = "data/kaggle", input_size: int = CROP_SIZE, margin: float = CROP_MARGIN,
                 batch_size: int = 128,
                 val_pages_per_batch: int = 4, num_workers: int = 4, n_folds: int = 5, fold: int = 0,
                 val_books: list[str] | None = None, class_balance: float = 0.0, min_count: int = 0,
                 unk_per_page: int = 0, augment: bool = True, cache_dir: str | None = None, synthetic_pages: int = 0,
                 seed: int = 0, max_pixels: int | None = None, box_jitter: dict[str, float] | None = None,
                 detected_boxes: str | None = None, detected_share: float = 0.5, pseudo_labels: str | None = None,
                 pseudo_confidence: float = 0.9, pseudo_share: float = 0.3):
        super().__init__()
        self.save_hyperparameters()
        # Paths recorded as text, so that checkpoints load with weights_only=True.
        self.hparams.update(data_dir=str(data_dir), cache_dir=str(cache_dir) if cache_dir else None,
                            detected_boxes=str(detected_boxes) if detected_boxes else None,
                            pseudo_labels=str(pseudo_labels) if pseudo_labels else None)
        if not 0 <= detected_share <= 1:
            raise ValueError(f"detected_share must be between 0 and 1, not {detected_share}")
        if not 0 <= pseudo_share < 1:
            raise ValueError(f"pseudo_share must be at least 0 and less than 1, not {pseudo_share}")
        self.data_dir = Path(data_dir)
        self.jitter = BoxJitter.from_budget(box_jitter) if box_jitter else None
        self.spec = CropSpec(input_size, margin, unk_per_page, max_pixels, JITTER_CONTEXT if self.jitter else 1.0)
        self.cache_dir = Path(cache_dir) if cache_dir else self.data_dir / "cache"
        self.cache: CropCache | None = None
        self.pseudo_cache: CropCache | None = None

    @cached_property
    def vocabulary(self) -> Vocabulary:
        """The class table of ``data_dir/unicode_translation.csv``, with ``unk`` when ``unk_per_page`` or
        ``detected_boxes`` give that class; before the synthetic data is generated, the table it will have."""
        hp, table = self.hparams, self.data_dir / "unicode_translation.csv"
        unk = hp.unk_per_page > 0 or bool(hp.detected_boxes)
        if not table.is_file() and hp.synthetic_pages > 0:
            return Vocabulary(synthetic_class_table(), unk=unk)
        return Vocabulary.from_csv(table, unk=unk)

    @property
    def codes(self) -> list[str]:
        """The class list, index -> code point (``unk`` last when enabled): linked to the model."""
        return self.vocabulary.codes

    def _split(self) -> tuple[list[Page], list[Page]]:
        hp = self.hparams
        return load_train_split(self.data_dir, hp.n_folds, hp.fold, hp.val_books, self.vocabulary, on_unknown="drop",
                                max_pixels=self.spec.max_pixels)

    def _cache(self, train_pages: list[Page], val_pages: list[Page]) -> CropCache:
        pages = sorted(train_pages + val_pages, key=lambda page: page.row)  # as train.csv lists them
        detected = None
        if self.detections is not None:
            detected = {page.image_id: self.detections[page.image_id] for page in train_pages
                        if page.image_id in self.detections}
        return CropCache.ensure(pages, self.spec, self.cache_dir, self.hparams.num_workers, detected)

    @cached_property
    def pseudo_pages(self) -> list[Page]:
        """The ``pseudo_labels`` pages with their confident characters in the class table (read once)."""
        pages = read_pseudo_labels(self.hparams.pseudo_labels, self.hparams.pseudo_confidence)
        return [page for page in self.vocabulary.check(pages, on_unknown="drop") if len(page)]

    def _pseudo_cache(self) -> CropCache | None:
        """The crops of the ``pseudo_labels`` pages when training (None otherwise): none drawn as ``unk`` (those
        pages are labelled in part), and no context kept (they train on their boxes as read, unjittered)."""
        fitting = self.trainer is None or self.trainer.state.fn == "fit"
        if not self.hparams.pseudo_labels or not fitting:
            return None
        return CropCache.ensure(self.pseudo_pages, replace(self.spec, unk_per_page=0, context=1.0), self.cache_dir,
                                self.hparams.num_workers)

    @cached_property
    def detections(self) -> dict[str, np.ndarray] | None:
        """The ``detected_boxes`` file's boxes by page (read once), or None without one."""
        if not self.hparams.detected_boxes:
            return None
        found = read_detected_boxes(self.hparams.detected_boxes)
        log.info("%s: detections of %d page(s)", self.hparams.detected_boxes, len(found))
        return found

    def prepare_data(self) -> None:
        if self.hparams.synthetic_pages > 0:  # on one process per node, before any reads (Lightning's promise)
            ensure_dataset(self.data_dir, pages=self.hparams.synthetic_pages, seed=self.hparams.seed)
        self._cache(*self._split())
        self._pseudo_cache()

    def setup(self, stage: str | None = None) -> None:
        if self.cache is not None:
            return
        train_pages, val_pages = self._split()
        self.cache = self._cache(train_pages, val_pages)
        page_of = {image_id: i for i, image_id in enumerate(self.cache.image_ids)}
        train_ids = np.array([page_of[p.image_id] for p in train_pages if p.image_id in page_of], np.int64)
        self.val_cache_pages = np.array([page_of[p.image_id] for p in val_pages if p.image_id in page_of], np.int64)
        self.labels = self.vocabulary.indices(self.cache.codes.tolist())
        self.train_rows = np.flatnonzero(np.isin(self.cache.page, train_ids))
        log.info("%d training crops from %d pages, %d validation pages (%d classes)",
                 len(self.train_rows), len(train_ids), len(self.val_cache_pages), len(self.vocabulary))
        self.pseudo_cache = self._pseudo_cache()
        if self.pseudo_cache is not None:
            log.info("%d pseudo-labelled training crops from %d pages", len(self.pseudo_cache),
                     len(self.pseudo_cache.image_ids))
        if stage in ("fit", None) and not len(self.train_rows):
            raise ValueError(f"{self.data_dir / 'train.csv'}: its training pages hold no character crop to train on "
                             f"({len(train_pages)} page(s) of the training books could be read; see the log above)")

    def train_dataloader(self) -> DataLoader:
        transform = char_train_transform() if self.hparams.augment else None
        dataset = CharCropDataset(self.cache, self.train_rows, self.labels, transform, self.jitter, self.spec.margin)
        weights = length = None
        if self.hparams.class_balance or self.hparams.min_count:
            weights, length = sampling_weights(self.labels[self.train_rows], self.hparams.class_balance,
                                               self.hparams.min_count)
        detected = self.cache.kind[self.train_rows] == DETECTED
        if detected.any() and not detected.all():
            weights = with_share(np.ones(len(detected)) if weights is None else weights, detected,
                                 self.hparams.detected_share)
        if self.pseudo_cache is not None and len(self.pseudo_cache):
            dataset, weights, length = self._with_pseudo_labels(dataset, weights, length)
        draws = self.training_draws(len(dataset), weights, length)
        return DataLoader(dataset, batch_size=self.hparams.batch_size, sampler=draws, drop_last=True,
                          **worker_options(self.hparams.num_workers))

    def _with_pseudo_labels(self, labelled: CharCropDataset, weights: np.ndarray | None,
                            length: int | None) -> tuple[ConcatCrops, np.ndarray, int]:
        """The labelled crops and the pseudo-labelled ones as one training set, with their draws' weights and
        the epoch's length (see ``pseudo_share``)."""
        hp = self.hparams
        labels = self.vocabulary.indices(self.pseudo_cache.codes.tolist())
        pseudo = CharCropDataset(self.pseudo_cache, np.arange(len(labels)), labels,
                                 char_strong_transform() if hp.augment else None)
        pseudo_weights, _ = sampling_weights(labels, hp.class_balance)
        weights = np.concatenate([np.ones(len(labelled)) if weights is None else weights, pseudo_weights])
        weights = with_share(weights, np.arange(len(weights)) >= len(labelled), hp.pseudo_share)
        return ConcatCrops([labelled, pseudo]), weights, round((length or len(labelled)) / (1 - hp.pseudo_share))

    def _pages_loader(self) -> DataLoader:
        return DataLoader(CharsByPageDataset(self.cache, self.val_cache_pages, self.labels),
                          batch_size=self.hparams.val_pages_per_batch, collate_fn=collate_chars_by_page,
                          **evaluation_options(len(self.val_cache_pages), self.hparams.num_workers))

    val_dataloader = test_dataloader = predict_dataloader = _pages_loader
