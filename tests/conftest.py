"""Shared test setup: offline everywhere, real data from ../shared/datasets."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# the shipped default is `auto` (bf16 on CPUs with AVX512-BF16/AMX): tests pin fp32 so a card
# is the same on every CI machine; the tests of auto and bf16 ask for them explicitly
os.environ["BIASCARD_PRECISION"] = "fp32"

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BIASCARD_SHARED", REPO.parent / "shared"))
DATASETS = SHARED / "datasets"
os.environ.setdefault("BIASCARD_DATA_DIR", str(DATASETS))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    assert DATASETS.is_dir(), f"tests read the real data at {DATASETS}"
    return SHARED


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One arrow cache per test session, so adapters are built from the files once."""
    path = tmp_path_factory.mktemp("biascard-cache")
    os.environ["BIASCARD_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def smoke_inputs(cache_dir):
    """Build the arrow cache and the tiny encoder once, so debug=smoke runs only read them."""
    from biascard.data.prepare import prepare
    from biascard.model.tiny import make_tiny_encoder

    for name in ("babe", "gvfc"):
        prepare(name)
    make_tiny_encoder()
    return cache_dir
