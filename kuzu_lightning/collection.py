"""A collection of scans: the pages that a bulk run's inputs name, the key each page's outputs are written under, and
the inputs that cannot be read, each with its reason.

Inputs are image files, PDFs, folders (walked, following links to folders, each folder once), glob patterns and text
files (``.txt``, ``.lst``) listing such inputs one per line (relative ones from the list's folder; UTF-8, with or
without a byte-order mark; a list named again is read once). In folders, files whose suffix is not an image's
(:data:`IMAGE_SUFFIXES`, any case) or a PDF's are skipped and counted. Nothing under the output folder is ever an
input. Each page of a PDF is a page (:class:`~kuzu_lightning.data.pdf.PdfPage`, rendered at ``pdf_dpi``), keyed by
the PDF's key and its number, ``book.pdf`` giving ``book/0001``, ``book/0002``...; a PDF that cannot be opened, or has
no page, is rejected with its reason.

A page is a regular file; the same file reached twice (by two links, two inputs) is one page. Everything else named
is **rejected**, with its reason, and never silently dropped: a path that does not exist, a broken link or a link
loop, a folder that cannot be listed, a FIFO, device or socket, a list that is not UTF-8, a pattern that matches
nothing.

**Keys** are unique by construction. A page's key is its path relative to the common folder of the inputs (paths as
named, links not resolved), without its suffix unless that would make two keys equal (``a.jpg`` and ``a.png`` give
``a.jpg`` and ``a.png``; then ``a.jpg.png`` keeps its whole name too), with bytes that are not UTF-8 written as
``\\xNN``; the last resort is ``~2``, ``~3``... after the key. ``summary`` is taken (the run's ``summary.json``).
"""

from __future__ import annotations

import glob
import logging
import os
import stat
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kuzu_lightning.data.images import PageDecodeError
from kuzu_lightning.data.pdf import DEFAULT_DPI, PDF_SUFFIX, PdfPage, count_pages

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}
LIST_SUFFIXES = {".txt", ".lst"}
RESERVED_KEYS = {"summary"}
"""Keys a page may not take: the run's own files under the output folder."""


