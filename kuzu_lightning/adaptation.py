"""Book adaptation: the classifiers fine-tuned on the confident readings of a book's own pages (self-training), so
that they learn the hand of the book they read. No label is needed.

For the pages of one book (:func:`book_of` says which book a page is of):

1. **Pseudo-labels**: the recognizer (one model of each kind or an ensemble, with its test-time views) reads the
   pages (:class:`PseudoLabeller`); every character it keeps becomes a crop, cut as each classifier cuts its crops,
   with the class it was read as and that class's probability.
2. **Batch-norm statistics** (AdaBN, ``batchnorm``): each classifier's are re-estimated on all the book's crops,
   before and after the fine-tuning; the classifiers so adapted then read the crops again, and are the teacher.
3. **Self-training** (FixMatch-style, with a fixed teacher): for ``steps`` steps of ``batch_size`` crops drawn with
   replacement (each class equally often), but at most ``epochs`` passes over them, each classifier learns the class
   that the teacher read on the plain crop from the crop under strong augmentation
   (:func:`~kuzu_lightning.data.transforms.char_strong_transform`), with its training loss. Only crops read with a
   probability of ``confidence`` or more (and not as ``unk``) take part; a book with fewer than ``min_crops`` of them
   is not fine-tuned. Batch norm stays frozen; Adam at a constant ``lr``.

Each adapted classifier is a checkpoint of its own (:func:`save_adapted`): the source's hyper-parameters and data
settings, the adapted weights, and ``adaptation`` (the book, the source checkpoint, the settings, the counts). A
checkpoint adapted from the same source with the same settings is reused (:func:`reusable`), so a resumed run, or a
later run on more pages of the book, does not adapt again.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path, PurePosixPath

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from kuzu_lightning.adaptation_settings import AdaptationSettings
from kuzu_lightning.atomic import partial_name
from kuzu_lightning.data.kaggle import Page
from kuzu_lightning.data.pages import PageDataModule
from kuzu_lightning.data.splits import book_id
from kuzu_lightning.data.transforms import char_strong_transform
from kuzu_lightning.models.checkpoints import checkpoint_paths, load_trained, read_checkpoint
from kuzu_lightning.models.classifier import CharClassifier
from kuzu_lightning.pretrained import resolve

log = logging.getLogger(__name__)


def book_of(key: str) -> str:
    """The book of the page keyed ``key`` (its path in a collection, ``/``-separated): the Kaggle or CODH book id its
    name carries, in its folder (``scans/100241706_00004_2`` -> ``scans/100241706``), else its folder (``.`` at the
    top)."""
    path = PurePosixPath(key)
    book = book_id(path.name)
    return str(path.parent) if book == path.name else str(path.parent / book)


def adapted_paths(out: Path, book: str, classifiers: int) -> list[Path]:
    """Where the adapted classifiers of ``book`` are kept: ``out/BOOK/adapted-classifier-I.ckpt``."""
    return [out / book / f"adapted-classifier-{i}.ckpt" for i in range(classifiers)]


class PseudoLabeller(L.LightningModule):
    """A Recognizer's readings as training crops: per page, its ``image_id``, the ``crops`` of its characters for each
    classifier (``N x 3 x S x S`` ``uint8``), their class indices ``labels`` and ``probabilities``."""

    def __init__(self, recognizer: L.LightningModule):
        super().__init__()
        self.recognizer = recognizer

    def predict_step(self, batch: dict, batch_idx: int) -> list[dict]:
        pages = []
        for i, page in enumerate(self.recognizer.recognize_batch(batch)):
            boxes = page["boxes"].to(self.device)
            crops = [(self.recognizer.crops(batch, i, boxes, model) * 255).round().to(torch.uint8).cpu()
                     for model in range(len(self.recognizer.classifiers))]
            pages.append({"image_id": page["image_id"], "crops": crops, "labels": page["labels"],
                          "probabilities": page["probabilities"].float()})
        return pages


class PseudoLabelledCrops(Dataset):
    """Crops (``N x 3 x S x S`` ``uint8``) with their pseudo-labels, each drawn under ``transform`` (albumentations,
    on ``S x S x 3``)."""

    def __init__(self, crops: torch.Tensor, labels: torch.Tensor, transform):
        self.crops, self.labels, self.transform = crops, labels, transform

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int) -> dict:
        image = self.transform(image=self.crops[i].permute(1, 2, 0).numpy())["image"]
        return {"images": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
                "labels": int(self.labels[i])}


def batch_norms(network: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every batch-norm layer of ``network``."""
    return [module for module in network.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]


