"""Book adaptation (:mod:`kuzu_lightning.adaptation`): books of a collection, AdaBN, adapted checkpoints and when they
are reused, and what adapting gains on pages written in a hand the classifier never saw."""

import os

import lightning as L
import pytest
import torch
from torch import nn

from kuzu_lightning.adaptation import (
    adapt_classifiers,
    book_of,
    reestimate_batchnorm,
    reusable,
    save_adapted,
    source_record,
)
from kuzu_lightning.adaptation_settings import AdaptationSettings
from kuzu_lightning.models.checkpoints import load_trained
from kuzu_lightning.models.classifier import CharClassifier


@pytest.mark.parametrize(("key", "book"), [
    ("scans/100241706_00004_2", "scans/100241706"), ("umgy010-028", "umgy010"), ("a/b/200014685-00005_2", "a/b/200014685"),
    ("book1/001", "book1"), ("test_036f268b", "."), ("a/page.jpg", "a"),
])
def test_a_page_s_book_is_the_book_id_in_its_name_else_its_folder(key, book):
    assert book_of(key) == book


def test_adabn_sets_the_statistics_of_the_crops_and_nothing_else():
    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).eval()
    weights = [parameter.clone() for parameter in network.parameters()]
    crops = torch.rand(40, 3, 8, 8) * 3 + 1
    reestimate_batchnorm(network, crops, batch_size=64)
    features = network[0](crops)
    norm = network[1]
    torch.testing.assert_close(norm.running_mean, features.mean((0, 2, 3)), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(norm.running_var, features.transpose(0, 1).flatten(1).var(1), atol=1e-5, rtol=1e-4)
    assert norm.momentum == 0.1 and not network.training
    assert all(torch.equal(a, b) for a, b in zip(weights, network.parameters()))


def random_crops(n: int) -> torch.Tensor:
    """``n`` crops of the tests' tiny classifier (32 px), of noise."""
    return torch.randint(0, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def test_an_adapted_checkpoint_loads_as_a_classifier_and_is_reused_only_while_nothing_changed(checkpoints, tmp_path):
    source = tmp_path / "classifier.ckpt"
    source.write_bytes(checkpoints[1].read_bytes())
    original, _ = load_trained(CharClassifier, source)
    crops = random_crops(48)
    settings = AdaptationSettings(steps=2, confidence=0.0, batch_size=8, min_crops=8)
    labels = torch.zeros(48, dtype=torch.long)
    (adapted,), counts = adapt_classifiers([source], [crops], labels, torch.ones(48), settings,
                                           {"accelerator": "cpu"})
    assert counts == {"crops": 48, "confident": 48, "steps": 2}
    path = tmp_path / "book" / "adapted-classifier-0.ckpt"
    save_adapted(adapted, source, path, source_record(source, settings))
    loaded, data = load_trained(CharClassifier, path)
    assert loaded.codes == original.codes and data == load_trained(CharClassifier, source)[1]
    for name, value in adapted.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    assert any(not torch.equal(value, original.state_dict()[name]) for name, value in loaded.state_dict().items())
    assert reusable(path, source, settings)
    assert not reusable(path, source, AdaptationSettings(steps=3, confidence=0.0, batch_size=8, min_crops=8))
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 1))
    assert not reusable(path, source, settings)  # the classifier was trained again meanwhile
    assert not reusable(tmp_path / "missing.ckpt", source, settings)


def test_a_book_with_too_few_confident_characters_is_not_fine_tuned(checkpoints):
    crops = random_crops(20)
    settings = AdaptationSettings(steps=5, confidence=0.99, batchnorm=False)
    (model,), counts = adapt_classifiers([checkpoints[1]], [crops], torch.zeros(20, dtype=torch.long),
                                         torch.full((20,), 0.5), settings)
    original, _ = load_trained(CharClassifier, checkpoints[1])
    assert counts == {"crops": 20, "confident": 0, "steps": 0}
    assert all(torch.equal(value, original.state_dict()[name]) for name, value in model.state_dict().items())


@pytest.mark.slow
def test_adapting_raises_the_accuracy_on_a_hand_the_classifier_never_saw(tmp_path):
    """A small CPU run of the stand-in for a real book unlike the training books: a classifier trained on synthetic
    books of every hand but one reads test books in that hand; adapted on those pages' crops alone (their own
    readings, no label), it reads them better."""
    from kuzu_lightning.data.chars import CharDataModule
    from kuzu_lightning.data.images import decode_page
    from kuzu_lightning.data.kaggle import read_labels_csv
    from kuzu_lightning.geometry import CROP_MARGIN
    from kuzu_lightning.models.crops import cut_crops
    from kuzu_lightning.synthetic.generator import generate

    data_dir = generate(tmp_path / "data", pages=16, test_pages=6, height=768, vocabulary="あいうえおかきくけこさしすせそ",
                        held_out_hand="sousho", seed=0)
    L.seed_everything(0)
    chars = CharDataModule(data_dir, input_size=32, batch_size=32, num_workers=0, n_folds=3, cache_dir=tmp_path / "cache")
    chars.prepare_data()
    chars.setup("fit")
    model = CharClassifier(chars.codes, "resnet18", warmup_steps=10, lr=1e-3)
    trainer = L.Trainer(accelerator="cpu", max_steps=150, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, chars)
    trainer.save_checkpoint(tmp_path / "classifier.ckpt")
    index = {code: i for i, code in enumerate(chars.codes)}
    crops, truth = [], []
    for page in read_labels_csv(data_dir / "test_solution.csv", data_dir / "test_images"):
        image = torch.from_numpy(decode_page(page.image_path)).permute(2, 0, 1).contiguous()
        crops.append((cut_crops(image, torch.from_numpy(page.boxes), 32, CROP_MARGIN) * 255).round().to(torch.uint8))
        truth += [index[code] for code in page.codes]
    crops, truth = torch.cat(crops), torch.tensor(truth)
    with torch.no_grad():
        probability, label = model.eval()(crops).max(1)
    before = float((label == truth).float().mean())
    (adapted,), counts = adapt_classifiers([tmp_path / "classifier.ckpt"], [crops], label, probability,
                                           AdaptationSettings(), {"accelerator": "cpu"})
    with torch.no_grad():
        after = float((adapted(crops).argmax(1) == truth).float().mean())
    assert after >= before + 0.05, (before, after, counts)
