"""Accuracy benchmarks (``kuzu benchmark real``, ``kuzu benchmark reading-order``); each gives one JSON object,
printed as the command's last line.

    kuzu benchmark real --real_data DIR --detector CKPT [--classifier CKPT] [--detection_threshold T]
    kuzu benchmark reading-order [--real_data DIR]

``real`` is the check on real Kuzushiji: trained models measured on the labelled real pages and on KMNIST.

On the labelled real pages (:func:`~kuzu_lightning.data.real_pages.labelled_real_pages`: five
Kaggle pages of book 100241706, one page of each of the five books of ``codh-sample/``, and one page of book
200010454 whose boxes have no code points; 11 pages of 7 books):

- the class-agnostic detection F1 (the competition metric, classes ignored) of the detector and of
  the model-free ink-blob baseline (:mod:`kuzu_lightning.tools.baseline`), per book and overall;
- the reading order of the true boxes against the true one (CODH's ``Char ID``), per book: the successor accuracy;
- with ``--classifier``: its top-1 and top-5 on the characters of known class cut from their true
  boxes (1,292), the end-to-end F1 with classes of detector + classifier on the pages of known classes (10), each
  per book and overall, and its top-1 on the 10,000 KMNIST test characters, scores restricted to KMNIST's 10
  classes.

``--detector`` and ``--classifier`` take several checkpoints (an ensemble), read as the Recognizer reads them. With
``--adapt`` (:mod:`kuzu_lightning.adaptation`), the classifier's scores on the labelled pages again under ``adapted``,
after each book of known classes is adapted on its own pages' scans (no label is read), with each book's time.
Adaptation changes no detection; KMNIST, which is no book, is not adapted to.

Detections are kept above the detector's ``detection_threshold`` (the best on its validation books, recorded
in its checkpoint; else its ``score_threshold``) or ``--detection_threshold``, in both scores; the result
says which. The real pages are a check, never a validation set: do not choose settings on them. When the data
is absent the benchmark says so and reports nothing else.

``reading-order`` is :func:`bench_reading_order`.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from kuzu_lightning.data.formats import format_predictions
from kuzu_lightning.data.kaggle import Page
from kuzu_lightning.data.pages import EVAL_LONGEST_SIDE, PageDataset, collate_whole_pages
from kuzu_lightning.data.real_pages import UNKNOWN_CODE, kmnist_test, labelled_real_pages
from kuzu_lightning.geometry import box_centres
from kuzu_lightning.metrics import score_frames
from kuzu_lightning.tools.baseline import predict_page

log = logging.getLogger(__name__)


def solution(pages: Sequence[Page]) -> pd.DataFrame:
    """The pages' labels as a Kaggle ``image_id,labels`` frame."""
    return pd.DataFrame({"image_id": [page.image_id for page in pages], "labels": [page.labels() for page in pages]})


def score_detections(pages: Sequence[Page], submission: pd.DataFrame) -> dict:
    """Class-agnostic competition F1 of ``submission`` (an ``image_id,labels`` frame of predicted
    centres) on ``pages``: ``{"overall": {f1, precision, recall, tp, fp, fn, pages}, "books": {book: ...}}``."""
    books = {}
    for book in sorted({page.book for page in pages}):
        ids = [page.image_id for page in pages if page.book == book]
        books[book] = score_frames(submission[submission["image_id"].isin(ids)],
                                   solution([page for page in pages if page.book == book]), class_agnostic=True)
    return {"overall": score_frames(submission, solution(pages), class_agnostic=True), "books": books}


def classes_known(pages: Sequence[Page]) -> list[Page]:
    """The pages whose characters all have a code point."""
    return [page for page in pages if UNKNOWN_CODE not in page.codes]


def baseline_submission(pages: Sequence[Page]) -> pd.DataFrame:
    """The ink-blob baseline on each page, as :func:`kuzu_lightning.tools.baseline.predict_page` predicts it."""
    rows = [predict_page(page.image_path, UNKNOWN_CODE) for page in pages]
    return pd.DataFrame({"image_id": [page.image_id for page in pages], "labels": rows})


def _page_batches(pages: Sequence[Page], longest_side: int, originals: bool = False):
    """One-page batches of ``pages`` resized to ``longest_side`` (with the full-size page for crops with ``originals``)."""
    dataset = PageDataset(list(pages), longest_side, originals=originals)
    for i in range(len(dataset)):
        yield collate_whole_pages([dataset[i]])


def boxes_submission(pages: Sequence[Page], boxes: Sequence[torch.Tensor]) -> pd.DataFrame:
    """The centres of each page's detected ``boxes`` (xyxy, original-scan pixels), classes unknown, as an
    ``image_id,labels`` frame."""
    rows = [format_predictions([UNKNOWN_CODE] * len(found), box_centres(found.cpu()).numpy().round()) for found in boxes]
    return pd.DataFrame({"image_id": [page.image_id for page in pages], "labels": rows})


