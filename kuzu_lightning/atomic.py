"""Atomic writes: a file or folder is built under a temporary name that holds the writer's process id, then renamed
into place, so no reader ever sees half of it; what a killed writer left behind is recognised by its name and
removed by the next run (:func:`remove_abandoned_partials`)."""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)
_PARTIAL = re.compile(r"\.partial-(\d+)$")


def partial_name(name: str) -> str:
    """The name a file or folder is built under before it is renamed into place: it ends with ``.partial-`` and this
    process's id (so no finished output, whose name ends with its suffix, is ever taken for one)."""
    return f"{name}.partial-{os.getpid()}"


def remove_abandoned_partials(directory: str | Path, recursive: bool = False) -> None:
    """Delete what an interrupted build or write left in ``directory`` (and its subfolders, if ``recursive``):
    entries named by :func:`partial_name` whose process is gone (one still running is left alone)."""
    directory = Path(directory)
    if not directory.is_dir():
        return
    for path in directory.rglob("*.partial-*") if recursive else directory.iterdir():
        match = _PARTIAL.search(path.name)
        if match is None or process_alive(int(match.group(1))):
            continue
        log.info("removing %s, left by an interrupted run", path)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether the process ``pid`` runs (this one does). A process that has ended but that its parent has not yet
    waited for (a zombie) does not."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):  # no /proc here: the signal said it exists
        return True


@contextmanager
def atomic_file(path: str | Path) -> Iterator[IO]:
    """Open ``path``'s temporary twin (its folder created; named by :func:`partial_name`,
    so a killed writer's is found and removed) for writing UTF-8 text (what is not text, such as a file name's bytes
    that are not UTF-8, written as ``\\udcNN``); rename it into place when the block ends without an error, else
    remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(partial_name(f".{path.name}"))
    try:
        with open(partial, "w", newline="", encoding="utf-8", errors="backslashreplace") as out:
            yield out
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
