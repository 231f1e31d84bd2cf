"""``kuzu recognize INPUT... [--out DIR] [--detector CKPT...] [--classifier CKPT...]``: transcribe collections of page
scans, with one model of each kind or an ensemble (checkpoints, or released models by name; by default the released
:data:`~kuzu_lightning.pretrained.DEFAULT_MODEL` at its own thresholds), and test-time augmentation
(``--page_scales``, ``--crop_shifts``, ``--crop_scales``; see :mod:`kuzu_lightning.ensemble`).

``INPUT`` is any mix of image files, PDFs (each page rendered at ``--pdf_dpi``, ``book.pdf`` keyed ``book/0001``...),
folders, glob patterns (``"scans/**/*.tif"``) and text files (``.txt``, ``.lst``) listing such inputs, one per line:
the pages of :func:`~kuzu_lightning.collection.find_collection`, each written under ``DIR`` at its key (its path
relative to the common folder of the inputs; ``scans/a/001.jpg`` and ``scans/b/001.jpg`` give ``DIR/a/001.*`` and
``DIR/b/001.*``): its JSON and the ``--formats`` asked for (text, PAGE XML, ALTO, picture), each character with its
``--top_k`` readings, as :class:`~kuzu_lightning.writer.PageWriter` writes them, the JSON last; with ``--html``, a
static site to browse them in a web browser (:mod:`kuzu_lightning.viewer`, ``DIR/index.html``). Nothing under ``DIR``
is read as an input.

**Resumable**: a page is done when its JSON exists and records the scan (of a PDF's page: the PDF) as it is now
(size and modification time); a run started again skips the pages done, redoes those whose scan changed, and removes
the temporary files of a killed run, so a run killed at any point and started again completes every page exactly
once. A page that cannot
be read is logged, gets its JSON with the reason, and the run goes on; an input that is no page (a missing path, a
broken link, a FIFO, a folder that cannot be listed...) is listed with its reason. ``DIR/summary.json`` counts the
pages and lists every failure; ``--csv FILE`` writes the Kaggle submission of all pages (``image_id`` is the page's
key); both are streamed from the pages' JSON files. The exit status is 1 when any input failed, else 0.

Everything is checked before a model loads or a page is read: the thresholds (``--config FILE``, as ``kuzu validate
recognizer --thresholds_out`` writes it, or ``--detection_threshold`` / ``--min_confidence``, between 0 and 1; an
unknown key in the file is refused, naming it) and every output path. One run writes to a folder at a time: a second
run into the same ``DIR`` is refused while the first goes on. ``--devices N`` and ``--num_nodes M`` run it through
Lightning's DDP, each process recognising and writing every n-th page of the same list.

**Book adaptation** (``--adapt``, on one device): the pages are grouped into books
(:func:`~kuzu_lightning.adaptation.book_of`: the book id in a Kaggle or CODH page name, else the page's folder); before
a book's pages are recognised, the classifiers adapt to all its pages (:mod:`kuzu_lightning.adaptation`: AdaBN, and with
``--adapt_steps`` self-training on their confident readings; ``--adapt_epochs``, ``--adapt_confidence``, ``--adapt_lr``,
``--adapt_batch_size``, ``--no-adapt_batchnorm``) and are kept as ``DIR/BOOK/adapted-classifier-I.ckpt``, which a
resumed run, or a later run on more pages of the book, reuses while the classifier checkpoints and the settings stay
the same.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
from functools import partial
from pathlib import Path

from kuzu_lightning.atomic import remove_abandoned_partials
from kuzu_lightning.collection import find_collection, printable
from kuzu_lightning.data.kaggle import Page
from kuzu_lightning.data.pdf import DEFAULT_DPI, PdfPage
from kuzu_lightning.outputs import recorded_source
from kuzu_lightning.pretrained import DEFAULT_MODEL
from kuzu_lightning.thresholds import THRESHOLDS, read_thresholds, unit_interval
from kuzu_lightning.tools.options import (
    FORMATS_HELP,
    HTML_HELP,
    adaptation_settings,
    add_adaptation_options,
    add_ensemble_option,
    add_test_time_options,
    argument_type,
    test_time_settings,
)

log = logging.getLogger(__name__)

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, PDFs, folders, globs or lists of paths")
    add_ensemble_option(parser, "detector", default=[DEFAULT_MODEL],
                        help=f"a CharDetector checkpoint or a released model's name, or several (an ensemble); "
                             f"default {DEFAULT_MODEL}")
    add_ensemble_option(parser, "classifier", default=[DEFAULT_MODEL],
                        help=f"a CharClassifier checkpoint or a released model's name, or several sharing one class "
                             f"table (an ensemble); default {DEFAULT_MODEL}")
    parser.add_argument("--out", type=Path, default=Path("transcripts"),
                        help="the output folder (created; default transcripts)")
    parser.add_argument("--formats", default="json,txt", help=f"{FORMATS_HELP} (default json,txt)")
    parser.add_argument("--html", action="store_true", help=HTML_HELP)
    parser.add_argument("--top_k", type=argument_type(at_least_one),
                        help="the readings kept per character as its alternatives (default 5)")
    parser.add_argument("--csv", type=Path, help="also write a Kaggle-format submission of all pages here")
    parser.add_argument("--pdf_dpi", type=argument_type(positive), default=DEFAULT_DPI,
                        help=f"the resolution PDF pages are rendered at, in dots per inch (default {DEFAULT_DPI:g})")
    parser.add_argument("--config", type=Path, help="thresholds written by kuzu validate recognizer --thresholds_out")
    parser.add_argument("--detection_threshold", type=argument_type(partial(unit_interval, "detection_threshold")),
                        help="keep detections scoring this or more (0 to 1)")
    parser.add_argument("--min_confidence", type=argument_type(partial(unit_interval, "min_confidence")),
                        help="drop characters whose class probability is below (0 to 1)")
    add_test_time_options(parser)
    add_adaptation_options(parser)
    parser.add_argument("--accelerator", default="auto", help="cpu, gpu, auto (default)")
    parser.add_argument("--devices", default="1", help="devices per node (default 1); more run DDP")
    parser.add_argument("--num_nodes", type=int, default=1, help="nodes (default 1)")
    parser.add_argument("--precision", default="32-true", help="Lightning precision, e.g. 16-mixed on a GPU")
    parser.add_argument("--num_workers", type=int, default=None,
                        help="page-decoding processes per device (default: 2 with 4 CPU cores or more and 10 pages or "
                             "more to read, else 0: pages are decoded beside the models)")


def positive(text: str) -> float:
    """A number above 0; ``ValueError`` naming it otherwise."""
    value = float(text)
    if not value > 0:
        raise ValueError(f"must be above 0, not {text}")
    return value


def at_least_one(text: str) -> int:
    """A whole number of 1 or more; ``ValueError`` naming it otherwise."""
    value = int(text)
    if value < 1:
        raise ValueError(f"must be 1 or more, not {text}")
    return value


def recognizer_settings(args: argparse.Namespace) -> dict:
    """The Recognizer's settings: the thresholds from ``--config`` and the command line (the command line wins; a
    released model given for both reads at its own thresholds without them), ``--top_k``, and the test-time
    augmentation's."""
    settings = read_thresholds(args.config) if args.config else {}
    settings.update({key: getattr(args, key) for key in (*THRESHOLDS, "top_k") if getattr(args, key) is not None})
    return {**settings, **test_time_settings(args)}


