"""Released models: ``scripts/release_model.py`` on real (tiny) checkpoints, loaded by name from Python and from
``kuzu recognize`` (``$KUZU_MODELS`` points at the release folder)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from kuzu_lightning import Recognizer
from kuzu_lightning.data.images import decode_page
from kuzu_lightning.data.pages import collate_whole_pages, page_item
from kuzu_lightning.pretrained import DEFAULT_MODEL, FILES, KEPT, release, released_models

ROOT = Path(__file__).resolve().parents[1]
NAME = "kuzu-tiny-v1"


@pytest.fixture(scope="module")
def released(checkpoints, module_dir) -> Path:
    """The fixture's tiny checkpoints released as ``kuzu-tiny-v1`` and as the default model, by the script."""
    folder = module_dir("released")
    thresholds = folder / "thresholds.yaml"
    thresholds.write_text("model:\n  init_args:\n    detection_threshold: 0.3\n    min_confidence: 0.05\n")
    card = folder / "card.md"
    card.write_text("# kuzu-tiny-v1\n\nTwo training steps on 9 synthetic pages.\n", encoding="utf-8")
    models = folder / "models"
    for name in (NAME, DEFAULT_MODEL):
        run = subprocess.run([sys.executable, "scripts/release_model.py", "--name", name, "--detector",
                              str(checkpoints[0]), "--classifier", str(checkpoints[1]), "--thresholds", str(thresholds),
                              "--card", str(card), "--licence", "MIT", "--into", str(models)],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        assert f"released {name} in {models / name}" in run.stdout
    return models


@pytest.fixture
def models_here(released, monkeypatch):
    monkeypatch.setenv("KUZU_MODELS", str(released))
    return released


def test_a_release_holds_half_precision_weights_the_thresholds_the_card_and_their_checksums(released, checkpoints):
    import hashlib

    folder = released / NAME
    record = json.loads((folder / "release.json").read_text())
    assert (record["name"], record["licence"]) == (NAME, "MIT")
    assert set(record["files"]) == set(FILES.values())
    for file, facts in record["files"].items():
        data = (folder / file).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (facts["bytes"], facts["sha256"])
    for kind, source in zip(("detector", "classifier"), checkpoints):
        compact = torch.load(folder / FILES[kind], weights_only=True)
        original = torch.load(source, weights_only=True)
        assert set(compact) == {"state_dict", *KEPT} & set(original) and "optimizer_states" in original
        assert compact["hyper_parameters"] == original["hyper_parameters"]
        assert {value.dtype for value in compact["state_dict"].values() if value.is_floating_point()} == {torch.float16}
        assert (folder / FILES[kind]).stat().st_size < 0.6 * Path(source).stat().st_size


def test_a_release_is_made_once_and_named_as_a_release(released, checkpoints, tmp_path):
    with pytest.raises(ValueError, match="exists: a new release takes a new version"):
        release(NAME, *checkpoints, released / NAME / FILES["thresholds"], released / NAME / FILES["card"], "MIT",
                released)
    with pytest.raises(ValueError, match="is no released model's name"):
        release("Tiny model", *checkpoints, released / NAME / FILES["thresholds"], released / NAME / FILES["card"],
                "MIT", tmp_path)
    with pytest.raises(ValueError, match="is not a CharClassifier checkpoint"):
        release("kuzu-wrong-v1", checkpoints[0], checkpoints[0], released / NAME / FILES["thresholds"],
                released / NAME / FILES["card"], "MIT", tmp_path)
    assert not list(tmp_path.iterdir())  # nothing half-made


def test_a_released_model_loads_by_name_at_its_thresholds_and_reads_as_its_checkpoints(models_here, checkpoints,
                                                                                       synthetic_dir):
    assert {NAME, DEFAULT_MODEL} <= set(released_models())
    by_name = Recognizer.from_pretrained(NAME)
    original = Recognizer.from_checkpoints(*checkpoints)
    assert (by_name.detection_threshold, by_name.min_confidence) == (0.3, 0.05)
    assert Recognizer.from_pretrained(NAME, min_confidence=0.2).min_confidence == 0.2
    mixed = Recognizer.from_checkpoints(NAME, checkpoints[1])  # not one released pair: the detector's own, no floor
    assert (mixed.detection_threshold, mixed.min_confidence) == (original.detection_threshold, 0.0)
    path = sorted((synthetic_dir / "test_images").glob("*.jpg"))[0]
    image = decode_page(path)
    batch = collate_whole_pages([page_item(path.stem, image, (image.shape[1], image.shape[0]), 512, image)])
    for mine, theirs in ((by_name.detectors[0], original.detectors[0]), (by_name.classifiers[0],
                                                                          original.classifiers[0])):
        weights = theirs.state_dict()  # the same weights, to half precision
        for key, value in mine.state_dict().items():
            torch.testing.assert_close(value, weights[key], rtol=1e-3, atol=1e-4, check_dtype=False)
    with torch.inference_mode():
        boxes = original.detect(batch, 0.0)[0]["boxes"][:50]
        assert len(boxes) == 50
        torch.testing.assert_close(by_name.classify_boxes(batch, 0, boxes), original.classify_boxes(batch, 0, boxes),
                                   atol=2e-3, rtol=0)


def test_kuzu_recognize_reads_a_scan_with_the_released_model_when_given_no_checkpoint(models_here, synthetic_dir,
                                                                                      tmp_path, capsys):
    from kuzu_lightning.tools.kuzu import run

    scan = sorted((synthetic_dir / "test_images").glob("*.jpg"))[0]
    summary = run(["recognize", str(scan), "--out", str(tmp_path / "out"), "--accelerator", "cpu",
                   "--num_workers", "0"])
    assert (summary["done"], summary["failed"]) == (1, [])
    page = json.loads((tmp_path / "out" / f"{scan.stem}.json").read_text(encoding="utf-8"))
    expected = Recognizer.from_pretrained(DEFAULT_MODEL).recognize(scan)  # at its thresholds
    assert [c["code"] for c in page["characters"]] == [c.code for c in expected.characters]
    run(["recognize", str(scan), "--out", str(tmp_path / "adapted"), "--adapt", "--accelerator", "cpu",
         "--num_workers", "0"])  # book adaptation of a released model: adapted from its checkpoint
    adapted = torch.load(tmp_path / "adapted" / "adapted-classifier-0.ckpt", weights_only=True)["adaptation"]
    assert adapted["source"] == str(models_here / DEFAULT_MODEL / FILES["classifier"])
    with pytest.raises(ValueError, match="no released model 'kuzu-missing-v9' .*released models here: "):
        run(["recognize", str(scan), "--out", str(tmp_path / "other"), "--detector", "kuzu-missing-v9",
             "--classifier", NAME])


def test_predict_py_reads_a_kaggle_folder_with_a_released_model_at_its_thresholds(models_here, synthetic_dir,
                                                                                   tmp_path):
    from kuzu_lightning.tools.kuzu import run

    out = tmp_path / "predicted"
    cli = run(["predict", "--preset", "demo", "--data_dir", str(synthetic_dir), "--detector", NAME, "--classifier", NAME,
               "--out", str(out / "pages"), "--csv", str(out / "submission.csv"), "--trainer.logger", "false",
               "--trainer.default_root_dir", str(out)])
    config = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))["model"]["init_args"]
    assert (config["detector_ckpt"], config["detection_threshold"], config["min_confidence"]) == (NAME, None, None)
    assert (cli.model.detection_threshold, cli.model.min_confidence) == (0.3, 0.05)  # the release's, as no other given
    unfloored = Recognizer.from_pretrained(NAME, min_confidence=0.0)
    for scan in (synthetic_dir / "test_images").glob("*.jpg"):
        page = json.loads((out / "pages" / f"{scan.stem}.json").read_text(encoding="utf-8"))
        read = unfloored.recognize(scan).characters  # the tiny pair's readings with no floor: hundreds, all doubtful
        assert read and [c["code"] for c in page["characters"]] == [c.code for c in read if c.probability >= 0.05]
    assert (out / "submission.csv").read_text().startswith("image_id,labels")


