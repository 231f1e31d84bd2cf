"""What every DataModule shares: DataLoader settings, shards of the data under DDP, the processes that build caches."""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

import cv2
import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from kuzu_lightning.atomic import process_alive

log = logging.getLogger(__name__)


def worker_options(num_workers: int) -> dict:
    """``DataLoader`` keyword arguments for ``num_workers`` worker processes, and the loader's own random
    generator: starting a loader then draws nothing from torch's global random state, which the model's
    steps use (dropout, proposal sampling), so that a resumed run's steps draw what an uninterrupted
    run's do (training items are seeded by :mod:`~kuzu_lightning.data.draws`).

    Workers start from a clean process (``forkserver``, or ``spawn`` where there is none) rather
    than a fork of the training process: a forked child inherits the live W&B client, whose
    finalizers can tear the parent's W&B service down mid-run (wandb/wandb#12079), and inherited
    OpenCV/OpenMP thread state can deadlock. Workers persist across epochs, so their start-up is
    paid once per loader.
    """
    options = {"num_workers": 0, "pin_memory": torch.cuda.is_available(), "generator": torch.Generator().manual_seed(0)}
    if num_workers <= 0:
        return options
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return {**options, "num_workers": num_workers, "persistent_workers": True, "multiprocessing_context": method,
            "worker_init_fn": functools.partial(watch_parent, os.getpid())}


def watch_parent(parent: int, *_) -> None:
    """Run in a worker process: end it when the process ``parent`` is gone, however that one ended (a process killed
    with SIGKILL never tells its workers, and a worker started by the forkserver is not its child), checking every
    second, so that no worker outlives its run."""
    def watch() -> None:
        while process_alive(parent):
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def world() -> tuple[int, int]:
    """``(number of processes, this process's rank)`` under ``torch.distributed``, else ``(1, 0)``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class EvaluationShard(DistributedSampler):
    """This process's share of the evaluation items under DDP, every ``n``-th of them, without the padding
    Lightning's ``DistributedSampler`` adds (repeated pages would count twice in the F1): each item is
    evaluated by exactly one process. Lightning leaves a ``DistributedSampler`` as it is."""

    def __init__(self, size: int, replicas: int, rank: int):
        super().__init__(range(size), num_replicas=replicas, rank=rank, shuffle=False)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, len(self.dataset), self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, len(self.dataset), self.num_replicas))


def evaluation_options(size: int, num_workers: int) -> dict:
    """:func:`worker_options` for a validation, test or prediction loader over ``size`` items, with an
    :class:`EvaluationShard` sampler under DDP."""
    replicas, rank = world()
    return {**worker_options(num_workers), **({"sampler": EvaluationShard(size, replicas, rank)} if replicas > 1 else {})}


def map_in_processes(function: Callable, jobs: Iterable, workers: int) -> Iterator:
    """``map(function, jobs)`` in order, by ``workers`` processes when ``workers > 1``.

    The processes are spawned, not forked (a forked child of a process already running torch or
    OpenCV threads can deadlock), and each runs OpenCV on one thread. ``function`` must be a
    module-level function.
    """
    jobs = list(jobs)
    if workers <= 1:
        yield from map(function, jobs)
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_cache_worker, initargs=(os.getpid(),)) as pool:
        yield from pool.map(function, jobs, chunksize=4)


def _cache_worker(parent: int) -> None:
    """The start of a cache-building process: OpenCV on one thread, and an end when ``parent`` is gone."""
    cv2.setNumThreads(1)
    watch_parent(parent)
