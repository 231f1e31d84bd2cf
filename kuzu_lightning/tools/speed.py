"""Speed benchmarks (``kuzu benchmark NAME``); each gives one JSON object, printed as the command's last line.

    kuzu benchmark metric      # competition F1 on a Kaggle-sized validation fold
    kuzu benchmark score-csv   # kuzu score on a 7,000-page submission of 1,200 predictions a page: time, peak memory
    kuzu benchmark ordering    # reading order of 1,200 characters, and of 5,000 identical boxes
    kuzu benchmark synthetic   # synthetic page generator, pages/s
    kuzu benchmark chars       # crop cache build and loader crops/s per worker
    kuzu benchmark classifier  # classifier training crops/s on this machine
    kuzu benchmark detector [--data_dir DIR]  # page decoding and detector s/page
    kuzu benchmark pipeline [--data_dir DIR]  # recognition s/page by stage, batched crops

``metric``, ``synthetic`` and ``chars`` run pinned to one CPU core (where the OS allows it), so
figures compare across machines of different core counts; ``classifier`` and ``detector`` use
every core. ``detector`` reads the train pages of a Kaggle-layout ``--data_dir`` (real scans are
about 2400 x 3900 px), ``pipeline`` all its pages, or synthetic pages of that size when none is given.
The accuracy benchmarks are in :mod:`kuzu_lightning.tools.accuracy`.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def one_core() -> int | None:
    """Pin this process to one CPU core; return it (None where affinity is not supported)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def kaggle_sized_fold(pages: int = 780, boxes_per_page: int = 180, classes: int = 4212, seed: int = 0):
    """A validation fold shaped like Kaggle's: ``(submission, solution)`` frames of ``image_id,labels``.

    Labels follow a long tail over ``classes`` code points; the submission holds a good model's
    mistakes: jittered centres, 3% wrong labels, 3% missed characters, 2% duplicates and 3%
    false positives, in shuffled order.
    """
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, classes + 1)
    codes = np.array([f"U+{0x3041 + i:04X}" for i in range(classes)])
    solution, submission = [], []
    for _ in range(pages):
        n = int(rng.poisson(boxes_per_page))
        xy = rng.uniform(0, 2200, size=(n, 2)).round()
        wh = rng.uniform(40, 160, size=(n, 2)).round()
        labels = codes[rng.choice(classes, size=n, p=weights / weights.sum())]
        solution.append(" ".join(f"{c} {x:g} {y:g} {w:g} {h:g}" for c, (x, y), (w, h) in zip(labels, xy, wh)))
        centre = xy + wh / 2 + rng.normal(0, 6, size=(n, 2))
        predicted = np.where(rng.random(n) < 0.03, codes[rng.integers(0, classes, n)], labels)
        keep = rng.random(n) >= 0.03
        duplicate = rng.random(n) < 0.02
        extra = int(n * 0.03)
        points = np.concatenate([centre[keep], centre[duplicate] + 3, rng.uniform(0, 2300, size=(extra, 2))])
        names = np.concatenate([predicted[keep], predicted[duplicate], codes[rng.integers(0, classes, extra)]])
        order = rng.permutation(len(points))
        submission.append(" ".join(f"{c} {x:.0f} {y:.0f}" for c, (x, y) in zip(names[order], points[order])))
    ids = [f"page{i:04d}" for i in range(pages)]
    return pd.DataFrame({"image_id": ids, "labels": submission}), pd.DataFrame({"image_id": ids, "labels": solution})