def test_fine_tuning_starts_from_a_released_model_and_keeps_the_rows_of_the_codes_it_knows(models_here, checkpoints,
                                                                                          synthetic_dir, tmp_path,
                                                                                          monkeypatch):
    from helpers.training import fit_and_save

    from kuzu_lightning import CharClassifier, CharDataModule, CharDetector
    from kuzu_lightning.models.checkpoints import load_trained

    released, _ = load_trained(CharClassifier, NAME)
    kept = released.codes[1:6]  # five codes it knows, two it does not, in another order
    codes = ["U+4E00", *reversed(kept), "U+4E8C"]
    mine = CharClassifier(codes, "legacy_xception", warmup_steps=1, init_from=NAME)
    for head in ("plain_head", "se_head"):
        weight = getattr(mine.network, head).linear.weight
        theirs = getattr(released.network, head).linear.weight
        torch.testing.assert_close(weight[1:6], theirs[[released.codes.index(code) for code in reversed(kept)]])
        assert not torch.allclose(weight[0], theirs[0])  # a code it does not know starts afresh
    torch.testing.assert_close(mine.network.se.state_dict(), released.network.se.state_dict())
    detector = CharDetector("mobilenet_v3_small", anchor_sizes=(16, 32, 64), box_batch_size_per_image=32,
                            init_from=NAME)
    original, _ = load_trained(CharDetector, checkpoints[0])
    for key, value in detector.state_dict().items():
        torch.testing.assert_close(value, original.state_dict()[key], rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match=f"{NAME}/detector.ckpt: its weights do not fit this CharDetector"):
        CharDetector("mobilenet_v3_large", anchor_sizes=(16, 32, 64), init_from=NAME)
    # a real fit from the release; its checkpoint then loads without it
    chars = CharDataModule(synthetic_dir, input_size=32, batch_size=8, num_workers=0, n_folds=3,
                           cache_dir=tmp_path / "cache")
    chars.prepare_data()
    chars.setup("fit")
    tuned = fit_and_save(CharClassifier(chars.codes, "legacy_xception", warmup_steps=1, init_from=NAME), chars,
                         tmp_path / "tuned.ckpt")
    assert torch.load(tuned, weights_only=True)["hyper_parameters"]["init_from"] == NAME
    monkeypatch.setenv("KUZU_MODELS", str(tmp_path / "nowhere"))
    assert load_trained(CharClassifier, tuned)[0].codes == chars.codes


