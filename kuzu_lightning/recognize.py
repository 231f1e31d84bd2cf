"""Transcribe collections of page scans: ``python -m kuzu_lightning.recognize DETECTOR.ckpt CLASSIFIER.ckpt INPUT...
--out DIR`` (installed: ``kuzu-recognize``).

``INPUT`` is any mix of image files, folders (searched recursively for images), glob patterns (``"scans/**/*.tif"``)
and text files (``.txt``, ``.lst``) listing such paths, one per line (relative ones from the list's folder). Images
are JPEG, PNG and TIFF (by suffix, any case; a multi-page TIFF gives its first page). Files found in folders with
other suffixes are skipped and counted in the log.

For each page, under ``DIR``, at the page's path relative to the common folder of all inputs (``scans/a/001.jpg``
and ``scans/b/001.jpg`` give ``DIR/a/001.*`` and ``DIR/b/001.*``; pages of the same name with different suffixes
in one folder keep their suffix, ``001.jpg.json``):

- ``.json``: the :class:`~kuzu_lightning.records.RecognizedPage` (characters, lines in reading order, text;
  original-scan pixels), with ``error`` set when the page could not be read;
- ``.txt``: the text, one line per column in reading order;
- ``.png`` with ``--pictures``: the scan beside its transcription (:func:`~kuzu_lightning.viz.draw_transcription`).

Each file is written to a temporary name and renamed into place, the JSON last: a page is done when its JSON exists.
**Resumable**: pages already done are skipped (and the temporary files of a killed run removed), so a run killed at
any point and started again with the same inputs completes every page exactly once. A page that cannot be read is
logged, gets its JSON with the reason, and the run goes on. At the end, ``DIR/summary.json`` counts the pages and
lists every failed one with its reason, and ``--csv FILE`` writes the Kaggle submission of all pages (``image_id`` is
the page's relative path without suffix); both are built by streaming the pages' JSON files, so memory does not grow
with the collection: pages stream through the loader and nothing of a page is kept after it is written. A progress bar
shows pages/s.

``--devices N`` and ``--num_nodes M`` run it through Lightning's DDP, each process recognising and writing every
n-th page of the same list (built before the processes start, so all agree on it). Thresholds are the detector's
validated one and no confidence floor, unless ``--config FILE`` (a file written by ``predict.py validate
--thresholds_out``) or ``--detection_threshold`` / ``--min_confidence`` say otherwise.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import lightning as L
import torch.distributed as dist
import yaml
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader

from kuzu_lightning.data.formats import format_predictions
from kuzu_lightning.data.kaggle import Page
from kuzu_lightning.data.loaders import evaluation_options, remove_abandoned_partials
from kuzu_lightning.data.pages import PageDataset, collate_whole_pages
from kuzu_lightning.submission import atomic_file, write_submission_rows
from kuzu_lightning.writer import check_writable, write_page_files

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


class ScanPages(L.LightningDataModule):
    """Whole pages of a list of scans, at the Recognizer's scale and at full size (its crops come from them); under
    DDP each process gets every n-th page, none twice."""

    def __init__(self, pages: list[Page], longest_side: int, num_workers: int = 2):
        super().__init__()
        self.pages, self.longest_side, self.num_workers = pages, longest_side, num_workers

    def predict_dataloader(self) -> DataLoader:
        dataset = PageDataset(self.pages, self.longest_side, originals=True)
        return DataLoader(dataset, batch_size=1, collate_fn=collate_whole_pages,
                          **evaluation_options(len(dataset), self.num_workers))


class PageFilesWriter(BasePredictionWriter):
    """Writes each recognised page's files under ``out`` (see the module docstring), the JSON last."""

    def __init__(self, out: Path, pictures: bool):
        super().__init__(write_interval="batch")
        self.out, self.pictures = out, pictures

    def on_predict_start(self, trainer, pl_module) -> None:
        check_writable(self.out, "the transcriptions")

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        for i, page in enumerate(prediction):  # an unreadable page is logged by the loader, with its reason
            key = page["image_id"]
            write_page_files(page, batch, i, page_json(self.out, key), self.out / f"{key}.txt",
                             self.out / f"{key}.png" if self.pictures else None)


def page_json(out: Path, key: str) -> Path:
    return out / f"{key}.json"


