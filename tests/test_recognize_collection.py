"""``kuzu recognize``: a folder tree of scans in, per-page JSON, text and pictures out; killed and resumed; one process
against two DDP processes."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pandas as pd
import pytest

from kuzu_lightning.tools.recognize import find_images, output_keys

ROOT = Path(__file__).resolve().parents[1]
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same float arithmetic in one process and in two
PAGES = ["book1/001", "book2/001.jpg", "book2/001.png", "book2/broken", "book2/deeper/002", "book3/003", "book3/004",
         "book3/005"]


@pytest.fixture(scope="module")
def scans(synthetic_dir, tmp_path_factory) -> Path:
    """A folder tree: equal file names in two folders, a JPEG and a PNG of the same name, a TIFF, a corrupt JPEG
    and a file that is not an image."""
    root = tmp_path_factory.mktemp("scans") / "scans"
    sources = sorted((synthetic_dir / "train_images").glob("*.jpg"))
    for name, source in zip(["book1/001.jpg", "book2/001.jpg", "book3/003.jpg", "book3/004.jpg", "book3/005.jpg"],
                            sources):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, root / name)
    image = cv2.imread(str(sources[5]))
    cv2.imwrite(str(root / "book2" / "001.png"), image)
    (root / "book2" / "deeper").mkdir()
    cv2.imwrite(str(root / "book2" / "deeper" / "002.tif"), cv2.imread(str(sources[6])))
    (root / "book2" / "broken.jpg").write_bytes(sources[7].read_bytes()[:1500])
    (root / "book2" / "notes.md").write_text("not a page\n")
    return root


def recognize(checkpoints, inputs: list[str], out: Path, *options: str, wait: bool = True) -> subprocess.Popen:
    detector, classifier = checkpoints
    command = [sys.executable, "-m", "kuzu_lightning", "recognize", *inputs, "--detector", str(detector), "--classifier",
               str(classifier), "--out", str(out), "--accelerator", "cpu", "--num_workers", "0", *options]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=ONE_THREAD)
    if wait:
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, output[-3000:]
        process.output = output
    return process


def outputs(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.suffix in (".json", ".txt") and p.name != "summary.json"}


@pytest.fixture(scope="module")
def recognized(checkpoints, scans, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("transcribed")
    recognize(checkpoints, [str(scans)], out, "--csv", str(out / "submission.csv"), "--formats", "json,txt,png")
    return out


def test_inputs_are_found_in_folders_globs_and_lists_each_once(scans, tmp_path):
    listing = tmp_path / "pages.txt"
    listing.write_text(f"{scans / 'book1' / '001.jpg'}\n\n{scans / 'book3' / '003.jpg'}\n")
    images, roots = find_images([str(scans / "book3"), str(scans / "book2" / "*.png"), str(listing)])
    assert [p.relative_to(scans).as_posix() for p in images] == ["book1/001.jpg", "book2/001.png", "book3/003.jpg",
                                                                  "book3/004.jpg", "book3/005.jpg"]
    assert output_keys(images, roots) == ["book1/001", "book2/001", "book3/003", "book3/004", "book3/005"]
    images, roots = find_images([str(scans)])
    assert output_keys(images, roots) == PAGES


def test_every_page_gets_its_json_text_and_picture_mirroring_the_tree(recognized, scans):
    out = recognized
    for key in PAGES:
        page = json.loads((out / f"{key}.json").read_text(encoding="utf-8"))
        assert page["image_id"] == key
        assert (out / f"{key}.txt").read_text(encoding="utf-8") == page["text"]
        if key == "book2/broken":
            assert "corrupt" in page["error"] and page["characters"] == [] and not (out / f"{key}.png").exists()
        else:
            assert page["error"] is None and page["characters"]
            assert sorted(i for line in page["lines"] for i in line["characters"]) == list(range(len(page["characters"])))
            picture = cv2.imread(str(out / f"{key}.png"))
            assert picture.shape[:2] == (page["height"], 2 * page["width"])
    assert not list(out.rglob("notes*"))
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["pages"], summary["done"], summary["recognised_now"], summary["missing"]) == (8, 8, 8, [])
    assert summary["failed"] == [{"page": str((scans / "book2" / "broken.jpg").resolve()),
                                  "reason": json.loads((out / "book2/broken.json").read_text())["error"]}]
    submission = pd.read_csv(out / "submission.csv", keep_default_na=False)
    assert submission["image_id"].tolist() == PAGES
    characters = [len(json.loads((out / f"{key}.json").read_text())["characters"]) for key in PAGES]
    assert [len(labels.split()) // 3 for labels in submission["labels"]] == characters


@pytest.mark.slow
def test_a_killed_run_started_again_completes_every_page_exactly_once(checkpoints, scans, recognized, tmp_path):
    out = tmp_path / "out"
    process = recognize(checkpoints, [str(scans)], out, wait=False)
    deadline = time.time() + 300
    while not list(out.rglob("*.json")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    done_before = {p.relative_to(out).as_posix() for p in out.rglob("*.json")}
    assert 1 <= len(done_before) < len(PAGES), "the run was not killed in the middle"
    for path in out.rglob("*.partial-*"):  # what the killed run was writing, if anything: removed by the next run
        assert path.name.startswith(".")
    again = recognize(checkpoints, [str(scans)], out)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["recognised_now"], summary["already_done"], summary["done"]) == (
        len(PAGES) - len(done_before), len(done_before), len(PAGES))
    assert f"{len(PAGES)} pages, {len(done_before)} already done" in again.output
    assert outputs(out) == outputs(recognized)  # each page once: the same files as an uninterrupted run
    assert not list(out.rglob("*.partial-*"))
    finished = recognize(checkpoints, [str(scans)], out)  # nothing left to do
    assert "0 to recognise" in finished.output and json.loads((out / "summary.json").read_text())["recognised_now"] == 0


@pytest.mark.slow
def test_two_ddp_processes_write_what_one_process_writes(checkpoints, scans, recognized, tmp_path):
    out = tmp_path / "out"
    recognize(checkpoints, [str(scans)], out, "--devices", "2", "--csv", str(out / "submission.csv"))
    assert outputs(out) == outputs(recognized)
    assert (out / "submission.csv").read_bytes() == (recognized / "submission.csv").read_bytes()
    assert json.loads((out / "summary.json").read_text())["done"] == len(PAGES)


def test_nothing_to_read_is_an_error(checkpoints, tmp_path):
    (tmp_path / "empty").mkdir()
    detector, classifier = checkpoints
    run = subprocess.run([sys.executable, "-m", "kuzu_lightning", "recognize", str(tmp_path / "empty"), "--detector",
                          str(detector), "--classifier", str(classifier), "--out", str(tmp_path / "out")], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and run.stderr.strip().splitlines()[-1].startswith("error: no image found in")
