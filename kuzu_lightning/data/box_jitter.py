"""Box jitter: training boxes misplaced the way a detector misplaces them.

The classifier reads crops cut around *detected* boxes, which sit off the true ones: their centres
shifted, their sides too long or too short. :class:`BoxJitter` draws such boxes from a true one,
with the error distribution that ``kuzu validate recognizer`` measures on the validation books (its
error budget, :mod:`kuzu_lightning.error_budget`): for a true box of width ``w`` and height ``h``,

- the centre moves by ``dx * w`` and ``dy * h``, ``dx ~ N(centre_dx)``, ``dy ~ N(centre_dy)``;
- the width becomes ``w * exp(lw)``, the height ``h * exp(lh)``, ``lw ~ N(log_width)``,
  ``lh ~ N(log_height)``;

each ``N`` given as ``(mean, std)`` (the budget's ``*_mean`` and std figures). Draws are clipped at
3 standard deviations. Boxes are xyxy, in any frame (the output is in the input's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kuzu_lightning.error_budget import ERRORS


@dataclass(frozen=True)
class BoxJitter:
    """The detector's box errors, each ``(mean, std)``; see the module docstring."""

    centre_dx: tuple[float, float] = (0.0, 0.0)
    centre_dy: tuple[float, float] = (0.0, 0.0)
    log_width: tuple[float, float] = (0.0, 0.0)
    log_height: tuple[float, float] = (0.0, 0.0)

    @classmethod
    def from_budget(cls, budget: dict[str, float]) -> BoxJitter:
        """The jitter of an error budget: its ``centre_dx`` (the std) and ``centre_dx_mean``, and so on,
        with or without the ``val/budget/`` prefix that ``kuzu validate recognizer`` logs them under."""
        values = {key.removeprefix("val/budget/"): float(value) for key, value in budget.items()}
        missing = [key for name in ERRORS for key in (name, f"{name}_mean") if key not in values]
        if missing:
            raise KeyError(f"the error budget lacks {', '.join(missing)}")
        return cls(**{name: (values[f"{name}_mean"], values[name]) for name in ERRORS})

    def boxes(self, boxes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``(N, 4)`` xyxy ``boxes``, each moved and resized by one draw of the errors."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        mean, std = np.array([getattr(self, name) for name in ERRORS], np.float64).T
        errors = mean + std * np.clip(rng.standard_normal((len(boxes), 4)), -3, 3)
        sizes = boxes[:, 2:] - boxes[:, :2]
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2 + errors[:, :2] * sizes
        half = sizes * np.exp(errors[:, 2:]) / 2
        return np.concatenate([centres - half, centres + half], 1)
