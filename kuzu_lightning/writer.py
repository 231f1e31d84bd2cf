"""``PageWriter``: the Lightning callback that writes what the Recognizer predicts, page by page, and at the end the
run's summary and Kaggle submission. ``kuzu predict`` (``predict.py``) and ``kuzu recognize`` both write through it.

Per page, under ``out``, at the page's key (its ``image_id``: a Kaggle image id, or for ``kuzu recognize`` the
scan's path relative to the common folder of its inputs, without suffix):

- ``{key}.json``, always: the scan it was read from (``source``: size, modification time, path, as the scan was
  when the run began) and the :class:`~kuzu_lightning.records.RecognizedPage` (characters, lines in reading order,
  text; original-scan pixels), with ``error`` set when the page could not be read;
- ``{key}.txt`` with the format ``txt``: its text, one line per column in reading order;
- ``{key}.page.xml`` with the format ``page``: its PAGE XML (:mod:`kuzu_lightning.page_xml`);
- ``{key}.alto.xml`` with the format ``alto``: its ALTO v4 (:mod:`kuzu_lightning.alto`);
- with ``html``, ``{key}.html`` and ``{key}.view.jpg``: the page in the viewer (:mod:`kuzu_lightning.viewer`);
- ``{key}.png`` with the format ``png``: the scan beside its transcription (:func:`~kuzu_lightning.viz.draw_transcription`,
  at the page's full size when the batch carries it; none for a page that could not be read).

Each file is written to a temporary name and renamed into place, the JSON last: a page is done when its JSON
exists. Before the first page, every output folder is checked to be writable, so a run that could not save its
work fails at once, naming the folder.

At the end, once every process has written its pages (under DDP each process writes the pages it recognised), the
first process streams the JSON files of the run's pages, in their order, into ``out/summary.json`` (how many pages
there are and are done, the failed ones and the inputs that are no pages with their reasons, those missing, the
characters, this run's pages/s) and, when ``csv`` is given, the Kaggle submission: a row for every page, empty for
a page that could not be read or on which nothing was recognised (each logged, naming the page), and with ``html`` the
viewer's index. Nothing of a page is kept in memory after its files are written, so the files are the same whatever
the number of processes and however large the run.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch.distributed as dist
from lightning.pytorch.callbacks import BasePredictionWriter

from kuzu_lightning.alto import alto_xml
from kuzu_lightning.atomic import atomic_file, partial_name
from kuzu_lightning.collection import Rejected, printable
from kuzu_lightning.data.formats import format_predictions
from kuzu_lightning.outputs import scan_of, source_of, write_page_json, write_page_text, write_submission_rows, write_xml
from kuzu_lightning.page_xml import page_xml
from kuzu_lightning.records import recognized_page
from kuzu_lightning.viewer import write_page_view, write_site
from kuzu_lightning.viz import draw_transcription, write_png

log = logging.getLogger(__name__)

FORMATS = ("json", "txt", "page", "alto", "png")
"""What can be written per page; ``json`` always is (a page is done when its JSON exists)."""


def parse_formats(formats: str | Sequence[str]) -> tuple[str, ...]:
    """``"json,txt,page,alto,png"`` (or a list of names) as the tuple of :data:`FORMATS` to write, ``json`` always
    among them; ``ValueError`` naming an unknown format."""
    names = [name.strip() for name in (formats.split(",") if isinstance(formats, str) else formats) if name.strip()]
    unknown = sorted(set(names) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown output format(s) {', '.join(unknown)}: the formats are {', '.join(FORMATS)}")
    return tuple(name for name in FORMATS if name in names or name == "json")


def check_writable(folder: Path, what: str) -> None:
    """Create ``folder`` and write and remove a file in it; ``OSError`` naming it and ``what`` goes there if not."""
    probe = folder / partial_name(".write-check")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise OSError(f"cannot write {what} to {folder}: {error.strerror or error}") from None


def page_image(batch: dict, i: int) -> np.ndarray:
    """Page ``i`` of a page batch as an RGB ``H x W x 3`` array: at full size when the batch carries ``originals``."""
    originals = batch.get("originals")
    image = originals[i] if originals is not None and originals[i] is not None else batch["images"][i]
    return image.permute(1, 2, 0).cpu().numpy()


def page_json(out: Path, key: str) -> Path:
    """Where the JSON of the page keyed ``key`` goes under ``out``."""
    return out / f"{key}.json"


def write_page_files(page: dict, batch: dict, i: int, out: Path, formats: Sequence[str],
                     source: dict | None = None, html: bool = False) -> None:
    """The files of one recognised ``page`` (page ``i`` of ``batch``) under ``out``, at its ``image_id``: its picture,
    text, PAGE XML and ALTO when ``formats`` ask for them (the XML naming its scan, ``source["path"]``, else its key),
    and with ``html`` its page in the viewer (:mod:`kuzu_lightning.viewer`), then its JSON last (with its ``source``,
    :func:`~kuzu_lightning.outputs.source_of`), so that a page whose JSON exists has all its files."""
    result, key = recognized_page(page), page["image_id"]
    if "png" in formats and batch["images"][i] is not None:
        write_png(out / f"{key}.png", draw_transcription(page_image(batch, i), result))
    if "txt" in formats:
        write_page_text(out / f"{key}.txt", result)
    scan = printable(scan_of(source)) if source else key
    if "page" in formats:
        write_xml(out / f"{key}.page.xml", page_xml(result, scan))
    if "alto" in formats:
        write_xml(out / f"{key}.alto.xml", alto_xml(result, scan))
    if html:
        write_page_view(out, key, result.to_dict(), None if batch["images"][i] is None else page_image(batch, i))
    write_page_json(page_json(out, key), result, source)


def summarise(out: Path, pages: Sequence[tuple[str, str]], csv: Path | None, seconds: float,
              recognised_now: int, rejected: Sequence[Rejected] = ()) -> dict:
    """``out/summary.json`` (and the submission at ``csv``), streamed from the JSON files of ``pages``, each
    ``(key, source)``, in order. Returns the summary: ``pages``, ``done``, ``recognised_now`` (by this run),
    ``already_done``, ``failed`` (``{"input": source, "reason": ...}``: the ``rejected`` inputs, which are no pages,
    then the pages that could not be read), ``missing`` (sources without a JSON: none after a complete run),
    ``characters``, ``seconds`` and ``pages_per_s``. A page that failed, has no characters or is missing gets an empty
    submission row and a logged error naming it."""
    failed, missing, characters = [{"input": r.input, "reason": r.reason} for r in rejected], [], 0

    def rows() -> Iterator[tuple[str, str]]:
        nonlocal characters
        for key, source in pages:
            path = page_json(out, key)
            if not path.is_file():
                missing.append(source)
                log.error("page %s was not recognised: its submission row is empty", key)
                yield key, ""
                continue
            page = json.loads(path.read_text(encoding="utf-8"))
            if page["error"]:
                failed.append({"input": source, "reason": page["error"]})
                log.error("page %s could not be read (%s): its submission row is empty", key, page["error"])
            elif not page["characters"] and csv is not None:
                log.error("page %s: no characters recognised, its submission row is empty", key)
            characters += len(page["characters"])
            yield key, format_predictions([c["code"] for c in page["characters"]],
                                          [[c["x"], c["y"]] for c in page["characters"]])

    if csv is None:
        for _ in rows():
            pass
    else:
        write_submission_rows(csv, rows())
        log.info("wrote %s: %d pages, %d characters", csv, len(pages), characters)
    summary = {"pages": len(pages), "done": len(pages) - len(missing), "recognised_now": recognised_now,
               "already_done": len(pages) - recognised_now, "failed": failed, "missing": missing,
               "characters": characters, "seconds": round(seconds, 1),
               "pages_per_s": round(recognised_now / seconds, 3) if seconds > 0 else None}
    with atomic_file(out / "summary.json") as handle:
        json.dump(summary, handle, ensure_ascii=False, indent=1)
    return summary


class PageWriter(BasePredictionWriter):
    """Writes each recognised page's files under ``out`` and, at the end, the summary and the submission (see the
    module docstring).

    Args:
        out: the folder of the pages' files (created).
        formats: what to write per page besides the JSON, of :data:`FORMATS`.
        csv: the Kaggle submission to write at the end, or None.
        html: also write each page's page in the viewer and, at the end, its index (:mod:`kuzu_lightning.viewer`).
        pages: the run's pages as ``(key, source)`` for the summary and the submission, in their order, pages done by
            an earlier run included (``kuzu recognize`` resumes); default: the DataModule's ``predict_pages()``.
        rejected: the inputs that are no pages (:class:`~kuzu_lightning.collection.Rejected`), for the summary.
    """

    def __init__(self, out: str | Path, formats: Sequence[str] = ("json", "txt"), csv: str | Path | None = None,
                 pages: Sequence[tuple[str, str]] | None = None, rejected: Sequence[Rejected] = (), html: bool = False):
        super().__init__(write_interval="batch")
        self.out, self.formats, self.html = Path(out), parse_formats(formats), html
        self.csv = Path(csv) if csv else None
        self.pages, self.rejected = pages, rejected
        self.sources: dict[str, dict | None] = {}
        self.summary: dict | None = None
        self._start = 0.0

    def on_predict_start(self, trainer, pl_module) -> None:
        if self.pages is None and not hasattr(trainer.datamodule, "predict_pages"):
            raise TypeError("PageWriter needs its pages, or a DataModule with predict_pages() (PageDataModule)")
        check_writable(self.out, "the pages' files")
        if self.csv is not None:
            check_writable(self.csv.parent, "the submission")
        self._start = time.perf_counter()
        # the scans as they are before any is read: one changed while the run reads it is read again next time
        self.sources = {page.image_id: source_of(page.image_path) for page in trainer.datamodule.predict_pages()}

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        for i, page in enumerate(prediction):  # an unreadable page is logged by the loader, with its reason
            write_page_files(page, batch, i, self.out, self.formats, self.sources.get(page["image_id"]), self.html)

    def on_predict_end(self, trainer, pl_module) -> None:
        if dist.is_available() and dist.is_initialized() and trainer.world_size > 1:
            dist.barrier()  # every process's pages are written
        if not trainer.is_global_zero:
            return
        predicted = [(page.image_id, str(page.image_path)) for page in trainer.datamodule.predict_pages()]
        self.summary = summarise(self.out, self.pages or predicted, self.csv, time.perf_counter() - self._start,
                                 len(predicted), self.rejected)
        if self.html:
            write_site(self.out, [key for key, _ in self.pages or predicted])