def detector_submission(detector, longest_side: int, pages: Sequence[Page], threshold: float) -> pd.DataFrame:
    """The centres of a loaded ``CharDetector``'s boxes scoring ``threshold`` or more on each page resized to
    ``longest_side`` (the scale it was validated at)."""
    return boxes_submission(pages, [boxes for _, boxes, _ in detector.read_pages(pages, longest_side, threshold)])


def top_k(probabilities: torch.Tensor, truth: Sequence[str], codes: Sequence[str], k: int) -> float:
    """Share of rows whose true code point is among their ``k`` most probable (unknown classes count as misses)."""
    index = {code: i for i, code in enumerate(codes)}
    target = torch.tensor([index.get(code, -1) for code in truth])
    best = probabilities.topk(min(k, probabilities.shape[1]), dim=1).indices
    return float((best == target[:, None]).any(dim=1).float().mean()) if len(truth) else float("nan")


def true_box_scores(probabilities: torch.Tensor, truth: Sequence[str], codes: Sequence[str]) -> dict:
    """Top-1 and top-5 of class ``probabilities`` (one row per true box) against the ``truth`` code points."""
    return {"characters": len(truth), "in_vocabulary": round(float(np.mean([code in codes for code in truth])), 4),
            "top1": round(top_k(probabilities, truth, codes, 1), 4), "top5": round(top_k(probabilities, truth, codes, 5), 4)}


@torch.inference_mode()
def recognizer_scores(recognizer, pages: Sequence[Page], shared: Path | None, before_page=None) -> dict:
    """Of a loaded ``Recognizer``, in one pass over ``pages`` (each page detected once): the detection F1 at its
    ``detection_threshold``; on the pages of known classes, top-1/top-5 on true-box crops and the end-to-end F1, per
    book and overall; and, with the real data folder ``shared``, KMNIST top-1 (see the module docstring).
    ``before_page(page)`` is called before each page is read."""
    known = classes_known(pages)
    known_ids = {page.image_id for page in known}
    detected, probabilities, rows = [], [], []
    for batch, page in zip(_page_batches(pages, recognizer.page_longest_side, originals=True), pages):
        if before_page is not None:
            before_page(page)
        found = recognizer.detect(batch)
        detected.append(found[0]["boxes"])
        if page.image_id in known_ids:
            probabilities.append(recognizer.classify_boxes(batch, 0, torch.from_numpy(page.boxes)))
            characters = recognizer.recognize_batch(batch, found)[0]
            rows.append(format_predictions(characters["codes"], box_centres(characters["boxes"]).numpy().round()))
    codes = recognizer.codes
    truth = [code for page in known for code in page.codes]
    overall = true_box_scores(torch.cat(probabilities), truth, codes)
    result = {"detection_threshold": recognizer.detection_threshold,
              "detection": score_detections(pages, boxes_submission(pages, detected)),
              "true_box_characters": overall["characters"], "true_box_in_vocabulary": overall["in_vocabulary"],
              "true_box_top1": overall["top1"], "true_box_top5": overall["top5"], "true_box_books": {}}
    submission = pd.DataFrame({"image_id": [page.image_id for page in known], "labels": rows})
    result["end_to_end"] = {"overall": score_frames(submission, solution(known)), "books": {}}
    for book in sorted({page.book for page in known}):
        mine = [i for i, page in enumerate(known) if page.book == book]
        result["true_box_books"][book] = true_box_scores(torch.cat([probabilities[i] for i in mine]),
                                                         [code for i in mine for code in known[i].codes], codes)
        result["end_to_end"]["books"][book] = score_frames(submission.iloc[mine], solution([known[i] for i in mine]))
    if shared is None:
        return result
    try:
        images, kmnist_codes = kmnist_test(shared)
    except FileNotFoundError as error:
        log.warning("KMNIST not scored: %s", error)
        return result
    classes = sorted(set(kmnist_codes))
    missing = [code for code in classes if code not in recognizer.class_index]
    if missing:
        result["kmnist_top1"] = None
        log.warning("KMNIST not scored: the classifier has no class for %s", ", ".join(missing))
        return result

    def crops(size: int) -> torch.Tensor:
        resized = np.stack([cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR) for image in images])
        return torch.from_numpy(resized).float().div(255)[:, None].expand(-1, 3, -1, -1)

    scores = torch.stack([recognizer.classify(crops(size), model)
                          for model, (size, _) in enumerate(recognizer.crop_settings)]).mean(0)
    scores = scores[:, [recognizer.class_index[code] for code in classes]]
    result["kmnist_top1"] = round(float(np.mean([classes[i] == code for i, code in
                                                 zip(scores.argmax(1).tolist(), kmnist_codes)])), 4)
    return result


def adapted_scores(recognizer, pages: Sequence[Page], adaptation) -> dict:
    """:func:`recognizer_scores` (KMNIST left out) after each book of known classes is adapted on its ``pages``'
    scans with the :class:`~kuzu_lightning.adaptation_settings.AdaptationSettings` ``adaptation``, and what adapting
    each book did (``adaptation``: pages, characters, confident ones, steps, seconds)."""
    from kuzu_lightning.adaptation import adapt_books

    scans = [Page(page.image_id, image_path=page.image_path) for page in classes_known(pages)]
    with tempfile.TemporaryDirectory() as folder:
        _, weights, done = adapt_books(recognizer, scans, scans, Path(folder), adaptation, {"accelerator": "cpu"},
                                       num_workers=0)

        def before_page(page: Page) -> None:
            if page.image_id in weights.books:
                weights.load(recognizer, weights.books[page.image_id])

        return {**recognizer_scores(recognizer, pages, None, before_page), "adaptation": done}


