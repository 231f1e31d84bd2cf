"""Shared fixtures: a small synthetic Kaggle-layout dataset, and the real sample when present."""

from pathlib import Path

import pytest

from kuzu_lightning.data.synthetic import generate

SHARED = Path(__file__).resolve().parents[2] / "shared"
REAL_DATA = SHARED / "kuzushiji-real"


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    """Nine train pages from three books and three test pages, 640 px high (generated once)."""
    return generate(tmp_path_factory.mktemp("synthetic"), pages=9, test_pages=3, seed=0, height=640)


@pytest.fixture(scope="session")
def real_dir() -> Path:
    if not (REAL_DATA / "train.csv").is_file():
        pytest.skip(f"the real Kaggle sample is not at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared real data: the Kaggle sample, the real pages with their boxes, KMNIST."""
    missing = [name for name in ("kuzushiji-real", "real-pages", "kmnist-test") if not (SHARED / name).is_dir()]
    if missing:
        pytest.skip(f"the real data ({', '.join(missing)}) is not in {SHARED}")
    return SHARED
