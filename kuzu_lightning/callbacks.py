"""Callbacks shared by the models' trainers."""

from __future__ import annotations

from pathlib import Path

import cv2
import lightning as L
from lightning.pytorch.loggers import WandbLogger

from kuzu_lightning.viz import crop_grid


def log_picture(trainer: L.Trainer, key: str, picture, caption: str) -> None:
    """Send an RGB picture to W&B (``key``), or with any other logger save it as PNG in the log folder."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[picture], caption=[caption], step=trainer.global_step)
            return
    if trainer.log_dir:
        path = Path(trainer.log_dir) / "pictures" / f"{key.replace('/', '_')}_step{trainer.global_step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))


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
