"""composer.runtime flags (the optimisations bench/optimisations.py measures): the speed flags
must not change a card, the precision flags must still give valid cards, bad settings fail.
No timings here: speed lives in bench/."""
from __future__ import annotations

import pytest

from biascard.compose.composer import Composer
from biascard.compose.runtime import length_groups, resolve_runtime
from biascard.compose.article import Article
from biascard.model.model_dir import load as load_model_dir

from test_serve_support import ARTICLE, tiny_model  # noqa: F401 - fixture

OTHER = (
    "Short one. A second, somewhat longer sentence follows here with more words in it. "
    + "Then a very long sentence that goes on and on about the budget, the schools, the roads " * 6
    + "and ends. Finally a closing line."
)


@pytest.fixture(scope="module")
def loaded(tiny_model):
    return load_model_dir(tiny_model)


def compose(loaded, **runtime):
    model, tok = loaded
    return Composer(model, tok, {"runtime": runtime})


ARTICLES = [Article(text=ARTICLE, title="Budget", id="a"), Article(text=OTHER, id="b"),
            Article(text="One sentence only.", id="c")]


def test_sorted_batches_give_the_same_cards(loaded):
    ref = compose(loaded, length_sorted=False, inference_mode=False).compose(ARTICLES)
    for batch_tokens in (8192, 256, 1):  # one batch, a few, one text per batch
        assert compose(loaded, length_sorted=True, batch_tokens=batch_tokens).compose(ARTICLES) == ref


def test_length_groups_cover_every_text_within_budget(loaded):
    _, tok = loaded
    texts = [ARTICLE, OTHER, "x", "a b c", OTHER * 3]
    groups = length_groups(tok, texts, max_length=64, stride=16, batch_tokens=128)
    assert sorted(i for g in groups for i in g) == list(range(len(texts)))
    lengths = [len(tok(t, add_special_tokens=False, verbose=False)["input_ids"]) for t in texts]
    flat = [i for g in groups for i in g]
    assert [lengths[i] for i in flat] == sorted(lengths)


@pytest.mark.parametrize("precision", ["int8", "bf16", "bf16_autocast"])
def test_precisions_give_valid_cards_and_leave_the_model_alone(loaded, precision):
    import torch

    model, _ = loaded
    cards = compose(loaded, precision=precision).compose(ARTICLES)  # validate() runs inside compose
    assert [c["id"] for c in cards] == ["a", "b", "c"]
    assert next(model.parameters()).dtype == torch.float32
    assert type(model.encoder.encoder.layer[0].attention.self.query).__name__ == "Linear"


def test_auto_precision_follows_the_cpu(monkeypatch):
    import biascard.compose.runtime as compose_mod

    monkeypatch.setattr(compose_mod, "native_bf16", lambda: False)
    assert resolve_runtime({"precision": "auto"})["precision"] == "fp32"
    monkeypatch.setattr(compose_mod, "native_bf16", lambda: True)
    assert resolve_runtime({"precision": "auto"})["precision"] == "bf16"


@pytest.mark.parametrize("bad, field", [({"precision": "fp8"}, "precision"), ({"sorted": True}, "sorted"),
                                        ({"batch_tokens": 0}, "batch_tokens")])
def test_bad_runtime_settings_name_the_key(bad, field):
    with pytest.raises(ValueError, match=field):
        resolve_runtime(bad)


def test_shipped_runtime_is_auto_and_sorted(monkeypatch):
    """Shipped: `auto`, so a CPU with native bf16 gets it; the tests' BIASCARD_PRECISION pin
    (conftest) is what makes every other test's card fp32."""
    import biascard.compose.runtime as compose_mod
    from biascard.compose.settings import composer_settings

    assert composer_settings()["runtime"]["precision"] == "fp32"  # the conftest pin
    monkeypatch.delenv("BIASCARD_PRECISION")
    shipped = composer_settings()["runtime"]
    assert shipped["precision"] == "auto"
    monkeypatch.setattr(compose_mod, "native_bf16", lambda: True)
    rt = resolve_runtime(shipped)
    assert rt["length_sorted"] and rt["inference_mode"] and rt["precision"] == "bf16"
    monkeypatch.setattr(compose_mod, "native_bf16", lambda: False)
    assert resolve_runtime(shipped)["precision"] == "fp32"


def test_onednn_cache_is_capped_unless_the_environment_sets_it(monkeypatch):
    """composer.runtime.onednn_cache caps oneDNN's primitive cache (the server's memory kept
    rising with the default 1024; docs/reliability.md); a value already in the environment wins."""
    import os

    from biascard.compose.runtime import resolve_runtime
    from biascard.compose.settings import composer_settings

    assert composer_settings()["runtime"]["onednn_cache"] == 8
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    resolve_runtime({"onednn_cache": 8})
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "8"
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "512")
    resolve_runtime({"onednn_cache": 8})
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "512"
    with pytest.raises(ValueError, match="onednn_cache"):
        resolve_runtime({"onednn_cache": -1})