def bench_real(shared: str | Path, detector: Sequence[str] | None = None, classifier: Sequence[str] | None = None,
               detection_threshold: float | None = None, adaptation=None, **settings) -> dict:
    """See the module docstring; ``{"skipped": reason}`` when the real data is absent. ``detector`` and ``classifier``
    are lists of checkpoints (one detector alone without a classifier); ``adaptation``: the
    :class:`~kuzu_lightning.adaptation_settings.AdaptationSettings` to score after book adaptation with, or None;
    ``settings`` go to the ``Recognizer`` (``page_scales``, ``crop_views``)."""
    shared = Path(shared)
    try:
        pages = labelled_real_pages(shared)
    except FileNotFoundError as error:
        return {"benchmark": "real", "skipped": str(error)}
    result = {"benchmark": "real", "pages": len(pages), "characters": sum(len(page) for page in pages),
              "books": sorted({page.book for page in pages}),
              "baseline_detection": score_detections(pages, baseline_submission(pages)),
              "reading_order": real_reading_order(shared)}
    if detector and not classifier:
        from kuzu_lightning.models.checkpoints import load_trained
        from kuzu_lightning.models.detector import CharDetector

        if len(detector) > 1 or settings or adaptation:
            raise ValueError("several detectors, test-time views and --adapt are read with a --classifier")
        model, data = load_trained(CharDetector, detector[0])
        threshold = model.detection_threshold if detection_threshold is None else detection_threshold
        submission = detector_submission(model, data.get("eval_longest_side") or EVAL_LONGEST_SIDE, pages, threshold)
        result.update(detector=detector[0], detection_threshold=threshold,
                      detection=score_detections(pages, submission))
    if detector and classifier:
        from kuzu_lightning.models.recognizer import Recognizer

        recognizer = Recognizer.from_checkpoints(detector, classifier, detection_threshold=detection_threshold,
                                                 **settings)
        result.update(detector=detector, classifier=classifier, **recognizer_scores(recognizer, pages, shared))
        if adaptation is not None:
            result["adapted"] = adapted_scores(recognizer, pages, adaptation)
    return result


def real_reading_order(shared: Path) -> dict:
    """The successor accuracy of :func:`~kuzu_lightning.reading_order.reading_order` on the true boxes of the pages
    whose true order is known (CODH's ``Char ID``: ``kuzushiji-real/codh/`` and ``codh-sample/``), per book."""
    from kuzu_lightning.data.kaggle import read_codh_coordinates
    from kuzu_lightning.data.real_pages import codh_sample_pages

    codh = shared / "kuzushiji-real" / "codh" / "100241706_coordinate.csv"
    pages = (read_codh_coordinates(codh) if codh.is_file() else []) + codh_sample_pages(shared)
    books = {book: order_scores([page for page in pages if page.book == book])
             for book in sorted({page.book for page in pages})}
    return {"overall": order_scores(pages), "books": books} if pages else {}


def order_scores(pages: Sequence[Page]) -> dict:
    """The reading order of ``pages``' true boxes against their true order (their characters' order): the successor
    accuracy (the share of characters followed by their true successor) and the character error rate of the page
    texts in that order against the true texts."""
    from kuzu_lightning.reading_order import edit_distance, reading_order, successor_accuracy

    right = total = errors = length = 0
    for page in pages:
        found = reading_order(page.boxes)
        r, t = successor_accuracy(found.order, list(range(len(page.codes))))
        right, total = right + r, total + t
        errors += edit_distance([page.codes[i] for i in found.order], page.codes)
        length += len(page.codes)
    return {"pages": len(pages), "characters": length, "successor_accuracy": round(right / max(total, 1), 4),
            "cer": round(errors / max(length, 1), 4)}


def bench_reading_order(shared: str | Path | None = None, pages: int = 120) -> dict:
    """:func:`~kuzu_lightning.reading_order.reading_order` of true boxes against the true order (:func:`order_scores`):
    on ``pages`` synthetic pages (the generator's order) and, when the real data folder ``shared`` holds them, on
    the real pages whose order is known (:func:`real_reading_order`)."""
    from kuzu_lightning.data.kaggle import read_labels_csv
    from kuzu_lightning.synthetic.generator import generate

    with tempfile.TemporaryDirectory() as out:
        result = {"benchmark": "reading-order",
                  "synthetic": order_scores(read_labels_csv(Path(generate(out, pages, seed=1, test_pages=0, height=768))
                                                            / "train.csv"))}
    if shared is None:
        result["real"] = "no real data folder given (--real_data)"
        return result
    result["real"] = real_reading_order(Path(shared)) or f"no page of known reading order in {shared}"
    return result
