"""``kuzu recognize``: a folder tree of scans in, per-page JSON, text and pictures out; killed and resumed; one process
against two DDP processes."""

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from kuzu_lightning.collection import find_collection
from kuzu_lightning.data.pseudo_labels import read_pseudo_labels
from kuzu_lightning.tools.recognize import decoding_workers, exit_status

ROOT = Path(__file__).resolve().parents[1]
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same float arithmetic in one process and in two
PAGES = ["book1/001", "book2/001.jpg", "book2/001.png", "book2/broken", "book2/deeper/002", "book3/003", "book3/004",
         "book3/005"]


@pytest.fixture(scope="module")
def scans(synthetic_dir, module_dir) -> Path:
    """A folder tree: equal file names in two folders, a JPEG and a PNG of the same name, a TIFF, a corrupt JPEG
    and a file that is not an image."""
    root = module_dir("scans") / "scans"
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


def recognize(checkpoints, inputs: list[str], out: Path, *options: str, wait: bool = True, status: int = 1,
              env: dict | None = None) -> subprocess.Popen:
    """``kuzu recognize`` in a process of its own; waited for, it must end with ``status`` (1: an input failed, as
    the broken page of :func:`scans` does)."""
    detector, classifier = checkpoints
    command = [sys.executable, "-m", "kuzu_lightning", "recognize", *inputs, "--detector", str(detector), "--classifier",
               str(classifier), "--out", str(out), "--accelerator", "cpu", "--num_workers", "0", *options]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env or ONE_THREAD)
    if wait:
        output, _ = process.communicate(timeout=600)
        assert process.returncode == status, output[-3000:]
        process.output = output
    return process


def outputs(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.suffix in (".json", ".txt") and p.name != "summary.json"}


@pytest.fixture(scope="module")
def recognized(checkpoints, scans, module_dir) -> Path:
    out = module_dir("transcribed")
    recognize(checkpoints, [str(scans)], out, "--csv", str(out / "submission.csv"), "--formats",
              "json,txt,page,alto,png")
    return out


def test_every_page_gets_its_page_xml_and_alto_naming_its_scan(recognized, xml_schemas):
    from lxml import etree

    for key in PAGES:
        page = json.loads((recognized / f"{key}.json").read_text(encoding="utf-8"))
        assert all(len(c["alternatives"]) == 5 and c["alternatives"][0]["code"] == c["code"] for c in page["characters"])
        for kind, glyph, name in (("page", "{*}Glyph", "{*}Page[@imageFilename]"), ("alto", "{*}Glyph", "{*}fileName")):
            tree = etree.parse(str(recognized / f"{key}.{kind}.xml"))
            assert xml_schemas[kind].validate(tree), f"{key}.{kind}.xml: {xml_schemas[kind].error_log}"
            assert len(tree.findall(f".//{glyph}")) == len(page["characters"])
            named = tree.find(f".//{name}")
            assert (named.get("imageFilename") or named.text) == page["source"]["path"]


