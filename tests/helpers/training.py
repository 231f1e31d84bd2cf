"""Tiny real trainings for the tests: a model fitted for a few steps and saved as a Lightning checkpoint."""

from pathlib import Path

import lightning as L


def fit_and_save(model: L.LightningModule, data: L.LightningDataModule, path: Path, steps: int = 2) -> Path:
    """``model`` fitted ``steps`` optimizer steps on ``data`` on the CPU, without validation, saved at ``path``."""
    trainer = L.Trainer(accelerator="cpu", max_steps=steps, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, data)
    trainer.save_checkpoint(path)
    return path
