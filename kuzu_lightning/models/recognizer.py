"""``Recognizer``: trained :class:`CharDetector` and :class:`CharClassifier` models together (one of each, or
ensembles), page scans in, characters out.

For a batch of pages (:mod:`~kuzu_lightning.data.pages` page batches):

1. each detector finds character boxes on each resized page, at each of ``page_scales`` (one page at a time,
   so a page's result never depends on the pages batched with it); boxes go back to **original-scan pixels**;
   the boxes of several detectors or scales are merged by weighted box fusion
   (:func:`~kuzu_lightning.ensemble.fuse_detections`);
2. crops are cut on the tensor around all boxes of a page at once (:func:`~kuzu_lightning.models.crops.cut_crops`),
   from the page at full size when the batch carries ``originals``, else from the resized page, in each of
   ``crop_views`` (:func:`~kuzu_lightning.ensemble.view_boxes`);
3. each classifier labels them in batches (the mean of both heads' softmaxes); probabilities are averaged over
   classifiers and views;
4. detections labelled ``unk`` or below ``min_confidence`` are dropped; at most ``max_characters``
   per page are kept, by detection score; each keeps its ``top_k`` most probable code points (``unk`` is no reading)
   as its alternatives, best first, with their (averaged) probabilities.

``validate`` (``kuzu validate recognizer``, on validation books) logs the end-to-end F1 at the configured
thresholds, the detection-only F1, the F1 per book, the error budget (:mod:`kuzu_lightning.error_budget`,
as ``val/budget/*``) and the end-to-end F1 over the grid ``threshold_grid`` x ``confidence_grid``:
its best as ``val/best_f1`` at ``val/best_detection_threshold`` and ``val/best_min_confidence``
(:attr:`Recognizer.best_thresholds`; ``kuzu validate recognizer --thresholds_out FILE`` writes them as a
config that ``predict`` reads). Thresholds are chosen on validation books, never on test pages.

:meth:`Recognizer.recognize` gives a :class:`~kuzu_lightning.records.RecognizedPage` per page: its
characters (code point, character, centre ``x y`` and box ``x1 y1 x2 y2`` in original-scan pixels,
detection score, class probability, its alternatives, line and place in it), its lines in reading order and its
text.

Both models load from their Lightning checkpoints with ``weights_only=True``; their hyper-parameters and the settings of the
data they were trained with (page scale, crop size and margin) come from the checkpoints.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from jsonargparse.typing import ClosedUnitInterval
from torch import nn
from torch.nn import functional as F

from kuzu_lightning.data.images import decode_page
from kuzu_lightning.data.pages import EVAL_LONGEST_SIDE, collate_whole_pages, page_item
from kuzu_lightning.data.splits import book_id
from kuzu_lightning.ensemble import FUSION_IOU, IDENTITY_VIEW, fuse_detections, view_boxes
from kuzu_lightning.error_budget import ErrorBudget
from kuzu_lightning.geometry import CROP_MARGIN, CROP_SIZE, to_resized
from kuzu_lightning.kuzushiji_f1 import KuzushijiF1
from kuzu_lightning.metrics import MAX_PREDICTIONS_PER_PAGE
from kuzu_lightning.models.checkpoints import checkpoint_paths, load_trained
from kuzu_lightning.models.classifier import CharClassifier
from kuzu_lightning.models.crops import cut_crops
from kuzu_lightning.models.detector import CharDetector
from kuzu_lightning.pretrained import DEFAULT_MODEL, own_thresholds
from kuzu_lightning.records import RecognizedPage, recognized_page
from kuzu_lightning.thresholds import unit_interval

log = logging.getLogger(__name__)


def select(scores: torch.Tensor, boxes: torch.Tensor, probabilities: torch.Tensor, unk_index: int | None,
           min_confidence: float, limit: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which detections become characters: ``(kept indices by descending score, class indices, probabilities)``.

    A detection is dropped when its best class is ``unk_index`` or its probability is below
    ``min_confidence``; of the rest, the ``limit`` best-scoring are kept. Equal scores are ordered
    by the top, then the left of their xyxy ``boxes``, so that the order never depends on how the
    detector happened to list them.
    """
    probability, label = probabilities.max(1)
    keep = probability >= min_confidence
    if unk_index is not None:
        keep &= label != unk_index
    kept = keep.nonzero().flatten()
    for key in (boxes[:, 0], boxes[:, 1], -scores):  # the last sort is the first key
        kept = kept[key[kept].argsort(stable=True)]
    kept = kept[:limit]
    return kept, label[kept], probability[kept]


