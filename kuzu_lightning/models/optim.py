"""Optimizers and learning-rate schedules from plain config values, shared by every model.

The schedule is stepped every optimizer step: a linear warm-up over ``warmup_steps`` from
``warmup_factor * lr`` to ``lr``, then

- ``cosine``: cosine decay to 0 at the last step of training;
- ``step``: multiply by ``gamma`` at each fraction of training in ``milestones`` (e.g. 0.67, 0.89);
- ``constant``: keep ``lr``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("cosine", "step", "constant")


def build_optimizer(parameters: Iterable[torch.nn.Parameter], name: str, lr: float, weight_decay: float = 0.0,
                    momentum: float = 0.9) -> torch.optim.Optimizer:
    """``adam`` (the Keras original's), ``adamw`` or ``sgd`` (with ``momentum``, Nesterov off)."""
    parameters = [p for p in parameters if p.requires_grad]
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {name!r}")


def lr_factor(step: int, total_steps: int, schedule: str, warmup_steps: int = 0, warmup_factor: float = 0.001,
              milestones: Sequence[float] = (0.67, 0.89), gamma: float = 0.1) -> float:
    """The multiplier of the base learning rate at optimizer step ``step`` of ``total_steps``."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, not {schedule!r}")
    if step < warmup_steps:
        return warmup_factor + (1 - warmup_factor) * step / warmup_steps
    if schedule == "cosine":
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    if schedule == "step":
        return gamma ** sum(step >= m * total_steps for m in milestones)
    return 1.0


def build_schedule(optimizer: torch.optim.Optimizer, total_steps: int, schedule: str, warmup_steps: int = 0,
                   **kwargs) -> dict:
    """A Lightning ``lr_scheduler`` config dict stepping :func:`lr_factor` every optimizer step."""
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, schedule, warmup_steps, **kwargs))
    return {"scheduler": scheduler, "interval": "step", "frequency": 1}
