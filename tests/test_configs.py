"""Every shipped config parses, as the commands compose it: a renamed argument never breaks a recipe unnoticed."""

from pathlib import Path

import pytest
import yaml

from kuzu_lightning.cli import CONFIGS, RecognizeCLI, TrainCLI, recipe
from kuzu_lightning.pretrained import DEFAULT_MODEL

COMMANDS = [(TrainCLI, "fit", "detector"), (TrainCLI, "fit", "classifier"), (RecognizeCLI, "predict", "recognizer"),
            (RecognizeCLI, "validate", "recognizer")]
SYNTHETIC_TRAINING = ("detector", "classifier")  # the models with a synthetic pre-training recipe
SYNTHETIC = (*SYNTHETIC_TRAINING, "recognizer")  # and the recipe that reads their pages


def printed_config(cli_class, subcommand: str, args: list[str], capsys) -> dict:
    with pytest.raises(SystemExit) as stop:
        cli_class(args=[subcommand, *args, "--print_config"])
    assert stop.value.code in (None, 0)
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("preset", ["real", "demo"])
@pytest.mark.parametrize(("cli_class", "subcommand", "model"), COMMANDS, ids=[f"{c[1]}-{c[2]}" for c in COMMANDS])
def test_each_shipped_recipe_parses_with_the_base_configs_under_it(cli_class, subcommand, model, preset, capsys):
    demo = preset == "demo"
    config = printed_config(cli_class, subcommand, recipe(model, preset), capsys)
    assert config["seed_everything"] == 42
    assert config["trainer"]["logger"]["init_args"]["project"] == "kuzu_lightning"
    assert config["trainer"]["accelerator"] == ("cpu" if demo else "gpu")
    assert config["trainer"]["default_root_dir"] == (f"outputs/demo/{model}" if demo else f"outputs/{model}")
    assert config["data"]["init_args"]["data_dir"] == ("data/synthetic" if demo else "data/kaggle")
    if cli_class is TrainCLI:
        assert config["checkpoint"]["monitor"] == "val/f1" and config["checkpoint"]["mode"] == "max"
        assert config["last_checkpoint"]["save_last"] is True and config["last_checkpoint"]["monitor"] is None
        assert config["last_checkpoint"]["every_n_train_steps"] > 0


@pytest.mark.parametrize("model", SYNTHETIC_TRAINING)
def test_the_synthetic_pre_training_recipes_are_the_demo_models_on_more_pages_for_longer(model, capsys):
    demo = printed_config(TrainCLI, "fit", recipe(model, "demo"), capsys)
    synthetic = printed_config(TrainCLI, "fit", recipe(model, "synthetic"), capsys)
    model_changes = {k for k, v in synthetic["model"]["init_args"].items() if demo["model"]["init_args"][k] != v}
    assert model_changes <= {"lr", "warmup_steps"}  # the demo's network and optimizer
    assert synthetic["data"]["init_args"]["data_dir"] == "data/synthetic-large"
    demo_pages, pages = (c["data"]["init_args"]["synthetic_pages"] * c["trainer"]["max_epochs"] for c in (demo, synthetic))
    assert pages > 3 * demo_pages  # pages seen in training
    assert synthetic["trainer"]["default_root_dir"] == f"outputs/synthetic/{model}"
    assert synthetic["trainer"]["accelerator"] == "cpu"


@pytest.mark.parametrize("subcommand", ["validate", "predict"])
def test_the_synthetic_models_read_the_pages_of_their_own_data_set(subcommand, capsys):
    trained = printed_config(TrainCLI, "fit", recipe("classifier", "synthetic"), capsys)
    config = printed_config(RecognizeCLI, subcommand, recipe("recognizer", "synthetic"), capsys)
    for key in ("data_dir", "synthetic_pages"):  # the same pages, so the detector's split finds its validation books
        assert config["data"]["init_args"][key] == trained["data"]["init_args"][key]
    assert config["model"]["init_args"]["detector_ckpt"].startswith("outputs/synthetic/detector/")
    assert config["model"]["init_args"]["classifier_ckpt"].startswith("outputs/synthetic/classifier/")
    outputs = [config["trainer"]["default_root_dir"], config["csv"], config["out"]]
    assert all(path.startswith("outputs/synthetic/") for path in outputs)


def test_the_real_recipe_reads_with_the_released_model_until_given_checkpoints(capsys):
    config = printed_config(RecognizeCLI, "predict", recipe("recognizer"), capsys)["model"]["init_args"]
    assert (config["detector_ckpt"], config["classifier_ckpt"]) == (DEFAULT_MODEL, DEFAULT_MODEL)


def test_every_file_in_configs_is_used_by_a_command():
    used = {CONFIGS / "base" / name for name in TrainCLI.BASE_CONFIGS + RecognizeCLI.BASE_CONFIGS}
    used |= {Path(path) for _, _, model in COMMANDS for preset in ("real", "demo") for path in recipe(model, preset)[1::2]}
    used |= {Path(path) for model in SYNTHETIC for path in recipe(model, "synthetic")[1::2]}
    assert set(CONFIGS.rglob("*.yaml")) == used