class Recognizer(L.LightningModule):
    """Detectors + classifiers; see the module docstring.

    Args:
        detector_ckpt, classifier_ckpt: Lightning checkpoints of a ``CharDetector`` and a ``CharClassifier``, or a
            list of each (an ensemble; the classifiers must share one class table); a released model's name stands
            for its checkpoint (:mod:`kuzu_lightning.pretrained`).
        detection_threshold: detections scoring below are ignored (default: a released model's own when both
            checkpoints are that one, else the mean of the detectors' ``detection_threshold``, each chosen on its
            validation books); between 0 and 1.
        min_confidence: characters whose class probability is below are dropped (default: a released model's own
            when both checkpoints are that one, else 0); between 0 and 1.
        max_characters: most characters per page (at most 1200, the submission's limit).
        page_longest_side: the scale pages are detected at (default: the first detector's training
            DataModule's ``eval_longest_side``, else
            :data:`~kuzu_lightning.data.pages.EVAL_LONGEST_SIDE`); used by :meth:`recognize`, and checked against the
            DataModule's in ``predict`` and ``validate``.
        page_scales: the scales, as factors of ``page_longest_side``, each detector reads every page at.
        fusion_iou: the IoU above which boxes of different detectors or scales are one character.
        char_crop_size, char_crop_margin: the classifiers' crops (default: each classifier's training DataModule's
            ``input_size`` and ``margin``, else :data:`~kuzu_lightning.geometry.CROP_SIZE` and
            :data:`~kuzu_lightning.geometry.CROP_MARGIN`).
        crop_views: the views ``(dx, dy, scale)`` each character is classified in, its box shifted by ``dx`` of its
            width and ``dy`` of its height and scaled by ``scale`` (:func:`~kuzu_lightning.ensemble.view_boxes`).
        classify_batch_size: crops per classifier forward pass.
        top_k: the readings each character keeps as its alternatives, best first (at least 1).
        threshold_grid, confidence_grid: the ``detection_threshold`` and ``min_confidence`` values whose every pair
            ``validate`` scores.
    """

    def __init__(self, detector_ckpt: str | list[str], classifier_ckpt: str | list[str],
                 detection_threshold: ClosedUnitInterval | None = None,
                 min_confidence: ClosedUnitInterval | None = None,
                 max_characters: int = MAX_PREDICTIONS_PER_PAGE, page_longest_side: int | None = None,
                 page_scales: tuple[float, ...] = (1.0,), fusion_iou: float = FUSION_IOU,
                 char_crop_size: int | None = None, char_crop_margin: float | None = None,
                 crop_views: tuple[tuple[float, float, float], ...] = (IDENTITY_VIEW,), classify_batch_size: int = 256,
                 top_k: int = 5,
                 threshold_grid: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
                 confidence_grid: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)):
        super().__init__()
        own = own_thresholds(detector_ckpt, classifier_ckpt)
        detection_threshold = (own.get("detection_threshold") if detection_threshold is None
                               else unit_interval("detection_threshold", detection_threshold))
        self.min_confidence = unit_interval("min_confidence", own.get("min_confidence", 0.0) if min_confidence is None
                                            else min_confidence)
        if max_characters > MAX_PREDICTIONS_PER_PAGE:
            raise ValueError(f"max_characters={max_characters} is above the {MAX_PREDICTIONS_PER_PAGE} "
                             "predictions a submission may hold per page")
        if not page_scales or any(scale <= 0 for scale in page_scales):
            raise ValueError(f"page_scales must be one or more factors above 0, not {page_scales}")
        if not crop_views or any(len(view) != 3 or view[2] <= 0 for view in crop_views):
            raise ValueError(f"crop_views must be one or more (dx, dy, scale) with a scale above 0, not {crop_views}")
        if top_k < 1:
            raise ValueError(f"top_k must be 1 or more, not {top_k}")
        self.save_hyperparameters()
        classifier_paths = checkpoint_paths(classifier_ckpt)
        detectors = [load_trained(CharDetector, path) for path in checkpoint_paths(detector_ckpt)]
        classifiers = [load_trained(CharClassifier, path) for path in classifier_paths]
        self.detectors = nn.ModuleList(model for model, _ in detectors)
        self.classifiers = nn.ModuleList(model for model, _ in classifiers)
        self.requires_grad_(False)
        self.codes = self.classifiers[0].codes
        self.unk_index = self.classifiers[0].unk_index
        for path, model in zip(classifier_paths, self.classifiers):
            if model.codes != self.codes:
                raise ValueError(f"{path}: its class table differs from that of {classifier_paths[0]}; the classifiers "
                                 "of an ensemble must share one")
        self.detection_threshold = (float(np.mean([model.detection_threshold for model in self.detectors]))
                                    if detection_threshold is None else detection_threshold)
        self.page_longest_side = (page_longest_side or detectors[0][1].get("eval_longest_side")
                                  or EVAL_LONGEST_SIDE)
        self.crop_settings = [(char_crop_size or data.get("input_size", CROP_SIZE),
                               data.get("margin", CROP_MARGIN) if char_crop_margin is None else char_crop_margin)
                              for _, data in classifiers]
        self.char_crop_size, self.char_crop_margin = self.crop_settings[0]
        self.class_index = {code: i for i, code in enumerate(self.codes)}
        self.val_f1 = KuzushijiF1()
        self.val_detection_f1 = KuzushijiF1(class_agnostic=True)
        self.val_book_f1 = nn.ModuleDict()
        self.val_budget = ErrorBudget(self.unk_index)
        self.grid = [(float(t), float(c)) for t in threshold_grid for c in confidence_grid]
        self.val_grid_f1 = nn.ModuleList(KuzushijiF1() for _ in self.grid)
        self.best_thresholds: dict[str, float] | None = None

    @classmethod
    def from_checkpoints(cls, detector_ckpt: str | Path | Sequence[str | Path],
                         classifier_ckpt: str | Path | Sequence[str | Path], **kwargs) -> Recognizer:
        """A Recognizer of trained checkpoints (a path, or a list of paths, for each model), in eval mode; ``kwargs``
        as for the constructor."""
        def setting(paths):  # the hyper-parameter as saved: a path, or a list of them, as strings
            return str(paths) if isinstance(paths, (str, Path)) else [str(path) for path in paths]

        return cls(setting(detector_ckpt), setting(classifier_ckpt), **kwargs).eval()

    @classmethod
    def from_pretrained(cls, name: str = DEFAULT_MODEL, **kwargs) -> Recognizer:
        """The released model ``name`` (:mod:`kuzu_lightning.pretrained`) at the thresholds it was released with, in
        eval mode; ``kwargs`` as for the constructor (thresholds given here win)."""
        return cls.from_checkpoints(name, name, **kwargs)

    # ------------------------------------------------------------------ the pipeline, in stages

    def detect(self, batch: dict, threshold: float | None = None) -> list[dict[str, torch.Tensor]]:
        """Per page: ``boxes`` (xyxy, original-scan pixels) and ``scores`` of at least ``threshold``
        (default ``detection_threshold``)."""
        threshold = self.detection_threshold if threshold is None else threshold
        pages = []
        for page in range(len(batch["images"])):
            found = fuse_detections([detector.detect(self.page_at_scale(batch, page, factor))[0]
                                     for detector in self.detectors for factor in self.hparams.page_scales],
                                    self.hparams.fusion_iou)
            kept = found["scores"] >= threshold
            pages.append({"boxes": found["boxes"][kept], "scores": found["scores"][kept]})
        return pages

    @staticmethod
    def page_at_scale(batch: dict, page: int, factor: float) -> dict:
        """One page of a page batch as a batch of its own, its resized image scaled by ``factor`` (resampled from
        the page at full size when the batch carries it)."""
        image, scale = batch["images"][page], batch["scales"][page]
        if image is None or factor == 1:
            return {"images": [image], "scales": scale[None]}
        source = image if batch.get("originals") is None else batch["originals"][page]
        size = [max(1, round(side * factor)) for side in image.shape[1:]]
        scaled = F.interpolate(source[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)
        factors = torch.tensor([size[1] / image.shape[2], size[0] / image.shape[1]], dtype=scale.dtype, device=scale.device)
        return {"images": [scaled[0].round().clamp(0, 255).to(torch.uint8)], "scales": (scale * factors)[None]}

    def crops(self, batch: dict, page: int, boxes: torch.Tensor, model: int = 0,
              view: Sequence[float] = IDENTITY_VIEW) -> torch.Tensor:
        """Crops for classifier ``model`` around ``boxes`` (original-scan pixels) of one page of the batch, seen in
        ``view`` (:func:`~kuzu_lightning.ensemble.view_boxes`); see :func:`cut_crops`."""
        size, margin = self.crop_settings[model]
        if tuple(view) != IDENTITY_VIEW:
            boxes = view_boxes(boxes.float(), view)
        originals = batch.get("originals")
        if originals is not None:
            return cut_crops(originals[page], boxes, size, margin)
        return cut_crops(batch["images"][page], to_resized(boxes, batch["scales"][page]), size, margin)

    def classify(self, crops: torch.Tensor, model: int = 0) -> torch.Tensor:
        """Class probabilities ``N x C`` of crops by classifier ``model``, ``classify_batch_size`` at a time."""
        if len(crops) == 0:
            return crops.new_zeros((0, len(self.codes)))
        return torch.cat([self.classifiers[model](chunk) for chunk in crops.split(self.hparams.classify_batch_size)])

    def classify_boxes(self, batch: dict, page: int, boxes: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``N x C`` of the characters in ``boxes`` (original-scan pixels) of one page of the
        batch: the mean over the classifiers and the ``crop_views``."""
        runs = [self.classify(self.crops(batch, page, boxes, model, view), model)
                for model in range(len(self.classifiers)) for view in self.hparams.crop_views]
        return runs[0] if len(runs) == 1 else torch.stack(runs).mean(0)

    def characters(self, found: dict[str, torch.Tensor], probabilities: torch.Tensor, threshold: float,
                   min_confidence: float) -> dict[str, torch.Tensor]:
        """The characters of one page's detections ``found`` (``boxes``, ``scores``) with their class ``probabilities``:
        those scoring ``threshold`` or more, then as :func:`select` keeps them (``boxes``, ``scores``, ``labels``,
        ``probabilities``, best detection first, and their ``rows`` in ``found``)."""
        detected = (found["scores"] >= threshold).nonzero().flatten()
        kept, labels, probability = select(found["scores"][detected], found["boxes"][detected], probabilities[detected],
                                           self.unk_index, min_confidence, self.hparams.max_characters)
        kept = detected[kept]
        return {"boxes": found["boxes"][kept], "scores": found["scores"][kept], "labels": labels,
                "probabilities": probability, "rows": kept}

    def alternatives(self, probabilities: torch.Tensor) -> tuple[list[list[str]], torch.Tensor]:
        """The ``top_k`` most probable code points of each row of ``probabilities`` (``N x C``), ``unk`` left out, and
        their probabilities (``N x k``), best first."""
        if self.unk_index is not None:
            probabilities = probabilities.index_fill(1, torch.tensor([self.unk_index], device=probabilities.device), -1)
        k = min(self.hparams.top_k, len(self.codes) - (self.unk_index is not None))
        top, labels = probabilities.topk(k, dim=1)
        return [[self.codes[j] for j in row] for row in labels.tolist()], top

    def recognize_batch(self, batch: dict, detections: list[dict[str, torch.Tensor]] | None = None) -> list[dict]:
        """Per page of a page batch: ``image_id``, ``size`` (width, height), ``error`` (why the page could not
        be read, else None), and its characters as ``boxes`` (xyxy, original-scan pixels), ``codes``,
        ``scores`` and ``probabilities``, best detection first, and each character's ``alternatives`` (``top_k`` code
        points) with their ``alternative_probabilities`` (see :mod:`kuzu_lightning.records`). ``detections``: the
        batch's :meth:`detect` when it was already run."""
        errors = batch.get("errors") or [None] * len(batch["images"])
        results = []
        for i, found in enumerate(self.detect(batch) if detections is None else detections):
            probabilities = self.classify_boxes(batch, i, found["boxes"])
            page = self.characters(found, probabilities, self.detection_threshold, self.min_confidence)
            alternatives, alternative_probabilities = self.alternatives(probabilities[page.pop("rows")])
            results.append({
                "image_id": batch["image_ids"][i], "size": tuple(batch["sizes"][i].tolist()), "error": errors[i],
                **{key: value.cpu() for key, value in page.items()},
                "codes": [self.codes[j] for j in page["labels"].tolist()],
                "alternatives": alternatives, "alternative_probabilities": alternative_probabilities.cpu(),
            })
        return results

    # ------------------------------------------------------------------ Lightning

    def predict_step(self, batch: dict, batch_idx: int) -> list[dict]:
        return self.recognize_batch(batch)

    def setup(self, stage: str) -> None:
        data = self.trainer.datamodule
        longest = getattr(data, "hparams", {}).get("eval_longest_side")
        if longest is not None and longest != self.page_longest_side:
            log.warning("the DataModule resizes pages to %d px, the detector was validated at %d px: "
                        "characters will not have their training size", longest, self.page_longest_side)
        if stage == "validate" and getattr(data, "val_pages", None) is not None:
            books = sorted({page.book for page in data.val_pages})
            self.val_book_f1 = nn.ModuleDict({book: KuzushijiF1() for book in books})

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        """The competition F1 with classes (also per book and over the threshold grid), the detection-only F1 of the
        same characters and the error budget."""
        lowest = min(self.detection_threshold, *(threshold for threshold, _ in self.grid))
        for i, found in enumerate(self.detect(batch, lowest)):
            truth = {"boxes": batch["boxes"][i],
                     "labels": torch.tensor([self.class_index.get(c, -1) for c in batch["codes"][i]], dtype=torch.long)}
            probabilities = self.classify_boxes(batch, i, found["boxes"])
            page = self.characters(found, probabilities, self.detection_threshold, self.min_confidence)
            metrics = [self.val_f1, self.val_detection_f1]
            book = book_id(batch["image_ids"][i])
            if book in self.val_book_f1:
                metrics.append(self.val_book_f1[book])
            for metric in metrics:
                metric.update([page], [truth])
            for (threshold, confidence), metric in zip(self.grid, self.val_grid_f1):
                metric.update([self.characters(found, probabilities, threshold, confidence)], [truth])
            if batch["images"][i] is None:  # unreadable: its characters are misses in the F1s, not in the budget
                continue
            detected = found["scores"] >= self.detection_threshold
            self.val_budget.update(found["boxes"][detected], probabilities[detected], truth["boxes"], truth["labels"],
                                   self.classify_boxes(batch, i, truth["boxes"].to(found["boxes"])))

    def on_validation_epoch_end(self) -> None:
        scores = self.val_f1.compute()
        self.log_dict({f"val/{name}": value for name, value in scores.items()})
        self.log_dict({f"val/detection_{name}": value for name, value in self.val_detection_f1.compute().items()})
        self.log_dict({f"val/books/{book}/f1": metric.compute()["f1"] for book, metric in self.val_book_f1.items()})
        self.log_dict({f"val/budget/{name}": value for name, value in self.val_budget.compute().items()
                       if not math.isnan(value)})  # undefined figures (no unk class, no match) are left out
        grid = [float(metric.compute()["f1"]) for metric in self.val_grid_f1]
        best = max(range(len(grid)), key=grid.__getitem__)
        self.best_thresholds = {"detection_threshold": self.grid[best][0], "min_confidence": self.grid[best][1],
                                "f1": grid[best]}
        self.log_dict({"val/best_f1": grid[best], "val/best_detection_threshold": self.grid[best][0],
                       "val/best_min_confidence": self.grid[best][1]})
        for metric in (self.val_f1, self.val_detection_f1, self.val_budget, *self.val_book_f1.values(),
                       *self.val_grid_f1):
            metric.reset()

    # ------------------------------------------------------------------ Python API

    @torch.inference_mode()
    def recognize(self, pages: str | Path | np.ndarray | Sequence[str | Path | np.ndarray]
                  ) -> RecognizedPage | list[RecognizedPage]:
        """The :class:`~kuzu_lightning.records.RecognizedPage` of a page (a file path, or an RGB ``uint8`` ``H x W x 3``
        array), or of each page of a list: its characters, its lines in reading order and its text.

        A file that cannot be read raises :class:`~kuzu_lightning.data.images.PageDecodeError`.
        """
        self.eval()
        single = isinstance(pages, (str, Path, np.ndarray))
        results = []
        for n, page in enumerate([pages] if single else pages):
            if isinstance(page, np.ndarray):
                if page.dtype != np.uint8 or page.ndim != 3 or page.shape[2] != 3 or 0 in page.shape:
                    raise ValueError(f"page {n}: expected an RGB uint8 H x W x 3 array with pixels, got {page.dtype} "
                                     f"{page.shape}")
                image, image_id = np.ascontiguousarray(page), f"array{n}"
            else:
                image, image_id = decode_page(page), Path(page).stem
            item = page_item(image_id, image, (image.shape[1], image.shape[0]), self.page_longest_side, image)
            batch = collate_whole_pages([item])
            batch["images"] = [image.to(self.device) for image in batch["images"]]
            batch["originals"] = [image.to(self.device) for image in batch["originals"]]
            results.append(recognized_page(self.recognize_batch(batch)[0]))
        return results[0] if single else results