def bench_metric(repeats: int = 3) -> dict:
    """Score a Kaggle-sized fold (about 780 pages, 140,000 boxes) from its CSV strings."""
    from kuzu_lightning.metrics import score_frames

    submission, solution = kaggle_sized_fold()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = score_frames(submission, solution)
        times.append(time.perf_counter() - start)
    boxes = sum(len(s.split()) // 5 for s in solution["labels"])
    return {"benchmark": "metric", "pages": len(solution), "gt_boxes": boxes, "f1": round(result["f1"], 4),
            "seconds_best": round(min(times), 3), "seconds_mean": round(float(np.mean(times)), 3)}


def bench_synthetic(pages: int = 50) -> dict:
    """Generate ``pages`` synthetic pages (train and test) at the default size, from a cold start."""
    from kuzu_lightning.synthetic.generator import generate

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        generate(out, pages=pages - pages // 5, test_pages=pages // 5, seed=0)
        seconds = time.perf_counter() - start
        chars = sum(len(s.split()) // 5 for s in pd.read_csv(f"{out}/train.csv")["labels"].fillna(""))
    return {"benchmark": "synthetic", "pages": pages, "seconds": round(seconds, 2),
            "pages_per_s": round(pages / seconds, 2), "train_chars": chars}


def bench_chars(pages: int = 12, crops: int = 2000) -> dict:
    """Classifier data: crop-cache build (one decode per page) and augmented crops/s of one loader worker."""
    from kuzu_lightning.data.chars import CharCropDataset
    from kuzu_lightning.data.crop_cache import CropCache, CropSpec
    from kuzu_lightning.data.kaggle import load_train_pages
    from kuzu_lightning.data.transforms import char_train_transform
    from kuzu_lightning.synthetic.generator import generate

    with tempfile.TemporaryDirectory() as out:
        page_list = load_train_pages(generate(out, pages=pages, test_pages=0, seed=0))
        start = time.perf_counter()
        cache = CropCache.ensure(page_list, CropSpec(size=96), f"{out}/cache")
        build = time.perf_counter() - start
        dataset = CharCropDataset(cache, np.arange(len(cache)), np.zeros(len(cache), np.int64), char_train_transform())
        start = time.perf_counter()
        for i in range(crops):
            dataset[i % len(dataset)]
        loading = time.perf_counter() - start
    return {"benchmark": "chars", "pages": pages, "crops_cached": len(cache), "cache_pages_per_s": round(pages / build, 1),
            "cache_crops_per_s": round(len(cache) / build, 1), "loader_crops_per_s_per_worker": round(crops / loading, 1)}


def bench_classifier(steps: int = 5, batch: int = 32) -> dict:
    """Training crops/s of CharClassifier (legacy_xception, Adam) at 64 and 96 px, 32-bit, on all cores."""
    import torch

    from kuzu_lightning.models.classifier import CharClassifier

    result = {"benchmark": "classifier", "threads": torch.get_num_threads(), "batch": batch}
    for size in (64, 96):
        model = CharClassifier([f"U+{0x3042 + i:04X}" for i in range(260)])
        optimizer = torch.optim.Adam(model.parameters(), 1e-3)
        images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8)
        labels = torch.randint(0, 260, (batch,))
        times = []
        for _ in range(steps + 1):
            start = time.perf_counter()
            loss = model.loss(*model.network(images), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            times.append(time.perf_counter() - start)
        result[f"train_crops_per_s_{size}px"] = round(batch / float(np.median(times[1:])), 1)
    return result


def _median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def bench_detector(data_dir: str | None = None, eval_longest_side: int = 1688, train_longest_side: int = 2048,
                   backbones: tuple[str, ...] = ("resnet50", "mobilenet_v3_large"), repeats: int = 3) -> dict:
    """Page decoding with and without the fast paths, and detector inference seconds per page.

    Decoding (one core's work, median over pages and repeats): the full scan; the scan resized to
    ``eval_longest_side`` without the reduced JPEG decode (full decode + area resize) and with it
    (what validation and prediction do); the cached training page (``train_longest_side`` JPEG).
    Inference: untrained weights (speed does not depend on them; an untrained head returns the
    maximum 1200 boxes, the worst case for NMS), 32-bit, ``eval_longest_side``, all cores.
    """
    import cv2
    import torch

    from kuzu_lightning.data.images import decode_page
    from kuzu_lightning.data.kaggle import load_train_pages
    from kuzu_lightning.data.page_cache import ensure_resized_pages
    from kuzu_lightning.models.detector import CharDetector
    from kuzu_lightning.synthetic.generator import generate

    def full_then_resize(path):
        image = decode_page(path)
        scale = eval_longest_side / max(image.shape[:2])
        return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)

    with tempfile.TemporaryDirectory() as out:
        if data_dir is None:
            data_dir = generate(out, pages=3, test_pages=0, seed=0, height=3900)
        pages = load_train_pages(data_dir)
        cached = ensure_resized_pages(pages, train_longest_side, f"{out}/cache")
        paths = [page.image_path for page in pages]
        result = {"benchmark": "detector", "pages": len(pages), "page_size": [pages[0].width, pages[0].height],
                  "threads": torch.get_num_threads()}
        decoders = {"full_decode": decode_page, f"to_{eval_longest_side}_without_fast_path": full_then_resize,
                    f"to_{eval_longest_side}_reduced_decode": lambda p: decode_page(p, eval_longest_side),
                    f"cached_{train_longest_side}_page": decode_page}
        for name, decode in decoders.items():
            sources = [page.image_path for page in cached] if name.startswith("cached") else paths
            result[f"ms_{name}"] = round(1000 * float(np.median(
                [_median_seconds(lambda: decode(path), repeats) for path in sources])), 1)
        images = [torch.from_numpy(decode_page(path, eval_longest_side).transpose(2, 0, 1).copy()) for path in paths]
    for backbone in backbones:
        model = CharDetector(backbone=backbone).eval()
        with torch.no_grad():
            model([images[0]])  # warm-up
            seconds = float(np.median([_median_seconds(lambda: model([image]), 1) for image in images]))
        result[f"s_per_page_{backbone}"] = round(seconds, 2)
    return result


def _checkpoint(model, path: str) -> str:
    """A checkpoint of an untrained model, as the Recognizer loads it (weights and hyper-parameters)."""
    import torch

    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)
    return path


def bench_pipeline(data_dir: str | None = None, detector: str = "mobilenet_v3_large", classifier: str = "legacy_xception",
                   classes: int = 4782, input_size: int = 96, characters_per_page: int = 200,
                   one_by_one: int = 200) -> dict:
    """The whole recognition pipeline on real-size pages, per stage, 32-bit, all cores.

    Per page (every page of ``--data_dir``'s ``train_images/`` and ``test_images/``, or three
    synthetic pages of real size): **decode** (the scan at full size and at the detector's 1688 px,
    as ``predict.py`` loads it), **detect**, **crop** (all boxes in one ``roi_align``),
    **classify** (batches of 256), **write** (the submission row and the page's JSON).

    Untrained models of the real sizes (``classes`` classes, ``input_size`` px crops): speed does
    not depend on the weights, but the number of detections does, and an untrained detector's
    means nothing, so the later stages take its ``characters_per_page`` best boxes (200, about a
    Kaggle page's average). Then the crop + classify stage against the original's way, one crop at
    a time: cut with OpenCV from the numpy page (:func:`~kuzu_lightning.data.crop_cache.crop_square`)
    and classified alone, over the first ``one_by_one`` boxes of each page; ``classify_speedup`` is
    the ratio of the two, per crop.
    """
    import torch

    from kuzu_lightning.data.crop_cache import crop_square
    from kuzu_lightning.data.kaggle import Page
    from kuzu_lightning.data.pages import PageDataset, collate_whole_pages
    from kuzu_lightning.models.classifier import CharClassifier
    from kuzu_lightning.models.detector import CharDetector
    from kuzu_lightning.models.recognizer import Recognizer
    from kuzu_lightning.outputs import write_page_json
    from kuzu_lightning.records import recognized_page, submission_labels
    from kuzu_lightning.synthetic.generator import generate

    torch.manual_seed(0)
    codes = [f"U+{0x3042 + i:04X}" for i in range(classes - 1)] + ["unk"]
    with tempfile.TemporaryDirectory() as out:
        if data_dir is None:
            data_dir = generate(out, pages=3, test_pages=0, seed=0, height=3900)
        recognizer = Recognizer.from_checkpoints(_checkpoint(CharDetector(detector), f"{out}/detector.ckpt"),
                                                 _checkpoint(CharClassifier(codes, classifier), f"{out}/classifier.ckpt"),
                                                 char_crop_size=input_size, detection_threshold=0.0)
        pages = [Page(path.stem, image_path=path) for path in sorted(Path(data_dir).glob("*_images/*.jpg"))]
        dataset = PageDataset(pages, recognizer.page_longest_side, originals=True)
        seconds = {stage: [] for stage in ("decode", "detect", "crop", "classify", "write")}
        batched, alone, counts, sizes = [], [], [], []

        def timed(stage, function, *args):
            start = time.perf_counter()
            value = function(*args)
            seconds[stage].append(time.perf_counter() - start)
            return value

        with torch.inference_mode():
            recognizer.detect(collate_whole_pages([dataset[0]]))  # warm-up
            for i in range(len(dataset)):
                batch = timed("decode", lambda: collate_whole_pages([dataset[i]]))
                found = {key: value[:characters_per_page] for key, value in
                         timed("detect", recognizer.detect, batch)[0].items()}
                crops = timed("crop", recognizer.crops, batch, 0, found["boxes"])
                probabilities = timed("classify", recognizer.classify, crops)
                counts.append(len(found["boxes"]))
                sizes.append(tuple(batch["sizes"][0].tolist()))
                alternatives, alternative_probabilities = recognizer.alternatives(probabilities)
                page = {"image_id": pages[i].image_id, "size": sizes[-1], "error": None,
                        "boxes": found["boxes"], "scores": found["scores"], "probabilities": probabilities.amax(1),
                        "codes": [codes[j] for j in probabilities.argmax(1).tolist()],
                        "alternatives": alternatives, "alternative_probabilities": alternative_probabilities}
                timed("write", lambda: (submission_labels(page),
                                        write_page_json(Path(out) / "page.json", recognized_page(page))))
                batched.append((seconds["crop"][-1] + seconds["classify"][-1]) / max(1, len(found["boxes"])))
                image = batch["originals"][0].permute(1, 2, 0).numpy()
                boxes = found["boxes"][:one_by_one].numpy()
                start = time.perf_counter()
                for box in boxes:
                    crop = torch.from_numpy(crop_square(image, box, input_size, recognizer.char_crop_margin))
                    recognizer.classifiers[0](crop.permute(2, 0, 1)[None])
                alone.append((time.perf_counter() - start) / max(1, len(boxes)))
    total = sum(sum(times) for times in seconds.values())
    result = {"benchmark": "pipeline", "pages": len(pages), "page_sizes": sorted(sizes),
              "threads": torch.get_num_threads(), "detector": detector, "classifier": f"{classifier} {input_size}px",
              "characters_per_page": round(float(np.mean(counts)), 1), "pages_per_s": round(len(pages) / total, 4),
              "s_per_page": {stage: round(float(np.mean(times)), 3) for stage, times in seconds.items()},
              "ms_per_crop_batched": round(1000 * float(np.mean(batched)), 2),
              "ms_per_crop_one_by_one": round(1000 * float(np.mean(alone)), 2)}
    result["classify_speedup"] = round(result["ms_per_crop_one_by_one"] / result["ms_per_crop_batched"], 2)
    return result


def bench_score_csv(pages: int = 7000, predictions: int = 1200) -> dict:
    """``kuzu score`` on a submission of ``pages`` pages of ``predictions`` each (Kaggle's limit) and a solution of
    as many pages with 180 characters: the files' size, the wall time and the peak resident memory of the scoring
    process (a fresh one, so nothing else counts)."""
    import resource
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    codes = np.array([f"U+{0x3041 + i:04X}" for i in range(4212)])
    with tempfile.TemporaryDirectory() as out:
        submission, solution = Path(out, "submission.csv"), Path(out, "solution.csv")
        with open(submission, "w") as sub, open(solution, "w") as sol:
            sub.write("image_id,labels\n")
            sol.write("image_id,labels\n")
            for page in range(pages):
                labels, points = codes[rng.integers(0, len(codes), predictions)], rng.integers(5, 2400, (predictions, 2))
                sub.write(f"page{page:05d}," + " ".join(f"{c} {x} {y}" for c, (x, y) in zip(labels, points)) + "\n")
                sol.write(f"page{page:05d}," + " ".join(f"{c} {x - 4} {y - 4} 9 9" for c, (x, y) in
                                                       zip(labels[:180], points[:180])) + "\n")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "kuzu_lightning", "score", str(submission), str(solution)], check=True,
                       capture_output=True)
        seconds = time.perf_counter() - start
        return {"benchmark": "score-csv", "pages": pages, "predictions_per_page": predictions,
                "submission_mb": round(submission.stat().st_size / 2**20, 1), "seconds": round(seconds, 2),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


def bench_ordering(repeats: int = 3) -> dict:
    """:func:`~kuzu_lightning.reading_order.reading_order`'s seconds (the best of ``repeats``) for a dense page of
    1,200 characters (40 columns of 30) and for 5,000 identical boxes."""
    from kuzu_lightning.reading_order import reading_order

    rng = np.random.default_rng(0)
    centres = np.stack(np.meshgrid(4000 - 100 * np.arange(40), 40 + 100 * np.arange(30)), -1).reshape(-1, 2)
    centres = centres + rng.normal(0, 6, centres.shape)
    sizes = rng.uniform(50, 90, centres.shape)
    pages = {"dense_page_1200": np.c_[centres - sizes / 2, centres + sizes / 2],
             "identical_5000": np.tile([[10.0, 10, 60, 70]], (5000, 1))}
    result = {"benchmark": "ordering"}
    for name, boxes in pages.items():
        result[f"seconds_{name}"] = round(min(_median_seconds(lambda: reading_order(boxes), 1)
                                              for _ in range(repeats)), 3)
    return result


SPEED = {"metric": bench_metric, "score-csv": bench_score_csv, "ordering": bench_ordering, "synthetic": bench_synthetic,
         "chars": bench_chars, "classifier": bench_classifier, "detector": bench_detector, "pipeline": bench_pipeline}
ONE_CORE = {"metric", "synthetic", "chars", "ordering"}  # the others use every core, as training does
