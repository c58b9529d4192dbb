"""Where raw data and the arrow cache live."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# Data whose license allows redistribution ships inside the package (see data/README.md).
BUNDLED_DIR = PACKAGE_DIR / "bundled"


def data_dir() -> Path:
    """BIASCARD_DATA_DIR, else ../shared/datasets beside the repo or the working dir."""
    env = os.environ.get("BIASCARD_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    for base in (Path.cwd(), PACKAGE_DIR.parent):
        candidate = base.parent / "shared" / "datasets"
        if candidate.is_dir():
            return candidate.resolve()
    return (Path.cwd() / "datasets").resolve()


def cache_dir() -> Path:
    env = os.environ.get("BIASCARD_CACHE_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return (Path.home() / ".cache" / "biascard").resolve()


def dataset_dir(folder: str) -> Path:
    """The folder of one dataset: the data dir first, the bundled copy second."""
    primary = data_dir() / folder
    if primary.is_dir():
        return primary
    bundled = BUNDLED_DIR / folder
    if bundled.is_dir():
        return bundled
    return primary
