"""A soak test of ``kuzu recognize`` on a hostile collection: a few hundred pages (generated ones, and the real scans
of the real data folder when it is there) with every kind of bad input mixed in, killed at random points several
times, started again, and started twice at once into one output. At the end every good page has exactly one set of
valid outputs, every bad input is listed once, and no process is left."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED
from helpers.training import fit_and_save
from test_recognize_collection import marked

from kuzu_lightning.synthetic.generator import generate

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def hostile(module_dir) -> tuple[Path, list[str], list[str], list[str]]:
    """The collection: its folder, the inputs to name, the good pages' keys, and the bad inputs as the summary names
    them (the pages that cannot be decoded get outputs with their reason; the other bad inputs are no pages)."""
    root = module_dir("soak")
    generated = generate(root / "generated", pages=40, test_pages=0, books=4, seed=7, height=400)
    scans = root / "scans"
    good = []
    for n, image in enumerate(sorted((generated / "train_images").glob("*.jpg")) * 5):  # 200 pages in 10 books
        target = scans / f"book{n % 10}" / f"{n:03d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(image, target)
        good.append(f"book{n % 10}/{n:03d}")
    (scans / "real").mkdir()
    for image in sorted((SHARED / "real-pages" / "clean").glob("*.jpg"))[:30]:  # when the real data is there
        shutil.copy(image, scans / "real" / image.name)
        good.append(f"real/{image.stem}")
    strange = Path(os.fsdecode(bytes(scans) + b"/book0/p\xe9ge.jpg"))
    shutil.copy(generated / "train_images" / next(iter(os.listdir(generated / "train_images"))), strange)
    good.append("book0/p\\xe9ge")
    undecodable = {"book1/truncated.jpg": (scans / "book0" / "000.jpg").read_bytes()[:1500], "book2/empty.jpg": b"",
                   "book3/notes.jpg": b"not an image\n",
                   "book4/bomb.png": bomb_png()}
    for name, content in undecodable.items():
        (scans / name).write_bytes(content)
    (scans / "book5" / "gone.jpg").symlink_to(root / "nowhere.jpg")
    (scans / "book5" / "loop.jpg").symlink_to(scans / "book5" / "loop.jpg")
    os.mkfifo(scans / "book6" / "pipe.jpg")
    listing = root / "more.lst"
    listing.write_text(f"\ufeff{scans / 'book7' / '007.jpg'}\n{listing}\n{root / 'misspelled'}\n", encoding="utf-8")
    bad = sorted([str(scans / name) for name in undecodable] + [
        str(scans / "book5" / "gone.jpg"), str(scans / "book5" / "loop.jpg"), str(scans / "book6" / "pipe.jpg"),
        str(root / "misspelled")])
    good += [name.removesuffix(".jpg").removesuffix(".png") for name in undecodable]
    return scans, [str(scans), str(listing)], sorted(good), bad


def bomb_png() -> bytes:
    """A PNG whose header declares 50,000 x 50,000 pixels: refused before it is decoded."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = (50000).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def few_detections(checkpoints, synthetic_dir, module_dir) -> tuple[Path, Path]:
    """The fixture's classifier, and a detector like the fixture's that keeps its 20 best boxes a page: hundreds of
    pages in a few minutes of two cores."""
    import lightning as L

    from kuzu_lightning import CharDetector, PageDataModule

    root = module_dir("few_detections")
    L.seed_everything(0)
    pages = PageDataModule(synthetic_dir, train_longest_side=640, crop_heights=(200, 240), crop_size=(192, 240),
                           eval_longest_side=512, batch_size=2, num_workers=0, n_folds=3, cache_dir=root / "cache")
    detector = CharDetector("mobilenet_v3_small", anchor_sizes=(16, 32, 64), box_batch_size_per_image=32,
                            score_threshold=0.3, rpn_post_nms_top_n_test=20, box_detections_per_img=20)
    return fit_and_save(detector, pages, root / "detector.ckpt"), checkpoints[1]


def start(checkpoints, inputs: list[str], out: Path, marker: str) -> subprocess.Popen:
    detector, classifier = checkpoints
    return subprocess.Popen(
        [sys.executable, "-m", "kuzu_lightning", "recognize", *inputs, "--detector", str(detector), "--classifier",
         str(classifier), "--out", str(out), "--accelerator", "cpu", "--num_workers", "2", "--formats", "json,txt",
         "--csv", str(out / "submission.csv")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "KUZU_TEST_MARKER": marker})


def done(out: Path) -> int:
    return sum(1 for path in out.rglob("*.json") if path.name != "summary.json")


def test_a_hostile_collection_killed_and_run_twice_at_once_ends_with_every_page_once(hostile, few_detections):
    scans, inputs, good, bad = hostile
    out = scans / "transcripts"  # inside the inputs
    marker = f"kuzu-soak-{os.getpid()}-{time.time_ns()}"
    chance = random.Random(11)
    for _ in range(3):  # killed at random points
        run = start(few_detections, inputs, out, marker)
        target = done(out) + chance.randint(1, 40)
        deadline = time.time() + 600
        while done(out) < target and run.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        run.send_signal(signal.SIGKILL)
        run.communicate()
    assert 0 < done(out) < len(good), "the runs were not killed in the middle"
    first, second = start(few_detections, inputs, out, marker), start(few_detections, inputs, out, marker)  # at once
    outcomes = sorted([first.communicate(timeout=900), second.communicate(timeout=900)], key=lambda o: len(o[0]))
    assert sorted([first.returncode, second.returncode]) == [1, 1]  # the one refused; the one with inputs that failed
    assert "another run (process" in outcomes[0][0] and f"is writing to {out}" in outcomes[0][0]

    summary = json.loads((out / "summary.json").read_text())
    assert (summary["pages"], summary["done"], summary["missing"]) == (len(good), len(good), [])
    failed = [failure["input"] for failure in summary["failed"]]
    assert sorted(failed) == bad and len(set(failed)) == len(failed)  # each bad input listed once
    for key in good:
        page = json.loads((out / f"{key}.json").read_text(encoding="utf-8"))
        assert page["image_id"] == key and page["source"]["mtime_ns"] > 0
        assert (out / f"{key}.txt").read_text(encoding="utf-8") == page["text"]
        assert (page["error"] is None) == (key.rsplit("/", 1)[-1] not in ("truncated", "empty", "notes", "bomb"))
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    expected = {f"{key}.{suffix}" for key in good for suffix in ("json", "txt")}
    assert written == expected | {"summary.json", "submission.csv", ".lock"}  # nothing twice, nothing half-written
    submission = pd.read_csv(out / "submission.csv", keep_default_na=False)
    assert submission["image_id"].tolist() == good
    assert np.array_equal(submission["labels"].str.split().str.len().fillna(0).to_numpy() // 3,
                          [len(json.loads((out / f"{key}.json").read_text())["characters"]) for key in good])
    deadline = time.time() + 30
    while marked(marker) and time.time() < deadline:
        time.sleep(0.5)
    assert marked(marker) == []