def summarise(out: Path, keys: list[str], images: list[Path], csv_path: Path | None, seconds: float,
              recognised_now: int) -> dict:
    """``out/summary.json`` (and the CSV at ``csv_path``), streamed from the pages' JSON files: how many pages there
    are, are done, were recognised by this run and were already done, the failed ones with their reasons, those
    still missing (none after a complete run), the characters and this run's pages/s. Returns the summary."""
    failed, missing, characters = [], [], 0

    def rows() -> Iterator[tuple[str, str]]:
        nonlocal characters
        for key, image in zip(keys, images):
            path = page_json(out, key)
            if not path.is_file():
                missing.append(str(image))
                continue
            page = json.loads(path.read_text(encoding="utf-8"))
            if page["error"]:
                failed.append({"page": str(image), "reason": page["error"]})
            characters += len(page["characters"])
            yield key, format_predictions([c["code"] for c in page["characters"]],
                                          [[c["x"], c["y"]] for c in page["characters"]])

    if csv_path is None:
        for _ in rows():
            pass
    else:
        write_submission_rows(csv_path, rows())
    summary = {"pages": len(keys), "done": len(keys) - len(missing), "recognised_now": recognised_now,
               "already_done": len(keys) - recognised_now, "failed": failed, "missing": missing,
               "characters": characters, "seconds": round(seconds, 1),
               "pages_per_s": round(recognised_now / seconds, 3) if seconds > 0 else None}
    with atomic_file(out / "summary.json") as handle:
        json.dump(summary, handle, ensure_ascii=False, indent=1)
    return summary


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kuzu_lightning.recognize", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("detector", help="a CharDetector checkpoint")
    parser.add_argument("classifier", help="a CharClassifier checkpoint")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, globs or lists of paths")
    parser.add_argument("--out", required=True, type=Path, help="the output folder (created)")
    parser.add_argument("--csv", type=Path, help="also write a Kaggle-format submission of all pages here")
    parser.add_argument("--pictures", action="store_true", help="also draw each page beside its transcription (PNG)")
    parser.add_argument("--config", type=Path, help="thresholds written by predict.py validate --thresholds_out")
    parser.add_argument("--detection_threshold", type=float, help="keep detections scoring this or more")
    parser.add_argument("--min_confidence", type=float, help="drop characters whose class probability is below")
    parser.add_argument("--accelerator", default="auto", help="cpu, gpu, auto (default)")
    parser.add_argument("--devices", default="1", help="devices per node (default 1); more run DDP")
    parser.add_argument("--num_nodes", type=int, default=1, help="nodes (default 1)")
    parser.add_argument("--precision", default="32-true", help="Lightning precision, e.g. 16-mixed on a GPU")
    parser.add_argument("--num_workers", type=int, default=2, help="page-decoding processes per device (default 2)")
    return parser.parse_args(argv)


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


def run(argv: list[str] | None = None) -> dict | None:
    """The command; returns the summary in the first process (None in the others)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    from kuzu_lightning.models.recognizer import Recognizer

    images, roots = find_images(args.inputs)
    if not images:
        sys.exit(f"error: no image found in {' '.join(args.inputs)}")
    keys = output_keys(images, roots)
    remove_abandoned_partials(args.out, recursive=True)  # what a killed run was writing
    todo = [Page(key, image_path=image) for key, image in zip(keys, images) if not page_json(args.out, key).is_file()]
    log.info("%d pages, %d already done, %d to recognise", len(images), len(images) - len(todo), len(todo))
    recognizer = Recognizer.from_checkpoints(args.detector, args.classifier, **thresholds(args))
    devices = int(args.devices) if args.devices.isdigit() else args.devices
    distributed = args.num_nodes > 1 or (isinstance(devices, int) and devices > 1)
    trainer = L.Trainer(accelerator=args.accelerator, devices=devices, num_nodes=args.num_nodes,
                        strategy="ddp" if distributed else "auto", precision=args.precision, logger=False,
                        callbacks=[PageFilesWriter(args.out, args.pictures)], enable_model_summary=False)
    start = time.perf_counter()
    if todo:
        trainer.predict(recognizer, ScanPages(todo, recognizer.page_longest_side, args.num_workers),
                        return_predictions=False)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    if not trainer.is_global_zero:
        return None
    summary = summarise(args.out, keys, images, args.csv, time.perf_counter() - start, len(todo))
    print(f"{summary['done']} of {summary['pages']} pages done ({summary['recognised_now']} now, "
          f"{summary['pages_per_s']} pages/s), {len(summary['failed'])} failed; {args.out / 'summary.json'}")
    return summary


def main(argv: list[str] | None = None) -> None:
    run(argv)


if __name__ == "__main__":
    main()