def test_the_shipped_model_is_whole_and_reads_unseen_synthetic_books(synthetic_dir, tmp_path, monkeypatch):
    import hashlib

    from kuzu_lightning.metrics import score_csv
    from kuzu_lightning.pretrained import PACKAGE_MODELS, released_model
    from kuzu_lightning.tools.kuzu import run

    monkeypatch.delenv("KUZU_MODELS", raising=False)
    folder = released_model(DEFAULT_MODEL)
    assert folder == PACKAGE_MODELS / DEFAULT_MODEL
    record = json.loads((folder / "release.json").read_text(encoding="utf-8"))
    for file, expected in record["files"].items():
        assert hashlib.sha256((folder / file).read_bytes()).hexdigest() == expected["sha256"], file
    assert sum(file["bytes"] for file in record["files"].values()) < 60e6
    summary = run(["recognize", str(synthetic_dir / "test_images"), "--out", str(tmp_path / "read"), "--csv",
                   str(tmp_path / "submission.csv"), "--accelerator", "cpu"])  # no checkpoint: the shipped model
    assert (summary["done"], summary["failed"]) == (3, [])
    scores = score_csv(tmp_path / "submission.csv", synthetic_dir / "test_solution.csv")
    assert scores["f1"] > 0.6, scores  # books of the generator it never saw, in smaller pages than it trained on