def printable(path: str | os.PathLike) -> str:
    """``path`` as text that any UTF-8 file or log takes: bytes that are not UTF-8 written as ``\\xNN``; a page of a
    PDF as ``path#page=N``."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return f"{text}#page={path.number}" if isinstance(path, PdfPage) else text


@dataclass(frozen=True)
class Rejected:
    """An input that is not a page: ``input`` as named (printable), and why."""

    input: str
    reason: str


@dataclass
class Collection:
    """``pages``: ``(key, path)`` of every page, in key order (the path of a page of a PDF: its
    :class:`~kuzu_lightning.data.pdf.PdfPage`); ``rejected``: the inputs that could not be read; ``skipped``: how many
    files of each suffix the folders held that are not images."""

    pages: list[tuple[str, Path | PdfPage]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def find_collection(inputs: Iterable[str | os.PathLike], out: str | os.PathLike | None = None,
                    pdf_dpi: float = DEFAULT_DPI) -> Collection:
    """The :class:`Collection` that ``inputs`` name (see the module docstring); nothing under ``out`` is taken; the
    pages of PDFs are rendered at ``pdf_dpi``."""
    found = Collection()
    files: list[Path] = []
    roots: list[Path] = []
    lists_read: set[str] = set()
    folders_walked: set[tuple[int, int]] = set()
    outputs = os.path.realpath(out) if out is not None else None

    def inside_outputs(path: Path) -> bool:
        return outputs is not None and os.path.commonpath([os.path.realpath(path), outputs]) == outputs

    def reject(path: str | os.PathLike, reason: str) -> None:
        found.rejected.append(Rejected(printable(path), reason))
        log.error("%s: %s", printable(path), reason)

    def take_file(path: Path, info: os.stat_result) -> bool:
        """Whether ``path`` is taken as a page (a regular file, not an output)."""
        if not stat.S_ISREG(info.st_mode):
            reject(path, f"{_kind(info.st_mode)}, not an image file")
            return False
        if inside_outputs(path):
            return False
        files.append(path)
        return True

    def walk(folder: Path) -> None:
        for top, folders, names in os.walk(folder, followlinks=True,
                                           onerror=lambda error: reject(error.filename, _reason(error))):
            here = os.stat(top)
            if (here.st_dev, here.st_ino) in folders_walked or inside_outputs(Path(top)):
                folders[:] = []
                continue
            folders_walked.add((here.st_dev, here.st_ino))
            folders.sort()
            for name in sorted(names):
                path = Path(top, name)
                suffix = path.suffix.lower()
                if suffix not in IMAGE_SUFFIXES and suffix != PDF_SUFFIX:
                    found.skipped[suffix or "(no suffix)"] += 1
                    continue
                try:
                    take_file(path, path.stat())
                except OSError as error:
                    reject(path, _reason(error))

    def add(entry: str | os.PathLike, base: Path) -> None:
        path = Path(os.path.abspath(base / entry))
        if glob.has_magic(os.fsdecode(entry)):
            pattern = os.fsdecode(entry)
            if not os.path.isabs(pattern):
                pattern = os.path.join(glob.escape(str(base)), pattern)
            matches = sorted(glob.glob(pattern, recursive=True))
            if not matches:
                reject(entry, "matches no file")
            for match in matches:
                add(match, base)
            return
        try:
            info = path.stat()
        except OSError as error:
            reject(path, _reason(error))
            return
        if stat.S_ISDIR(info.st_mode):
            roots.append(path)
            walk(path)
        elif path.suffix.lower() in LIST_SUFFIXES and stat.S_ISREG(info.st_mode):
            read_list(path)
        elif take_file(path, info):
            roots.append(path.parent)

    def read_list(path: Path) -> None:
        real = os.path.realpath(path)
        if real in lists_read:
            log.info("%s is listed again: read once", printable(path))
            return
        lists_read.add(real)
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError as error:
            reject(path, f"a list of inputs that is not UTF-8 text ({error.reason})")
            return
        except OSError as error:
            reject(path, _reason(error))
            return
        for line in lines:
            if line.strip():
                add(line.strip(), path.parent)

    for entry in inputs:
        add(entry, Path.cwd())
    pages: dict[str, Path] = {}  # one page per file, however it was reached
    for path in sorted(files):
        pages.setdefault(os.path.realpath(path), path)
    paths = sorted(pages.values())
    for key, path in sorted(zip(output_keys(paths, roots), paths)):
        if path.suffix.lower() != PDF_SUFFIX:
            found.pages.append((key, path))
            continue
        try:
            count = count_pages(path)
        except PageDecodeError as error:
            reject(path, str(error).removeprefix(f"{path}: "))
            continue
        if not count:
            reject(path, "a PDF without pages")
        found.pages += [(f"{key}/{number:04d}", PdfPage(path, number, pdf_dpi)) for number in range(1, count + 1)]
    keys = unique_keys([key for key, _ in found.pages])  # a PDF's pages beside a folder of its name
    found.pages = sorted(zip(keys, (path for _, path in found.pages)), key=lambda page: page[0])
    if found.skipped:
        log.info("skipped files that are not JPEG, PNG or TIFF images or PDFs: %s",
                 ", ".join(f"{n} {suffix}" for suffix, n in sorted(found.skipped.items())))
    return found


def _reason(error: OSError) -> str:
    """Why a path could not be read, in words: a broken link, a link loop, no such file, no permission..."""
    path = error.filename
    if isinstance(error, FileNotFoundError) and path is not None and os.path.islink(path):
        return "a broken symbolic link"
    return {FileNotFoundError: "no such file or folder", PermissionError: "permission denied"}.get(
        type(error), error.strerror or str(error))


def output_keys(paths: list[Path], roots: list[Path]) -> list[str]:
    """Each path's key (see the module docstring): relative to the common folder of ``roots`` (absolute paths, as
    named), unique among ``paths``."""
    root = os.path.commonpath([str(r) for r in roots]) if roots else os.sep
    relative = [Path(os.path.relpath(path, root)) for path in paths]
    stems = Counter((r.parent, r.stem) for r in relative)
    keys = [printable(r.with_name(r.stem) if stems[r.parent, r.stem] == 1 else r) for r in relative]
    while True:  # a key that another page or the run holds: its pages keep their whole names
        count = Counter(keys)
        clashing = [i for i, key in enumerate(keys) if (count[key] > 1 or key in RESERVED_KEYS)
                    and keys[i] != printable(relative[i])]
        if not clashing:
            break
        for i in clashing:
            keys[i] = printable(relative[i])
    return unique_keys(keys)


def unique_keys(keys: list[str]) -> list[str]:
    """``keys`` with the second and later of equal ones (or one the run holds) made unique by ``~2``, ``~3``..."""
    keys, taken = list(keys), set(RESERVED_KEYS)
    for i, key in enumerate(keys):
        unique, n = key, 1
        while unique in taken:
            n += 1
            unique = f"{key}~{n}"
        keys[i] = unique
        taken.add(unique)
    return keys