def test_inputs_are_found_in_folders_globs_and_lists_each_once(scans, tmp_path):
    listing = tmp_path / "pages.txt"
    listing.write_text(f"{scans / 'book1' / '001.jpg'}\n\n{scans / 'book3' / '003.jpg'}\n")
    found = find_collection([str(scans / "book3"), str(scans / "book2" / "*.png"), str(listing)])
    assert [(key, path.relative_to(scans).as_posix()) for key, path in found.pages] == [
        ("book1/001", "book1/001.jpg"), ("book2/001", "book2/001.png"), ("book3/003", "book3/003.jpg"),
        ("book3/004", "book3/004.jpg"), ("book3/005", "book3/005.jpg")]
    assert [key for key, _ in find_collection([str(scans)]).pages] == PAGES


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
    assert summary["failed"] == [{"input": str(scans / "book2" / "broken.jpg"),
                                  "reason": json.loads((out / "book2/broken.json").read_text())["error"]}]
    submission = pd.read_csv(out / "submission.csv", keep_default_na=False)
    assert submission["image_id"].tolist() == PAGES
    characters = [len(json.loads((out / f"{key}.json").read_text())["characters"]) for key in PAGES]
    assert [len(labels.split()) // 3 for labels in submission["labels"]] == characters


def test_what_a_run_read_trains_again_as_pseudo_labelled_pages(recognized, scans):
    pages = {page.image_id: page for page in read_pseudo_labels(recognized, 0.0)}
    assert sorted(pages) == sorted(set(PAGES) - {"book2/broken"})  # the page that failed is skipped
    for key, page in pages.items():
        read = json.loads((recognized / f"{key}.json").read_text(encoding="utf-8"))
        assert page.image_path == Path(read["source"]["path"]) and page.image_path.is_relative_to(scans)
        assert page.codes == [char["code"] for char in read["characters"]]
        np.testing.assert_array_equal(page.boxes, np.array([char["box"] for char in read["characters"]], np.float32))
    probabilities = sorted(char["probability"] for key in pages for char in
                           json.loads((recognized / f"{key}.json").read_text(encoding="utf-8"))["characters"])
    median = probabilities[len(probabilities) // 2]
    confident = read_pseudo_labels(recognized, median)
    assert sum(map(len, confident)) == sum(p >= median for p in probabilities)


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
    with pytest.raises(SystemExit, match=f"^error: no page to read in {tmp_path / 'empty'}$"):
        kuzu_recognize(str(tmp_path / "empty"), *models(checkpoints), "--out", str(tmp_path / "out"))


def models(checkpoints) -> list[str]:
    return ["--detector", str(checkpoints[0]), "--classifier", str(checkpoints[1]), "--accelerator", "cpu",
            "--num_workers", "0"]


def test_a_page_replaced_between_runs_is_read_again(checkpoints, scans, tmp_path):
    book = shutil.copytree(scans / "book3", tmp_path / "book3")
    out = tmp_path / "out"
    kuzu_recognize(str(book), *models(checkpoints), "--out", str(out))
    before = json.loads((out / "004.json").read_text())
    (book / "004.jpg").write_bytes((scans / "book1" / "001.jpg").read_bytes())  # scanned again, between runs
    again = kuzu_recognize(str(book), *models(checkpoints), "--out", str(out))
    assert (again["pages"], again["already_done"], again["recognised_now"]) == (3, 2, 1)
    after = json.loads((out / "004.json").read_text())
    assert after["source"]["size"] == (book / "004.jpg").stat().st_size != before["source"]["size"]
    assert after["characters"] != before["characters"]


def test_hostile_inputs_are_each_listed_once_and_the_exit_status_says_so(checkpoints, scans, tmp_path):
    tree = tmp_path / "scans"
    shutil.copytree(scans / "book3", tree)
    strange = Path(os.fsdecode(bytes(tree) + b"/p\xe9ge.jpg"))  # a name that is not UTF-8
    shutil.copy(scans / "book1" / "001.jpg", strange)
    (tree / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    os.mkfifo(tree / "pipe.jpg")
    listing = tmp_path / "pages.lst"
    listing.write_text(f"\ufeff{tree / '003.jpg'}\n{listing}\n{tmp_path / 'misspelled'}\n", encoding="utf-8")
    out = tree / "transcripts"  # inside the inputs: its pictures must never be read as pages
    for attempt in range(2):
        summary = kuzu_recognize(str(tree), str(listing), *models(checkpoints), "--out", str(out), "--formats",
                                 "json,txt,png", "--csv", str(out / "submission.csv"), "--top_k", "2")
        assert summary == json.loads((out / "summary.json").read_text())
        assert (summary["pages"], summary["done"], summary["recognised_now"]) == (4, 4, 4 if attempt == 0 else 0)
        assert sorted(failure["input"] for failure in summary["failed"]) == sorted(
            [str(tree / "gone.jpg"), str(tree / "pipe.jpg"), str(tmp_path / "misspelled")])
        assert exit_status(summary) == 1
    assert {p.name for p in out.iterdir()} >= {"p\\xe9ge.json", "p\\xe9ge.png", "003.json", "005.png"}
    assert not (out / "transcripts").exists()
    assert {len(c["alternatives"]) for c in json.loads((out / "003.json").read_text())["characters"]} == {2}
    assert pd.read_csv(out / "submission.csv", keep_default_na=False)["image_id"].tolist() == [
        "003", "004", "005", "p\\xe9ge"]


def kuzu_recognize(*arguments: str):
    from kuzu_lightning.tools.kuzu import run

    return run(["recognize", *arguments])


@pytest.mark.parametrize(("thresholds", "message"), [
    ("model:\n  init_args:\n    detection_threshold: 2\n", "model.init_args.detection_threshold must be a number "
                                                             "between 0 and 1, not 2"),
    ("model:\n  init_args:\n    detection_threshold: .nan\n", "model.init_args.detection_threshold must be a number"),
    ("model:\n  init_args:\n    min_confidence: high\n", "model.init_args.min_confidence must be a number between 0 "
                                                          "and 1, not 'high'"),
    ("model:\n  init_args:\n    detection_treshold: 0.5\n", "unknown key model.init_args.detection_treshold"),
    ("model: [\n", "not readable YAML"),
])
def test_a_thresholds_file_is_checked_before_any_model_loads(thresholds, message, tmp_path):
    config = tmp_path / "thresholds.yaml"
    config.write_text(thresholds)
    (tmp_path / "page.jpg").write_bytes(b"never read")
    with pytest.raises(ValueError, match=rf"^{config}: {message}"):  # the missing models were never reached
        kuzu_recognize(str(tmp_path / "page.jpg"), "--detector", "missing.ckpt", "--classifier", "missing.ckpt",
                       "--out", str(tmp_path / "out"), "--config", str(config))


def test_thresholds_and_outputs_on_the_command_line_are_checked_before_any_model_loads(tmp_path, capsys):
    (tmp_path / "page.jpg").write_bytes(b"never read")
    common = [str(tmp_path / "page.jpg"), "--detector", "missing.ckpt", "--classifier", "missing.ckpt"]
    with pytest.raises(SystemExit):
        kuzu_recognize(*common, "--out", str(tmp_path / "out"), "--detection_threshold", "-1")
    assert "detection_threshold must be a number between 0 and 1, not '-1'" in capsys.readouterr().err
    for option, value, message in (("--top_k", "0", "must be 1 or more, not 0"),
                                   ("--pdf_dpi", "0", "must be above 0, not 0"),
                                   ("--formats", "json,hocr", "unknown output format(s) hocr")):
        with pytest.raises((SystemExit, ValueError), match=None if option != "--formats" else re.escape(message)):
            kuzu_recognize(*common, "--out", str(tmp_path / "out"), option, value)
        assert option == "--formats" or f"argument {option}: {message}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before anything was written
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(OSError, match=f"cannot write the submission to {tmp_path / 'a_file'}"):
        kuzu_recognize(*common, "--out", str(tmp_path / "out"), "--csv", str(tmp_path / "a_file" / "submission.csv"))


def test_a_second_run_into_the_same_folder_is_refused_while_the_first_goes_on(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "page.jpg").write_bytes(b"never read")
    with open(out / ".lock", "a+") as first:  # a run holding the folder
        fcntl.flock(first, fcntl.LOCK_EX)
        first.write("12345")
        first.flush()
        with pytest.raises(SystemExit, match=f"another run \\(process 12345\\) is writing to {out}"):
            kuzu_recognize(str(tmp_path / "page.jpg"), "--detector", "missing.ckpt", "--classifier", "missing.ckpt",
                           "--out", str(out))


@pytest.mark.slow
def test_no_process_is_left_when_a_run_is_killed(checkpoints, scans, tmp_path):
    """The loader workers (started by the forkserver, not children of the run) end with the run, however it ends."""
    marker = f"kuzu-test-{os.getpid()}-{time.time_ns()}"
    out = tmp_path / "out"
    process = recognize(checkpoints, [str(scans)], out, "--num_workers", "2", wait=False,
                        env={**ONE_THREAD, "KUZU_TEST_MARKER": marker})
    deadline = time.time() + 300
    while not list(out.rglob("*.json")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert len(marked(marker)) >= 3, "the run, its forkserver and its workers"
    process.send_signal(signal.SIGKILL)
    process.communicate()
    deadline = time.time() + 30
    while marked(marker) and time.time() < deadline:
        time.sleep(0.5)
    assert marked(marker) == []


def marked(marker: str) -> list[int]:
    """The processes whose environment holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and f"KUZU_TEST_MARKER={marker}".encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:  # gone meanwhile
            continue
    return found


def test_an_ensemble_with_test_time_views_reads_the_collection_as_the_python_api_does(checkpoints, scans, tmp_path):
    from kuzu_lightning import Recognizer

    detector, classifier = map(str, checkpoints)
    settings = {"page_scales": (1.0, 0.8), "crop_views": ((0.0, 0.0, 1.0), (0.0, 0.0, 1.1))}
    summary = kuzu_recognize(str(scans / "book3"), "--detector", detector, detector, "--classifier", classifier,
                             classifier, "--page_scales", "1", "0.8", "--crop_scales", "1.1",
                             "--out", str(tmp_path), "--accelerator", "cpu", "--num_workers", "0")
    assert (summary["done"], summary["failed"]) == (3, [])
    recognizer = Recognizer.from_checkpoints([detector] * 2, [classifier] * 2, **settings)
    for name in ("003", "004", "005"):
        page = json.loads((tmp_path / f"{name}.json").read_text(encoding="utf-8"))
        expected = recognizer.recognize(scans / "book3" / f"{name}.jpg").to_dict()
        assert page["characters"] and [c["code"] for c in page["characters"]] == [
            c["code"] for c in expected["characters"]]
        assert page["text"] == expected["text"]


ADAPT = ("--adapt", "--adapt_steps", "2", "--adapt_confidence", "0", "--adapt_batch_size", "4")
BOOKS = ("book1", "book2", "book2/deeper", "book3")  # a page's folder is its book


@pytest.mark.slow
def test_a_killed_adapting_run_completes_every_page_once_and_reuses_what_it_adapted(checkpoints, scans, tmp_path):
    from kuzu_lightning import Recognizer

    out = tmp_path / "out"
    first = out / "book1" / "adapted-classifier-0.ckpt"
    process = recognize(checkpoints, [str(scans)], out, *ADAPT, wait=False)
    deadline = time.time() + 300
    while not first.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert first.exists() and not list(out.rglob("*.json")), "the run was not killed while adapting"
    adapted = first.stat()
    again = recognize(checkpoints, [str(scans)], out, *ADAPT)
    assert "book book1: its adapted classifiers are reused" in again.output
    assert (first.stat().st_ino, first.stat().st_mtime_ns) == (adapted.st_ino, adapted.st_mtime_ns)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["done"], summary["recognised_now"], summary["missing"]) == (len(PAGES), len(PAGES), [])
    assert all((out / book / "adapted-classifier-0.ckpt").is_file() for book in BOOKS)
    assert not list(out.rglob("*.partial-*"))

    # each book's pages were read with its own adapted classifier, as the Python API reads them with it (in one thread,
    # as the run did: the tiny models' near-ties must break the same way)
    detector, threads = str(checkpoints[0]), torch.get_num_threads()
    for book, name in (("book1", "001"), ("book3", "004")):
        recognizer = Recognizer.from_checkpoints(detector, out / book / "adapted-classifier-0.ckpt")
        torch.set_num_threads(1)
        try:
            expected = recognizer.recognize(scans / book / f"{name}.jpg").to_dict()
        finally:
            torch.set_num_threads(threads)
        page = json.loads((out / book / f"{name}.json").read_text(encoding="utf-8"))
        assert page["characters"] and [c["code"] for c in page["characters"]] == [
            c["code"] for c in expected["characters"]]

    # a page done again later is read with its book's adapted classifier, which is reused, not adapted again
    (out / "book3" / "004.json").unlink()
    later = recognize(checkpoints, [str(scans)], out, *ADAPT)
    assert "1 to recognise" in later.output and "book book3: its adapted classifiers are reused" in later.output
    assert json.loads((out / "book3" / "004.json").read_text(encoding="utf-8"))["characters"] == page["characters"]


def test_adapt_settings_are_checked_before_any_model_loads(tmp_path):
    with pytest.raises(SystemExit, match="--adapt_steps needs --adapt"):
        kuzu_recognize(str(tmp_path), "--detector", "x.ckpt", "--classifier", "y.ckpt", "--out", str(tmp_path / "o"),
                       "--adapt_steps", "5")
    with pytest.raises(SystemExit, match="confidence=2.0"):
        kuzu_recognize(str(tmp_path), "--detector", "x.ckpt", "--classifier", "y.ckpt", "--out", str(tmp_path / "o"),
                       "--adapt", "--adapt_confidence", "2")
    with pytest.raises(SystemExit, match="--adapt runs on one device"):
        kuzu_recognize(str(tmp_path), "--detector", "x.ckpt", "--classifier", "y.ckpt", "--out", str(tmp_path / "o"),
                       "--adapt", "--devices", "2")


def test_pages_are_decoded_in_worker_processes_only_where_they_pay(monkeypatch):
    assert decoding_workers(3, 1) == 3 and decoding_workers(0, 500) == 0  # --num_workers, as given
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(2)), raising=False)
    assert decoding_workers(None, 500) == 0  # no core to spare on 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(16)), raising=False)
    assert (decoding_workers(None, 500), decoding_workers(None, 9)) == (2, 0)  # a worker's start-up outweighs 9 pages