def test_the_demo_overrides_only_what_it_changes(capsys):
    real = printed_config(TrainCLI, "fit", recipe("classifier"), capsys)
    demo = printed_config(TrainCLI, "fit", recipe("classifier", "demo"), capsys)
    assert real["model"]["init_args"]["pretrained"] and not demo["model"]["init_args"]["pretrained"]
    # the demo's lighter backbone under the same two heads and SE branch; the real recipe keeps the Keras model's
    assert (real["model"]["init_args"]["backbone"], demo["model"]["init_args"]["backbone"]) == ("legacy_xception",
                                                                                              "resnet18")
    assert (real["data"]["init_args"]["input_size"], demo["data"]["init_args"]["input_size"]) == (96, 48)
    assert [c["class_path"] for c in demo["trainer"]["callbacks"]] == ["kuzu_lightning.callbacks.CharSamplePictures"]


def test_kuzu_runs_a_preset_with_its_shared_options_as_the_lightning_options_they_stand_for(tmp_path):
    from kuzu_lightning.tools.kuzu import parser_for
    from kuzu_lightning.tools.recipes import predict

    mine = tmp_path / "mine.yaml"
    command_line = ["predict", "--preset", "demo", "--config", str(mine), "--detector", "d.ckpt", "--classifier",
                    "c.ckpt", "--data_dir", "pages", "--accelerator", "cpu", "--trainer.max_epochs", "1"]
    args, rest = parser_for("predict").parse_known_args(command_line)
    args.passed_on = rest
    cli_class, arguments = predict.lightning_arguments(args)
    assert cli_class is RecognizeCLI
    assert arguments == ["predict", *recipe("recognizer", "demo"), "--config", str(mine), "--data.data_dir", "pages",
                         "--model.detector_ckpt", "d.ckpt", "--model.classifier_ckpt", "c.ckpt",
                         "--trainer.accelerator", "cpu", "--trainer.max_epochs", "1"]


@pytest.mark.parametrize("model", ["detector", "classifier"])
def test_kuzu_train_prints_the_config_train_py_reads(model, capsys, monkeypatch, tmp_path):
    from kuzu_lightning.tools.kuzu import run

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        run(["train", model, "--preset", "synthetic", "--print_config"])
    assert yaml.safe_load(capsys.readouterr().out) == printed_config(TrainCLI, "fit", recipe(model, "synthetic"), capsys)


def test_kuzu_predict_takes_ensembles_and_test_time_views_as_the_recognizer_settings(tmp_path, capsys):
    from kuzu_lightning.tools.kuzu import parser_for
    from kuzu_lightning.tools.recipes import predict

    command_line = ["predict", "--preset", "demo", "--detector", "d1.ckpt", "d2.ckpt", "--classifier", "c.ckpt",
                    "--page_scales", "0.8", "1", "--crop_shifts", "0.05", "--crop_scales", "1.1", "--top_k", "3",
                    "--html"]
    args, rest = parser_for("predict").parse_known_args(command_line)
    args.passed_on = rest
    _, arguments = predict.lightning_arguments(args)
    config = printed_config(RecognizeCLI, "predict", arguments[1:], capsys)
    model = config["model"]["init_args"]
    assert config["html"] is True
    assert model["detector_ckpt"] == ["d1.ckpt", "d2.ckpt"] and model["classifier_ckpt"] == "c.ckpt"
    assert model["page_scales"] == [0.8, 1.0] and model["top_k"] == 3
    assert model["crop_views"] == [[0.0, 0.0, 1.0], [0.05, 0.0, 1.0], [-0.05, 0.0, 1.0], [0.0, 0.05, 1.0],
                                   [0.0, -0.05, 1.0], [0.0, 0.0, 1.1]]
    with pytest.raises(SystemExit):
        parser_for("predict").parse_known_args(["predict", "--page_scales", "large"])
    assert "argument --page_scales: could not convert string to float: 'large'" in capsys.readouterr().err


def test_kuzu_predict_passes_book_adaptation_on_to_predict_py_checked_first(capsys):
    from kuzu_lightning.tools.kuzu import parser_for
    from kuzu_lightning.tools.recipes import predict

    def arguments(*options: str) -> list[str]:
        args, rest = parser_for("predict").parse_known_args(["predict", "--detector", "d.ckpt", "--classifier", "c.ckpt",
                                                             *options])
        args.passed_on = rest
        return predict.lightning_arguments(args)[1]

    assert "--adapt" not in arguments()
    given = arguments("--adapt", "--adapt_steps", "30", "--no-adapt_batchnorm")
    assert given[-6:] == ["--adapt", "true", "--adapt_steps", "30", "--adapt_batchnorm", "false"]
    config = printed_config(RecognizeCLI, "predict", given[1:], capsys)
    assert (config["adapt"], config["adapt_steps"], config["adapt_batchnorm"], config["adapt_lr"]) == (True, 30, False,
                                                                                                       None)
    with pytest.raises(SystemExit, match="--adapt_lr needs --adapt"):
        arguments("--adapt_lr", "0.001")
    with pytest.raises(SystemExit, match="steps=-1"):
        arguments("--adapt", "--adapt_steps", "-1")
