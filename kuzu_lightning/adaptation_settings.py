"""The settings of book adaptation (:mod:`kuzu_lightning.adaptation`), apart so that the command line reads them
without importing torch."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class AdaptationSettings:
    """How a book is adapted: at most ``steps`` steps of fine-tuning on ``batch_size`` crops at learning rate
    ``lr``, and at most ``epochs`` passes over the characters read with a probability of ``confidence`` or more (none
    when fewer than ``min_crops``); ``batchnorm``: batch-norm statistics re-estimated on the book (AdaBN); ``seed``: of
    the draws and augmentations.

    The defaults are AdaBN alone: on the synthetic stand-in for an unseen book (demo models trained without one hand,
    its 30 test pages in that hand), every fine-tuning tried read worse than AdaBN alone (docs/results.md,
    2026-11-30: book adaptation).
    """

    steps: int = 0
    epochs: float = 5.0
    confidence: float = 0.9
    lr: float = 1e-4
    batch_size: int = 64
    batchnorm: bool = True
    min_crops: int = 32
    seed: int = 0

    def __post_init__(self):
        problems = [name for name, bad in (("steps", self.steps < 0), ("batch_size", self.batch_size < 1),
                                           ("min_crops", self.min_crops < 1), ("lr", not self.lr > 0),
                                           ("epochs", not self.epochs > 0),
                                           ("confidence", not 0 <= self.confidence <= 1)) if bad]
        if problems:
            wrong = ", ".join(f"{name}={getattr(self, name)}" for name in problems)
            raise ValueError(f"adaptation settings out of range: {wrong}")


SETTING_TYPES = {field.name: {"int": int, "float": float, "bool": bool}[field.type] for field in fields(AdaptationSettings)}
"""Each setting's type, for the command lines that read them."""
