"""``kuzu recognize INPUT... --out DIR --detector CKPT --classifier CKPT``: transcribe collections of page scans.

``INPUT`` is any mix of image files, folders (searched recursively for images), glob patterns (``"scans/**/*.tif"``)
and text files (``.txt``, ``.lst``) listing such paths, one per line (relative ones from the list's folder). Images
are JPEG, PNG and TIFF (by suffix, any case; a multi-page TIFF gives its first page). Files found in folders with
other suffixes are skipped and counted in the log.

Each page's files go under ``DIR`` at its path relative to the common folder of all inputs (``scans/a/001.jpg``
and ``scans/b/001.jpg`` give ``DIR/a/001.*`` and ``DIR/b/001.*``; pages of the same name with different suffixes
in one folder keep their suffix, ``001.jpg.json``): its JSON, and the ``--formats`` asked for (text, picture), as
:class:`~kuzu_lightning.writer.PageWriter` writes them, the JSON last: a page is done when its JSON exists.

**Resumable**: pages already done are skipped (and the temporary files of a killed run removed), so a run killed at
any point and started again with the same inputs completes every page exactly once. A page that cannot be read is
logged, gets its JSON with the reason, and the run goes on. At the end, ``DIR/summary.json`` counts the pages and
lists every failed one with its reason, and ``--csv FILE`` writes the Kaggle submission of all pages (``image_id`` is
the page's key); both are streamed from the pages' JSON files, so memory does not grow with the collection. A
progress bar shows pages/s.

``--devices N`` and ``--num_nodes M`` run it through Lightning's DDP, each process recognising and writing every
n-th page of the same list (built before the processes start, so all agree on it). Thresholds are the detector's
validated one and no confidence floor, unless ``--config FILE`` (a file written by ``kuzu validate --thresholds_out``)
or ``--detection_threshold`` / ``--min_confidence`` say otherwise.
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import yaml

from kuzu_lightning.atomic import remove_abandoned_partials
from kuzu_lightning.data.kaggle import Page

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}
LIST_SUFFIXES = {".txt", ".lst"}


def find_images(inputs: Iterable[str]) -> tuple[list[Path], list[Path]]:
    """The image files that ``inputs`` name (see the module docstring), each once, sorted; and the input roots
    (folders, the folders of files) that output paths are relative to."""
    found: set[Path] = set()
    roots: list[Path] = []
    skipped: Counter[str] = Counter()

    def add(entry: str, base: Path) -> None:
        path = base / entry if not Path(entry).is_absolute() else Path(entry)
        if glob.has_magic(entry):
            matches = [Path(m) for m in glob.glob(str(path), recursive=True)]
            if not matches:
                log.error("%s matches no file", entry)
            for match in matches:
                add(str(match), base)
        elif path.is_dir():
            roots.append(path.resolve())
            for file in path.rglob("*"):
                if file.is_file():
                    if file.suffix.lower() in IMAGE_SUFFIXES:
                        found.add(file.resolve())
                    else:
                        skipped[file.suffix.lower() or "(no suffix)"] += 1
        elif path.suffix.lower() in LIST_SUFFIXES and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    add(line.strip(), path.parent)
        else:  # an image, or a page that will fail with its reason (missing, not an image)
            roots.append(path.resolve().parent)
            found.add(path.resolve())

    for entry in inputs:
        add(entry, Path.cwd())
    if skipped:
        log.info("skipped files that are not JPEG, PNG or TIFF images: %s",
                 ", ".join(f"{n} {suffix}" for suffix, n in sorted(skipped.items())))
    return sorted(found), roots


def output_keys(images: list[Path], roots: list[Path]) -> list[str]:
    """Each image's output path under the output folder, without suffix: its path relative to the common folder of
    ``roots``, without its suffix unless another image of that folder has the same stem (then with it)."""
    root = Path(os.path.commonpath([str(r) for r in roots])) if roots else Path("/")
    stems = Counter((image.parent, image.stem) for image in images)
    keys = []
    for image in images:
        name = image.stem if stems[image.parent, image.stem] == 1 else image.name
        keys.append((image.parent / name).relative_to(root).as_posix())
    return keys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, globs or lists of paths")
    parser.add_argument("--detector", required=True, help="a CharDetector checkpoint")
    parser.add_argument("--classifier", required=True, help="a CharClassifier checkpoint")
    parser.add_argument("--out", required=True, type=Path, help="the output folder (created)")
    parser.add_argument("--formats", default="json,txt",
                        help="what to write per page, of json (always), txt and png; comma-separated (default json,txt)")
    parser.add_argument("--csv", type=Path, help="also write a Kaggle-format submission of all pages here")
    parser.add_argument("--config", type=Path, help="thresholds written by kuzu validate --thresholds_out")
    parser.add_argument("--detection_threshold", type=float, help="keep detections scoring this or more")
    parser.add_argument("--min_confidence", type=float, help="drop characters whose class probability is below")
    parser.add_argument("--accelerator", default="auto", help="cpu, gpu, auto (default)")
    parser.add_argument("--devices", default="1", help="devices per node (default 1); more run DDP")
    parser.add_argument("--num_nodes", type=int, default=1, help="nodes (default 1)")
    parser.add_argument("--precision", default="32-true", help="Lightning precision, e.g. 16-mixed on a GPU")
    parser.add_argument("--num_workers", type=int, default=2, help="page-decoding processes per device (default 2)")


def thresholds(args: argparse.Namespace) -> dict:
    """The Recognizer's threshold settings from ``--config`` and the command line (the command line wins)."""
    settings = {}
    if args.config:
        model = (yaml.safe_load(args.config.read_text(encoding="utf-8")) or {}).get("model", {}).get("init_args", {})
        settings = {k: model[k] for k in ("detection_threshold", "min_confidence") if k in model}
    for key in ("detection_threshold", "min_confidence"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    return settings


def run(args: argparse.Namespace) -> dict | None:
    """The command; returns the summary in the first process (None in the others)."""
    import lightning as L
    import torch.distributed as dist

    from kuzu_lightning.data.pages import PageDataModule
    from kuzu_lightning.models.recognizer import Recognizer
    from kuzu_lightning.writer import PageWriter, page_json, parse_formats, summarise

    formats = parse_formats(args.formats)
    images, roots = find_images(args.inputs)
    if not images:
        sys.exit(f"error: no image found in {' '.join(args.inputs)}")
    pages = list(zip(output_keys(images, roots), map(str, images)))
    remove_abandoned_partials(args.out, recursive=True)  # what a killed run was writing
    todo = [Page(key, image_path=Path(image)) for key, image in pages if not page_json(args.out, key).is_file()]
    log.info("%d pages, %d already done, %d to recognise", len(pages), len(pages) - len(todo), len(todo))
    recognizer = Recognizer.from_checkpoints(args.detector, args.classifier, **thresholds(args))
    devices = int(args.devices) if args.devices.isdigit() else args.devices
    distributed = args.num_nodes > 1 or (isinstance(devices, int) and devices > 1)
    writer = PageWriter(args.out, formats, args.csv, pages)
    trainer = L.Trainer(accelerator=args.accelerator, devices=devices, num_nodes=args.num_nodes,
                        strategy="ddp" if distributed else "auto", precision=args.precision, logger=False,
                        callbacks=[writer], enable_model_summary=False)
    if todo:
        trainer.predict(recognizer, PageDataModule.for_scans(todo, recognizer.page_longest_side, args.num_workers),
                        return_predictions=False)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    if not trainer.is_global_zero:
        return None
    summary = writer.summary if todo else summarise(args.out, pages, args.csv, 0.0, 0)
    print(f"{summary['done']} of {summary['pages']} pages done ({summary['recognised_now']} now, "
          f"{summary['pages_per_s']} pages/s), {len(summary['failed'])} failed; {args.out / 'summary.json'}")
    return summary
