"""``RandomStates``: the random generators' states in every checkpoint, restored when training resumes.

Lightning's checkpoints hold the weights, the optimizer, the schedule and the loops, not the state of
torch's (CPU and CUDA), numpy's and Python's global generators, which a training step draws from
(dropout, Faster R-CNN's proposal sampling). This callback adds them, and puts them back just before
the first training step of a resumed run, after whatever ran since the restore (the sanity check,
the loaders' start), so that the resumed steps draw what the uninterrupted run's drew.
Training items are seeded separately (:mod:`~kuzu_lightning.data.draws`). States are plain tensors
and numbers, so checkpoints still load with ``weights_only=True``.
"""

from __future__ import annotations

import random

import lightning as L
import numpy as np
import torch

KEY = "random_states"


def collect_random_states() -> dict:
    """The global generators' states as tensors and numbers."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    version, python_state, python_gauss = random.getstate()
    states = {"torch": torch.get_rng_state(),
              "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                        "has_gauss": int(has_gauss), "gauss": float(gauss)},
              "python": {"version": version, "state": list(python_state), "gauss": python_gauss}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_random_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    numpy = states["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["position"], numpy["has_gauss"],
                         numpy["gauss"]))
    python = states["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class RandomStates(L.Callback):
    """Saves the global generators' states with each checkpoint; restores them at the first step after a resume."""

    def __init__(self):
        self._pending: dict | None = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint[KEY] = collect_random_states()

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self._pending = checkpoint.get(KEY)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self._pending is not None:
            set_random_states(self._pending)
            self._pending = None
