"""Training draws that a resumed run repeats exactly: ``EpochDraws`` and ``ResumableDataModule``.

Each epoch's training items are a function of ``(seed, epoch, position)`` alone: the order (a
permutation, or weighted draws with replacement for long-tail sampling) and, for each position, the
seed of that item's augmentation, all from a generator seeded by ``(seed, epoch)``. Nothing depends
on the loader's workers, on how often the loader was started, or on torch's global random state.

A :class:`ResumableDataModule` records in the checkpoint (Lightning saves a DataModule's
``state_dict``) the epoch and the number of batches already trained in it; restored with
``--ckpt_path``, its training sampler starts that epoch where the checkpoint stood, so the run goes
on with the very items and augmentations an uninterrupted run would have drawn.
"""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import numpy as np
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import DistributedSampler

from kuzu_lightning.data.loaders import world


class EpochDraws(DistributedSampler):
    """Yields ``(index, augmentation_seed)`` pairs over items ``0 .. size - 1``, ``len(self)`` per epoch.

    With ``weights`` (one per item), ``length`` items are drawn with replacement in proportion to
    them; else the epoch is a permutation of all items.
    Lightning calls :meth:`set_epoch` at the start of every epoch; :meth:`resume` makes the next
    epoch that is started, if it is ``epoch``, begin at this process's draw ``position``. Under DDP
    each of the ``n`` processes takes every ``n``-th draw (the epoch's draws repeated from its start
    to a multiple of ``n``, so that processes step together); Lightning leaves a ``DistributedSampler``
    as it is.
    """

    def __init__(self, size: int, seed: int, weights: np.ndarray | None = None, length: int | None = None):
        replicas, rank = world()
        super().__init__(range(size), num_replicas=replicas, rank=rank, seed=seed)
        self.size = size
        self.weights = None if weights is None else np.asarray(weights, np.float64) / np.sum(weights)
        self.length = size if length is None else length
        self._resume: tuple[int, int] | None = None

    def resume(self, epoch: int, position: int) -> None:
        self._resume = (epoch, position)

    def __len__(self) -> int:
        return -(-self.length // self.num_replicas)

    def draws(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Epoch ``epoch``'s item indices and augmentation seeds, in order, for every process together."""
        rng = np.random.default_rng([self.seed, epoch])
        if self.weights is not None:
            order = rng.choice(self.size, self.length, replace=True, p=self.weights)
        else:
            order = rng.permutation(self.size)
        return order, rng.integers(0, 2**32, len(order), dtype=np.uint64)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        start = 0
        if self._resume is not None:
            epoch, position = self._resume
            start = position if epoch == self.epoch else 0
            self._resume = None
        order, seeds = self.draws(self.epoch)
        mine = np.resize(np.arange(len(order)), len(self) * self.num_replicas)[self.rank::self.num_replicas]
        return zip(order[mine][start:].tolist(), seeds[mine][start:].tolist())


def seeded(transform, key: int | tuple[int, int]) -> int:
    """The index of a training dataset's item key, an index or an :class:`EpochDraws` pair ``(index, seed)``;
    for a pair, the albumentations ``transform`` (if any) is seeded for that draw first."""
    if isinstance(key, tuple):
        key, seed = key
        if transform is not None:
            transform.set_random_seed(seed)
    return key


class ResumableDataModule(L.LightningDataModule):
    """A DataModule whose training draws resume exactly (see the module docstring).

    Subclasses build their training loader's sampler with :meth:`training_draws` and hold their
    training batch size in ``hparams.batch_size``. The draws' seed is the run's (``seed_everything``,
    torch's initial seed), recorded in the checkpoint with the position.
    """

    def __init__(self):
        super().__init__()
        self._resume_point: dict | None = None
        self._draws_seed: int | None = None

    def training_draws(self, size: int, weights: np.ndarray | None = None, length: int | None = None) -> EpochDraws:
        """The training loader's sampler over ``size`` items, at the resume point when restored from a checkpoint."""
        point = self._resume_point
        self._draws_seed = point["seed"] if point else torch.initial_seed() % 2**63
        draws = EpochDraws(size, self._draws_seed, weights=weights, length=length)
        if point:
            # At the checkpoint's epoch already: Lightning may start the loader (workers take their first
            # items) before it restores its loops and calls set_epoch, and a resumed run keeps that iterator.
            draws.set_epoch(point["epoch"])
            draws.resume(point["epoch"], point["batches"] * self.hparams.batch_size)
        return draws

    def state_dict(self) -> dict:
        """Where training stands: the draws' seed, the epoch and the batches of it already trained."""
        trainer = self.trainer
        if trainer is None or trainer.state.fn != TrainerFn.FITTING or self._draws_seed is None:
            return {}
        epoch, batches = trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_progress.current.ready
        if batches >= trainer.num_training_batches:  # the epoch is complete: the next one starts afresh
            epoch, batches = epoch + 1, 0
        return {"seed": self._draws_seed, "epoch": epoch, "batches": batches}

    def load_state_dict(self, state: dict) -> None:
        self._resume_point = dict(state) if state else None
