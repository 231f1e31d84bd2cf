"""Speed benchmarks; each prints one JSON object as its last line.

    python -m kuzu_lightning.benchmark metric      # competition F1 on a Kaggle-sized validation fold
    python -m kuzu_lightning.benchmark synthetic   # synthetic page generator, pages/s
    python -m kuzu_lightning.benchmark chars       # crop cache build and loader crops/s per worker
    python -m kuzu_lightning.benchmark classifier  # classifier training crops/s on this machine

``metric``, ``synthetic`` and ``chars`` run pinned to one CPU core (where the OS allows it), so
figures compare across machines of different core counts; ``classifier`` uses every core.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import pandas as pd


def _one_core() -> int | None:
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
    for page in range(pages):
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
    from kuzu_lightning.data.synthetic import generate

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
    from kuzu_lightning.data.synthetic import generate
    from kuzu_lightning.data.transforms import char_train_transform

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
            loss = model._loss(*model.network(images), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            times.append(time.perf_counter() - start)
        result[f"train_crops_per_s_{size}px"] = round(batch / float(np.median(times[1:])), 1)
    return result


BENCHMARKS = {"metric": bench_metric, "synthetic": bench_synthetic, "chars": bench_chars, "classifier": bench_classifier}
ONE_CORE = {"metric", "synthetic", "chars"}  # the others use every core, as training does


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m kuzu_lightning.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=sorted(BENCHMARKS))
    args = parser.parse_args(argv)
    core = _one_core() if args.name in ONE_CORE else None
    result = {**BENCHMARKS[args.name](), "cpu_core": core}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
