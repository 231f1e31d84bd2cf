"""Callbacks shared by the models' trainers: W&B pictures, and the Recognizer's prediction writer."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import lightning as L
import numpy as np
import torch.distributed as dist
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.loggers import WandbLogger

from kuzu_lightning.models.recognizer import characters
from kuzu_lightning.submission import submission_labels, write_page_json, write_submission
from kuzu_lightning.viz import crop_grid, draw_boxes, draw_characters

log = logging.getLogger(__name__)


def write_png(path: Path, picture: np.ndarray) -> None:
    """Save an RGB picture as PNG, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))


def log_picture(trainer: L.Trainer, key: str, picture, caption: str) -> None:
    """Send an RGB picture to W&B (``key``), or with any other logger save it as PNG in the log folder."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[picture], caption=[caption], step=trainer.global_step)
            return
    if trainer.log_dir:
        write_png(Path(trainer.log_dir) / "pictures" / f"{key.replace('/', '_')}_step{trainer.global_step:07d}.png",
                  picture)


class CharSamplePictures(L.Callback):
    """After each validation epoch, a grid of the first ``count`` validation crops captioned
    "predicted / true character", logged as ``val/samples``."""

    def __init__(self, count: int = 32):
        self.count = count
        self.sample = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx == 0 and not trainer.sanity_checking:
            n = self.count
            predicted = outputs[:n].argmax(1).tolist()
            self.sample = (batch["images"][:n].permute(0, 2, 3, 1).cpu().numpy(),
                           [pl_module.codes[i] for i in batch["labels"][:n].tolist()],
                           [pl_module.codes[i] for i in predicted])

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self.sample is not None and trainer.is_global_zero:
            log_picture(trainer, "val/samples", crop_grid(*self.sample), f"epoch {trainer.current_epoch}")
        self.sample = None


class DetectionPictures(L.Callback):
    """After each validation epoch, the first ``count`` validation pages with true boxes (green) and
    detections at the model's ``score_threshold`` (red), logged as ``val/pages``."""

    def __init__(self, count: int = 2):
        self.count = count
        self.pictures: list[tuple[np.ndarray, str]] = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        threshold = pl_module.hparams.score_threshold
        for image, scale, truth, found, image_id in zip(batch["images"], batch["scales"], batch["boxes"], outputs,
                                                        batch["image_ids"]):
            if len(self.pictures) == self.count or image is None:
                continue
            scale = scale.repeat(2)
            kept = found["boxes"][found["scores"] >= threshold]
            picture = draw_boxes(image.permute(1, 2, 0).cpu().numpy(), (truth * scale).cpu().numpy(),
                                 (kept * scale).cpu().numpy())
            self.pictures.append((picture, f"{image_id}: {len(truth)} true (green), {len(kept)} detected (red)"))

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        for i, (picture, caption) in enumerate(self.pictures):
            log_picture(trainer, f"val/page{i}", picture, caption)
        self.pictures = []


class RecognitionWriter(BasePredictionWriter):
    """Writes what :class:`~kuzu_lightning.Recognizer` predicts.

    - ``output``: the Kaggle submission, a row for every id of the DataModule's ``predict_ids()``
      in that order (without such a DataModule: the pages predicted, as they came), written once
      at the end through a temporary file; a page that could not be read, or on which nothing was
      recognised, gets empty ``labels`` and a logged error naming it;
    - ``json_dir``: ``{image_id}.json`` per page (see :mod:`~kuzu_lightning.submission`), if given;
    - ``pictures_dir``: ``{image_id}.png`` per page, its boxes with the recognised characters beside
      them (:func:`~kuzu_lightning.viz.draw_characters`), if given.

    Under DDP each process writes the JSON files and pictures of its pages, and the first process
    the submission of them all, so the file is the same whatever the number of devices.
    """

    def __init__(self, output: str | Path, json_dir: str | Path | None = None, pictures_dir: str | Path | None = None):
        super().__init__(write_interval="batch")
        self.output = Path(output)
        self.json_dir = Path(json_dir) if json_dir else None
        self.pictures_dir = Path(pictures_dir) if pictures_dir else None
        self.labels: dict[str, str] = {}
        self.problems: dict[str, str] = {}

    def on_predict_start(self, trainer, pl_module) -> None:
        self.labels, self.problems = {}, {}

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        for i, page in enumerate(prediction):
            self.labels[page["image_id"]] = submission_labels(page)
            if page["error"]:
                self.problems[page["image_id"]] = f"could not be read ({page['error']})"
            elif not page["codes"]:
                self.problems[page["image_id"]] = "no characters recognised"
            found = characters(page)
            if self.json_dir:
                write_page_json(self.json_dir, page, found)
            if self.pictures_dir and batch["images"][i] is not None:
                image = batch["images"][i].permute(1, 2, 0).cpu().numpy()
                boxes = page["boxes"].numpy() * batch["scales"][i].cpu().repeat(2).numpy()
                write_png(self.pictures_dir / f"{page['image_id']}.png",
                          draw_characters(image, boxes, [c.char for c in found]))

    def on_predict_end(self, trainer, pl_module) -> None:
        labels, problems = self.labels, self.problems
        if dist.is_available() and dist.is_initialized() and trainer.world_size > 1:
            gathered = [None] * trainer.world_size
            dist.all_gather_object(gathered, (labels, problems))
            labels = {k: v for part, _ in gathered for k, v in part.items()}
            problems = {k: v for _, part in gathered for k, v in part.items()}
        if not trainer.is_global_zero:
            return
        data = trainer.datamodule
        image_ids = data.predict_ids() if hasattr(data, "predict_ids") else list(labels)  # else: as predicted
        for image_id in image_ids:
            if image_id not in labels:
                problems[image_id] = "was not predicted"
        for image_id, problem in problems.items():
            log.error("page %s %s: its submission row is empty", image_id, problem)
        path = write_submission(self.output, image_ids, labels)
        log.info("wrote %s: %d pages, %d characters, %d empty rows", path, len(image_ids),
                 sum(len(v.split()) // 3 for v in labels.values()), len(problems))
