"""One adapter per dataset; importing this package registers them all in ADAPTERS."""
from .base import ADAPTERS, Adapter, iter_csv, iter_jsonl, register  # noqa: F401

import importlib

# Each module registers itself; a module still missing is reported by `biascard data list`.
_MODULES = ("babe", "mbic", "basil", "ukraine", "gvfc", "logic", "allsides", "sdg_trail22", "cards")
for _m in _MODULES:
    importlib.import_module(f"{__name__}.{_m}")