class SelfTraining(L.LightningModule):
    """Fine-tunes a :class:`CharClassifier` on pseudo-labelled crops with its own loss: Adam at a constant ``lr``,
    batch norm frozen (its statistics are AdaBN's business)."""

    def __init__(self, classifier: CharClassifier, lr: float):
        super().__init__()
        self.classifier, self.lr = classifier, lr

    def on_train_epoch_start(self) -> None:
        self.classifier.train()  # dropout on, as in training
        for norm in batch_norms(self.classifier):
            norm.eval()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.classifier.loss(*self.classifier.network(batch["images"]), batch["labels"])
        self.log("adapt/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.classifier.parameters(), lr=self.lr)


@torch.no_grad()
def reestimate_batchnorm(network: nn.Module, crops: torch.Tensor, batch_size: int = 256) -> None:
    """AdaBN: the running mean and variance of every batch norm of ``network`` recomputed over ``crops`` (their
    plain average over batches of ``batch_size``); nothing else changes. Fewer than two crops change nothing."""
    norms = batch_norms(network)
    if not norms or len(crops) < 2:
        return
    momenta = [norm.momentum for norm in norms]
    training = network.training
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average
    network.train()
    device = next(network.parameters()).device
    for chunk in crops.split(batch_size):
        if len(chunk) > 1:
            network(chunk.to(device))
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    network.train(training)


def source_record(source: str | Path, settings: AdaptationSettings) -> dict:
    """What an adapted checkpoint must record to be reused: its source checkpoint as it is now, and the settings."""
    info = Path(source).stat()
    return {"source": str(source), "source_size": info.st_size, "source_mtime_ns": info.st_mtime_ns,
            "settings": asdict(settings)}


def reusable(path: Path, source: str | Path, settings: AdaptationSettings) -> bool:
    """Whether ``path`` holds a classifier adapted from ``source`` (unchanged since) with ``settings``."""
    try:
        adaptation = read_checkpoint(path).get("adaptation") or {}
    except (ValueError, FileNotFoundError):
        return False
    return {key: adaptation.get(key) for key in ("source", "source_size", "source_mtime_ns", "settings")} \
        == source_record(source, settings)


def save_adapted(model: CharClassifier, source: str | Path, path: Path, adaptation: dict) -> None:
    """Save ``model``, adapted from the checkpoint ``source``, at ``path`` (atomically): the source's hyper-parameters
    and data settings, ``model``'s weights and the ``adaptation`` record; it loads as any classifier checkpoint."""
    checkpoint = read_checkpoint(source)
    kept = {key: checkpoint[key] for key in ("hyper_parameters", "datamodule_hyper_parameters",
                                             "pytorch-lightning_version") if key in checkpoint}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(partial_name(path.name))
    try:
        torch.save({**kept, "state_dict": {key: value.cpu() for key, value in model.state_dict().items()},
                    "adaptation": adaptation}, partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


@torch.no_grad()
def teacher_readings(models: Sequence[CharClassifier], crops: Sequence[torch.Tensor],
                     batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """The classes and their probabilities that ``models`` (an ensemble: probabilities averaged) read on their
    ``crops`` (one tensor per model, the same characters)."""
    probabilities = torch.stack([torch.cat([model.eval()(chunk) for chunk in model_crops.split(batch_size)])
                                 for model, model_crops in zip(models, crops)]).mean(0)
    probability, label = probabilities.max(1)
    return label, probability


def self_train(model: CharClassifier, crops: torch.Tensor, labels: torch.Tensor, settings: AdaptationSettings,
               trainer_options: dict | None = None) -> None:
    """Step 3 of the module docstring: ``model`` fine-tuned on ``crops`` (``N x 3 x S x S`` ``uint8``) read as
    ``labels`` for ``settings.steps`` steps, the classes drawn equally often; it ends in eval mode on the CPU."""
    transform = char_strong_transform()
    transform.set_random_seed(settings.seed)
    counts = labels.bincount()
    sampler = WeightedRandomSampler(1.0 / counts[labels].float(), settings.steps * settings.batch_size,
                                    replacement=True, generator=torch.Generator().manual_seed(settings.seed))
    loader = DataLoader(PseudoLabelledCrops(crops, labels, transform), batch_size=settings.batch_size, sampler=sampler,
                        drop_last=True)
    trainer = L.Trainer(max_steps=settings.steps, max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_model_summary=False, enable_progress_bar=False, **(trainer_options or {}))
    model.train()
    trainer.fit(SelfTraining(model, settings.lr), loader)
    model.cpu().eval()


def adapt_classifiers(sources: Sequence[str | Path], crops: Sequence[torch.Tensor], labels: torch.Tensor,
                      probabilities: torch.Tensor, settings: AdaptationSettings,
                      trainer_options: dict | None = None) -> tuple[list[CharClassifier], dict]:
    """The classifiers of checkpoints ``sources`` adapted to one book (steps 2 and 3 of the module docstring), in eval
    mode on the CPU, and the counts (``crops``, ``confident``, ``steps`` run). ``crops``: the book's characters as each
    classifier cuts them (``N x 3 x S x S`` ``uint8``), read by the recognizer as ``labels`` with ``probabilities``;
    with ``batchnorm`` and ``steps``, the classifiers with their re-estimated statistics read them again (the teacher).
    ``trainer_options``: the fine-tuning ``L.Trainer``'s (``accelerator``, ``precision``...)."""
    models = [load_trained(CharClassifier, source)[0] for source in sources]
    if settings.batchnorm:
        for model, model_crops in zip(models, crops):
            reestimate_batchnorm(model.network, model_crops)
        if settings.steps and len(labels):  # the teacher's readings serve the fine-tuning alone
            labels, probabilities = teacher_readings(models, crops)
    keep = probabilities >= settings.confidence
    if models[0].unk_index is not None:
        keep &= labels != models[0].unk_index
    confident = keep.nonzero().flatten()
    steps = min(settings.steps, math.ceil(settings.epochs * len(confident) / settings.batch_size)) \
        if len(confident) >= settings.min_crops else 0
    for model, model_crops in zip(models, crops):
        if steps:
            self_train(model, model_crops[confident], labels[confident], replace(settings, steps=steps),
                       trainer_options)
            if settings.batchnorm:
                reestimate_batchnorm(model.network, model_crops)
        model.eval()
    return models, {"crops": len(labels), "confident": len(confident), "steps": steps}


def adapt_book(recognizer: L.LightningModule, book: str, pages: Sequence[Page], paths: Sequence[Path],
               settings: AdaptationSettings, trainer_options: dict | None = None, num_workers: int = 2) -> dict:
    """Adapt each classifier of ``recognizer`` to the ``pages`` of ``book`` and save it at its ``paths`` (one per
    classifier), unless the checkpoints there are :func:`reusable`. Returns what was done: ``reused``, or the counts,
    the pages and the seconds it took."""
    sources = [resolve(source, "classifier") for source in checkpoint_paths(recognizer.hparams.classifier_ckpt)]
    if all(reusable(path, source, settings) for path, source in zip(paths, sources)):
        log.info("book %s: its adapted classifiers are reused (%s)", book, paths[0].parent)
        return {"reused": True}
    start = time.perf_counter()
    trainer = L.Trainer(logger=False, enable_model_summary=False, enable_progress_bar=False, **(trainer_options or {}))
    readings = [page for batch in trainer.predict(PseudoLabeller(recognizer), PageDataModule.for_scans(
        list(pages), recognizer.page_longest_side, num_workers)) for page in batch]
    crops = [torch.cat([page["crops"][model] for page in readings]) for model in range(len(sources))]
    models, counts = adapt_classifiers(sources, crops, torch.cat([page["labels"] for page in readings]),
                                       torch.cat([page["probabilities"] for page in readings]), settings,
                                       trainer_options)
    for model, source, path in zip(models, sources, paths):
        save_adapted(model, source, path, {**source_record(source, settings), "book": book, "pages": len(pages),
                                           **counts})
    seconds = round(time.perf_counter() - start, 1)
    log.info("book %s adapted on %d pages in %.1f s: %d of %d characters read confidently, %d steps", book, len(pages),
             seconds, counts["confident"], counts["crops"], counts["steps"])
    return {"reused": False, "pages": len(pages), **counts, "seconds": seconds}


def adapt_books(recognizer: L.LightningModule, pages: Sequence[Page], todo: Sequence[Page], out: Path,
                settings: AdaptationSettings, trainer_options: dict | None = None,
                num_workers: int = 2) -> tuple[list[Page], AdaptedWeights, dict[str, dict]]:
    """Adapt ``recognizer``'s classifiers to each book of the pages ``todo`` on all its ``pages`` (a collection's,
    each with its ``image_path``; its ``image_id`` says its book, :func:`book_of`), or reuse what an earlier run adapted,
    under ``out`` (:func:`adapted_paths`). Returns ``todo`` ordered by book, the callback that loads each book's
    classifiers before its pages are read, and what :func:`adapt_book` did for each book."""
    books: dict[str, list[Page]] = {}
    for page in pages:
        books.setdefault(book_of(page.image_id), []).append(page)
    wanted = sorted({book_of(page.image_id) for page in todo})
    checkpoints = {book: adapted_paths(Path(out), book, len(recognizer.classifiers)) for book in wanted}
    done = {}
    for n, book in enumerate(wanted, 1):
        log.info("adapting to book %s (%d of %d, %d pages)", book, n, len(wanted), len(books[book]))
        done[book] = adapt_book(recognizer, book, books[book], checkpoints[book], settings,
                                {**(trainer_options or {}), "devices": 1}, num_workers)
    todo = sorted(todo, key=lambda page: book_of(page.image_id))
    return todo, AdaptedWeights(checkpoints, {page.image_id: book_of(page.image_id) for page in todo}), done


class AdaptedWeights(L.Callback):
    """Loads a Recognizer's classifiers' weights adapted to a book: ``checkpoints`` by book (one per classifier);
    as a callback, before each page batch of a prediction, those of the batch's book (``books`` by ``image_id``; the
    pages of a batch must be of one book)."""

    def __init__(self, checkpoints: dict[str, Sequence[Path]], books: dict[str, str] | None = None):
        self.checkpoints, self.books, self.current = checkpoints, books or {}, None

    def load(self, recognizer: L.LightningModule, book: str) -> None:
        """``book``'s weights into ``recognizer``'s classifiers (nothing when they are there already)."""
        if book != self.current:
            for model, path in zip(recognizer.classifiers, self.checkpoints[book]):
                model.load_state_dict(read_checkpoint(path)["state_dict"])
            self.current = book

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        books = {self.books[image_id] for image_id in batch["image_ids"]}
        if len(books) != 1:
            raise ValueError(f"a page batch holds pages of several books ({', '.join(sorted(books))})")
        self.load(pl_module, books.pop())
