"""Shared fixtures: a small synthetic Kaggle-layout dataset, tiny trained checkpoints, the real data when present.

Tiers: ``pytest -m "not slow"`` is the daily loop; ``pytest`` runs everything (CI). Tests marked ``gpu`` run only
where CUDA is. The real data folder is ``$KUZU_REAL_DATA``, else ``../shared`` beside the checkout; tests that need
it skip when it is absent.
"""

import os
import shutil
from pathlib import Path

import pytest
import torch
from helpers.training import fit_and_save

from kuzu_lightning import CharClassifier, CharDataModule, CharDetector, PageDataModule
from kuzu_lightning.synthetic.generator import generate

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KUZU_REAL_DATA") or ROOT.parent / "shared")
REAL_DATA = SHARED / "kuzushiji-real"


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    """Nine train pages from three books and three test pages, 640 px high (generated once)."""
    return generate(tmp_path_factory.mktemp("synthetic"), pages=9, test_pages=3, seed=0, height=640)


@pytest.fixture(scope="module")
def module_dir(request, tmp_path_factory):
    """``module_dir(name)`` makes a new empty folder for a module-scoped fixture. All of a module's are removed
    once its tests are done, so that the suite's disk use peaks at one module's (a few GB at most), not at the
    sum of all; each test's own ``tmp_path`` is removed when it passes (``tmp_path_retention_policy``)."""
    root = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])

    def make(name: str) -> Path:
        folder = root / name
        folder.mkdir()
        return folder

    yield make
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def real_dir() -> Path:
    if not (REAL_DATA / "train.csv").is_file():
        pytest.skip(f"the real Kaggle sample is not at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The real data folder: the Kaggle sample, the real pages with their boxes, KMNIST."""
    missing = [name for name in ("kuzushiji-real", "real-pages", "kmnist-test") if not (SHARED / name).is_dir()]
    if missing:
        pytest.skip(f"the real data ({', '.join(missing)}) is not in {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def checkpoints(synthetic_dir, tmp_path_factory):
    """Real Lightning checkpoints of a tiny detector and classifier trained for two steps on the synthetic fixture:
    enough to exercise every stage of recognition (their predictions are near chance)."""
    import lightning as L

    root = tmp_path_factory.mktemp("checkpoints")
    L.seed_everything(0)
    pages = PageDataModule(synthetic_dir, train_longest_side=640, crop_heights=(200, 240), crop_size=(192, 240),
                           eval_longest_side=512, batch_size=2, num_workers=0, n_folds=3, cache_dir=root / "cache")
    detector = fit_and_save(CharDetector("mobilenet_v3_small", anchor_sizes=(16, 32, 64), box_batch_size_per_image=32,
                                         score_threshold=0.3, rpn_post_nms_top_n_test=300), pages, root / "detector.ckpt")
    chars = CharDataModule(synthetic_dir, input_size=32, batch_size=8, num_workers=0, n_folds=3, cache_dir=root / "cache")
    chars.prepare_data()
    chars.setup("fit")
    classifier = fit_and_save(CharClassifier(chars.codes, "legacy_xception", warmup_steps=1), chars,
                              root / "classifier.ckpt")
    return detector, classifier


@pytest.fixture(scope="session")
def xml_schemas():
    """``{"page": ..., "alto": ...}``: the official schemas of PAGE XML (2019) and ALTO (4.4) in ``SHARED/schemas``, as
    ``lxml`` schemas (ALTO's XLink import pointed at the local copy: nothing is downloaded)."""
    from lxml import etree

    folder = SHARED / "schemas"
    if not all((folder / name).is_file() for name in ("page.xsd", "alto-4-4.xsd", "xlink.xsd")):
        pytest.skip(f"the PAGE and ALTO schemas are not in {folder}")
    alto = etree.parse(str(folder / "alto-4-4.xsd"))
    for schema_import in alto.getroot().iter("{http://www.w3.org/2001/XMLSchema}import"):
        if schema_import.get("namespace") == "http://www.w3.org/1999/xlink":
            schema_import.set("schemaLocation", (folder / "xlink.xsd").resolve().as_uri())
    return {"page": etree.XMLSchema(etree.parse(str(folder / "page.xsd"))), "alto": etree.XMLSchema(alto)}
