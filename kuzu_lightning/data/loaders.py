"""Worker processes shared by every DataModule: DataLoader settings and one-time cache builders."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

import cv2
import torch


def seed_augmentation(dataset) -> None:
    """Seed ``dataset.transform`` (an albumentations pipeline, if any) from torch's seed.

    Albumentations keeps its own random state, which ``seed_everything`` does not reach: without
    this, training crops differ from run to run whatever the config's seed. Datasets call it when
    built (loading in the main process); each loader worker calls it again with its own seed,
    which torch derives from the run's seed and the worker's number, so workers differ.
    """
    transform = getattr(dataset, "transform", None)
    if transform is not None:
        transform.set_random_seed(torch.initial_seed() % 2**32)


def _seed_worker(worker_id: int) -> None:
    seed_augmentation(torch.utils.data.get_worker_info().dataset)


def worker_options(num_workers: int) -> dict:
    """``DataLoader`` keyword arguments for ``num_workers`` worker processes.

    Workers start from a clean process (``forkserver``, or ``spawn`` where there is none) rather
    than a fork of the training process: a forked child inherits the live W&B client, whose
    finalizers can tear the parent's W&B service down mid-run (wandb/wandb#12079), and inherited
    OpenCV/OpenMP thread state can deadlock. Workers persist across epochs, so their start-up is
    paid once per loader. Each worker seeds its dataset's augmentation (:func:`seed_augmentation`).
    """
    if num_workers <= 0:
        return {"num_workers": 0, "pin_memory": torch.cuda.is_available()}
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return {"num_workers": num_workers, "persistent_workers": True, "multiprocessing_context": method,
            "worker_init_fn": _seed_worker, "pin_memory": torch.cuda.is_available()}


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
                             initializer=cv2.setNumThreads, initargs=(1,)) as pool:
        yield from pool.map(function, jobs, chunksize=4)
