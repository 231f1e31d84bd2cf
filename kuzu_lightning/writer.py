"""``RecognitionWriter``: the Lightning callback that writes what the Recognizer predicts, page by page."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch.distributed as dist
from lightning.pytorch.callbacks import BasePredictionWriter

from kuzu_lightning.data.loaders import partial_name
from kuzu_lightning.records import recognized_page, submission_labels
from kuzu_lightning.submission import write_page_json, write_page_text, write_submission
from kuzu_lightning.viz import draw_transcription, write_png

log = logging.getLogger(__name__)


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


def write_page_files(page: dict, batch: dict, i: int, json_path: Path | None, text_path: Path | None,
                     picture_path: Path | None) -> None:
    """The files of one recognised ``page`` (page ``i`` of ``batch``), each that has a path: its picture
    (:func:`~kuzu_lightning.viz.draw_transcription`, not for a page that could not be read), its text, then its JSON
    last, so that a page whose JSON exists has all its files."""
    result = recognized_page(page)
    if picture_path and batch["images"][i] is not None:
        write_png(picture_path, draw_transcription(page_image(batch, i), result))
    if text_path:
        write_page_text(text_path, result)
    if json_path:
        write_page_json(json_path, result)


class RecognitionWriter(BasePredictionWriter):
    """Writes what :class:`~kuzu_lightning.Recognizer` predicts.

    - ``output``: the Kaggle submission, a row for every id of the DataModule's ``predict_ids()``
      in that order (without such a DataModule: the pages predicted, as they came), written once
      at the end through a temporary file; a page that could not be read, or on which nothing was
      recognised, gets empty ``labels`` and a logged error naming it;
    - ``json_dir``: ``{image_id}.json`` per page (see :mod:`~kuzu_lightning.submission`), if given;
    - ``text_dir``: ``{image_id}.txt`` per page, its text in reading order, a line per column, if given;
    - ``pictures_dir``: ``{image_id}.png`` per page, the scan with its boxes beside the characters read
      (:func:`~kuzu_lightning.viz.draw_transcription`, at the page's full size when the batch carries
      it), if given.

    Under DDP each process writes the JSON files and pictures of its pages, and the first process
    the submission of them all, so the file is the same whatever the number of devices. Before the
    first page, each output folder is checked to be writable: a run that could not save its work
    fails at once, naming the folder, rather than after recognising every page.
    """

    def __init__(self, output: str | Path, json_dir: str | Path | None = None, pictures_dir: str | Path | None = None,
                 text_dir: str | Path | None = None):
        super().__init__(write_interval="batch")
        self.output = Path(output)
        self.json_dir = Path(json_dir) if json_dir else None
        self.text_dir = Path(text_dir) if text_dir else None
        self.pictures_dir = Path(pictures_dir) if pictures_dir else None
        self.labels: dict[str, str] = {}
        self.problems: dict[str, str] = {}

    def on_predict_start(self, trainer, pl_module) -> None:
        self.labels, self.problems = {}, {}
        folders = [("the submission", self.output.parent), ("the pages' JSON", self.json_dir),
                   ("the pages' text", self.text_dir), ("the pictures", self.pictures_dir)]
        for what, folder in folders:
            if folder is not None:
                check_writable(folder, what)

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx=0):
        for i, page in enumerate(prediction):
            self.labels[page["image_id"]] = submission_labels(page)
            if page["error"]:
                self.problems[page["image_id"]] = f"could not be read ({page['error']})"
            elif not page["codes"]:
                self.problems[page["image_id"]] = "no characters recognised"
            image_id = page["image_id"]
            write_page_files(page, batch, i, self.json_dir and self.json_dir / f"{image_id}.json",
                             self.text_dir and self.text_dir / f"{image_id}.txt",
                             self.pictures_dir and self.pictures_dir / f"{image_id}.png")

    def on_predict_end(self, trainer, pl_module) -> None:
        labels, problems = self.labels, self.problems
        if dist.is_available() and dist.is_initialized() and trainer.world_size > 1:
            gathered = [None] * trainer.world_size
            dist.all_gather_object(gathered, (labels, problems))
            labels = {k: v for part, _ in gathered for k, v in part.items()}
            problems = {k: v for _, part in gathered for k, v in part.items()}
        if not trainer.is_global_zero:
            return
        data = trainer.datamodule
        image_ids = data.predict_ids() if hasattr(data, "predict_ids") else list(labels)  # else: as predicted
        for image_id in image_ids:
            if image_id not in labels:
                problems[image_id] = "was not predicted"
        for image_id, problem in problems.items():
            log.error("page %s %s: its submission row is empty", image_id, problem)
        path = write_submission(self.output, image_ids, labels)
        log.info("wrote %s: %d pages, %d characters, %d empty rows", path, len(image_ids),
                 sum(len(v.split()) // 3 for v in labels.values()), len(problems))
