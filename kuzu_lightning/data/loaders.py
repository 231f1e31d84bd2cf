"""Worker processes shared by every DataModule: DataLoader settings and one-time cache builders."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

import cv2
import torch


def worker_options(num_workers: int) -> dict:
    """``DataLoader`` keyword arguments for ``num_workers`` worker processes.

    Workers start from a clean process (``forkserver``, or ``spawn`` where there is none) rather
    than a fork of the training process: a forked child inherits the live W&B client, whose
    finalizers can tear the parent's W&B service down mid-run (wandb/wandb#12079), and inherited
    OpenCV/OpenMP thread state can deadlock. Workers persist across epochs, so their start-up is
    paid once per loader.
    """
    if num_workers <= 0:
        return {"num_workers": 0, "pin_memory": torch.cuda.is_available()}
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return {"num_workers": num_workers, "persistent_workers": True, "multiprocessing_context": method,
            "pin_memory": torch.cuda.is_available()}


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
