"""DataLoader worker settings shared by every DataModule."""

from __future__ import annotations

import multiprocessing

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