def decoding_workers(asked: int | None, pages: int) -> int:
    """The page-decoding processes per device: ``asked`` (``--num_workers``), or by default 2 where they pay, else 0.
    A worker is a fresh process that imports torch (about 5 s on 2 CPU cores) and then decodes pages on the cores the
    models use, so it pays only with cores to spare and pages enough: on a 2-core VM, 10 real scans took 24.8 s with
    none against 33.9 s with 2, one scan 10.5 s against 16.5 s (the whole command)."""
    if asked is not None:
        return asked
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 2 if cores >= 4 and pages >= 10 else 0


def page_done(out: Path, key: str, scan: Path | PdfPage) -> bool:
    """Whether the page keyed ``key`` has its outputs under ``out`` for ``scan`` (a page of a PDF: the PDF) as it is
    now."""
    try:
        info = os.stat(scan)
    except OSError:
        return False
    return recorded_source(out / f"{key}.json") == (info.st_size, info.st_mtime_ns)


def first_process() -> bool:
    """Whether this is the first process of a run: every process of a DDP run lists the pages, the first one alone
    holds the output folder."""
    return all(os.environ.get(name, "0") == "0" for name in ("NODE_RANK", "LOCAL_RANK", "RANK"))


def hold(out: Path):
    """An exclusive lock on ``out`` for as long as the returned file stays open (released by the system however the
    process ends); ``SystemExit`` naming the holder when another run writes there."""
    out.mkdir(parents=True, exist_ok=True)
    lock = open(out / ".lock", "a+")  # noqa: SIM115 (held open until the process ends)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        raise SystemExit(f"error: another run (process {lock.read().strip() or '?'}) is writing to {out}; "
                         "wait for it to end, or give another --out") from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def run(args: argparse.Namespace) -> dict | None:
    """The command; returns the summary in the first process (None in the others)."""
    import lightning as L
    import torch.distributed as dist

    from kuzu_lightning.data.pages import PageDataModule
    from kuzu_lightning.models.recognizer import Recognizer
    from kuzu_lightning.viewer import write_site
    from kuzu_lightning.writer import PageWriter, check_writable, parse_formats, summarise

    formats, settings = parse_formats(args.formats), recognizer_settings(args)  # all checked before anything is read
    adaptation = adaptation_settings(args)
    devices = int(args.devices) if args.devices.isdigit() else args.devices
    distributed = args.num_nodes > 1 or (isinstance(devices, int) and devices > 1)
    if adaptation and distributed:
        raise SystemExit("error: --adapt runs on one device (--devices 1 --num_nodes 1)")
    check_writable(args.out, "the pages' files")
    if args.csv is not None:
        check_writable(args.csv.parent, "the submission")
    lock = hold(args.out) if first_process() else None
    collection = find_collection(args.inputs, out=args.out, pdf_dpi=args.pdf_dpi)
    pages = [(key, printable(path)) for key, path in collection.pages]
    if not pages:
        summarise(args.out, [], args.csv, 0.0, 0, collection.rejected)
        raise SystemExit(f"error: no page to read in {' '.join(map(printable, args.inputs))}")
    remove_abandoned_partials(args.out, recursive=True)  # what a killed run was writing
    todo = [Page(key, image_path=path) for key, path in collection.pages if not page_done(args.out, key, path)]
    workers = decoding_workers(args.num_workers, len(todo))
    log.info("%d pages, %d already done, %d to recognise", len(pages), len(pages) - len(todo), len(todo))
    recognizer = Recognizer.from_checkpoints(args.detector, args.classifier, **settings)
    writer = PageWriter(args.out, formats, args.csv, pages, collection.rejected, args.html)
    callbacks = [writer]
    if adaptation and todo:
        from kuzu_lightning.adaptation import adapt_books

        scans = [Page(key, image_path=path) for key, path in collection.pages]
        todo, adapted, _ = adapt_books(recognizer, scans, todo, args.out, adaptation,
                                       {"accelerator": args.accelerator, "precision": args.precision}, workers)
        callbacks.append(adapted)
    trainer = L.Trainer(accelerator=args.accelerator, devices=devices, num_nodes=args.num_nodes,
                        strategy="ddp" if distributed else "auto", precision=args.precision, logger=False,
                        callbacks=callbacks, enable_model_summary=False)
    if todo:
        trainer.predict(recognizer, PageDataModule.for_scans(todo, recognizer.page_longest_side, workers),
                        return_predictions=False)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    if not trainer.is_global_zero:
        return None
    if todo:
        summary = writer.summary
    else:
        summary = summarise(args.out, pages, args.csv, 0.0, 0, collection.rejected)
        if args.html:
            write_site(args.out, [key for key, _ in pages])
    print(f"{summary['done']} of {summary['pages']} pages done ({summary['recognised_now']} now, "
          f"{summary['pages_per_s']} pages/s), {len(summary['failed'])} failed; {args.out / 'summary.json'}")
    del lock
    return summary


def exit_status(summary: dict | None) -> int:
    """1 when any input failed (in the first process), else 0."""
    return 1 if summary and summary["failed"] else 0
