"""Training pictures: validation crop grids and validation pages with their boxes, sent to W&B."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.loggers import WandbLogger

from kuzu_lightning.geometry import to_resized
from kuzu_lightning.viz import crop_grid, draw_boxes, write_png


def log_picture(trainer: L.Trainer, key: str, picture, caption: str) -> None:
    """Send an RGB picture to W&B (``key``), or with any other logger save it as PNG in its log folder (without a
    logger, in ``trainer.default_root_dir``).

    Called by the first process alone, so it must not wait for the others: ``trainer.log_dir`` is a
    broadcast under DDP, which would hang while the other processes wait in the metrics' gather.
    """
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[picture], caption=[caption], step=trainer.global_step)
            return
    folder = getattr(trainer.loggers[0], "log_dir", None) if trainer.loggers else None
    write_png(Path(folder or trainer.default_root_dir) / "pictures"
              / f"{key.replace('/', '_')}_step{trainer.global_step:07d}.png", picture)


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
            kept = found["boxes"][found["scores"] >= threshold]
            picture = draw_boxes(image.permute(1, 2, 0).cpu().numpy(), to_resized(truth, scale).cpu().numpy(),
                                 to_resized(kept, scale).cpu().numpy())
            self.pictures.append((picture, f"{image_id}: {len(truth)} true (green), {len(kept)} detected (red)"))

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        for i, (picture, caption) in enumerate(self.pictures):
            log_picture(trainer, f"val/page{i}", picture, caption)
        self.pictures = []
