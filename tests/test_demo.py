"""The demo's whole flow (``kuzu demo``), with the demo configs shrunk to a few steps on the small synthetic fixture."""

import json
import sys
from pathlib import Path

import wandb
import yaml

from kuzu_lightning.data.kaggle import read_sample_submission
from kuzu_lightning.metrics import read_submission_csv, score_csv
from kuzu_lightning.tools.kuzu import run

SMALL_DATA = {"synthetic_pages": 0, "num_workers": 0, "n_folds": 3}
SHRINK = {
    "detector": {"trainer": {"max_epochs": 1, "limit_train_batches": 2, "check_val_every_n_epoch": 1,
                             "num_sanity_val_steps": 0},
                 "data": {**SMALL_DATA, "train_longest_side": 640, "eval_longest_side": 512,
                          "crop_heights": [200, 240], "crop_size": [192, 240]},
                 "model": {"backbone": "mobilenet_v3_small", "rpn_post_nms_top_n_test": 300}},
    "classifier": {"trainer": {"max_epochs": 1, "limit_train_batches": 2, "num_sanity_val_steps": 0},
                   "data": {**SMALL_DATA, "input_size": 32}},
    "recognizer": {"data": {**SMALL_DATA, "eval_longest_side": 512}},
}


def shrunk_configs(synthetic_dir: Path, folder: Path) -> Path:
    """Override files for the demo's ``--overrides``: the demo on the small fixture, a few steps."""
    folder.mkdir()
    for name, changes in SHRINK.items():
        config = {section: {"init_args": values} if section in ("model", "data") else values
                  for section, values in changes.items()}
        config["data"]["init_args"]["data_dir"] = str(synthetic_dir)
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(config))
    return folder


def test_demo_trains_both_models_recognises_the_test_pages_and_scores_them(synthetic_dir, tmp_path, monkeypatch,
                                                                             capsys, recwarn):
    monkeypatch.chdir(tmp_path)  # the configs write under outputs/demo
    monkeypatch.setenv("WANDB_MODE", "offline")
    command_line = ["demo", "--overrides", str(shrunk_configs(synthetic_dir, tmp_path / "configs"))]
    monkeypatch.setattr(sys, "argv", ["kuzu", *command_line])
    result = run(command_line)
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == result
    assert not [w for w in recwarn if "args parameter" in str(w.message)]  # the CLIs did not see the demo's arguments
    solution = synthetic_dir / "test_solution.csv"  # the figures it prints are the submission's, scored here again
    assert (result["f1"], result["detection_f1"]) == (score_csv(result["submission"], solution)["f1"],
                                                     score_csv(result["submission"], solution, class_agnostic=True)["f1"])
    ids = read_sample_submission(synthetic_dir / "sample_submission.csv")
    assert read_submission_csv(result["submission"])["image_id"].tolist() == ids
    for suffix in ("txt", "png"):
        assert sorted(p.stem for p in Path(result["pages"]).glob(f"*.{suffix}")) == sorted(ids)
    assert sorted(p.stem for p in Path(result["pages"]).glob("*.json")) == sorted([*ids, "summary"])
    for command, runs in (("detector", 1), ("classifier", 1), ("recognizer", 2)):  # each its own W&B run, finished
        assert len(list((tmp_path / "outputs/demo" / command / "wandb").glob("offline-run-*"))) == runs
    # the thresholds predict used are the ones validate chose on the validation books
    assert Path(result["thresholds"]) == Path("outputs/demo/recognizer/thresholds.yaml")  # beside the recognizer's runs
    chosen = yaml.safe_load(Path(result["thresholds"]).read_text())["model"]["init_args"]
    assert chosen == {"detection_threshold": result["detection_threshold"], "min_confidence": result["min_confidence"]}
    assert set(result["budget"]) >= {"true_box_top1", "matched_share", "hit_share", "centre_dx", "log_height"}
    assert wandb.run is None
    for model in ("detector", "classifier"):
        assert Path(result[model]).is_file() and Path(result[model]).parent == tmp_path / f"outputs/demo/{model}/checkpoints"
