"""The released model (issue 18): fp16 export, the model card from the release's own evaluation,
the eval studies it reports (lexical branches off, bf16), and the shipped model itself."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from biascard.model import model_dir as md

ROOT = Path(__file__).resolve().parents[1]


def _tiny_lexical_model(path: Path) -> Path:
    """A random tiny model with a lexical language_bias head, saved with a training record."""
    from biascard.model.heads import HeadSpec
    from biascard.model.modeling import BiasCardModel, load_tokenizer
    from biascard.model.tiny import make_tiny_encoder

    encoder = make_tiny_encoder(path / "tiny-encoder", seed=0)
    specs = {"language_bias": HeadSpec("language_bias", "binary", "sentence", ["0", "1"],
                                       lexical={"buckets": 4096, "dim": 8}),
             "biased_words": HeadSpec("biased_words", "token", "sentence", ["O", "BIASED"], span_label="biased_word")}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BiasCardModel.from_encoder(encoder, specs, max_length=32, stride=8, max_chunks=None)
        with torch.no_grad():  # a fresh branch adds zero; weights make it count
            model.lexical["language_bias"].weight.normal_(std=20.0)
    md.save(model.eval(), load_tokenizer(encoder), path / "model")
    md.write_training_record(path / "model", {"datasets": ["babe"], "steps": 3, "best_step": 3,
                                              "metric": "val/macro_f1_mean", "best_value": 0.5, "run_dir": None})
    return path / "model"


def _eval(model: Path, out: Path, **predict) -> dict:
    from omegaconf import OmegaConf

    from biascard.eval.runner import run_eval

    c = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "eval.yaml"))
    for k in ("defaults", "hydra"):
        c.pop(k)
    c.update(paths={}, model_dir=str(model), datasets=["babe"], bootstrap={**c["bootstrap"], "n_boot": 30},
             baselines={**c["baselines"], "c_grid": [1.0], "max_train": 600}, report={"sample_cards": 0, "plots": False})
    c["predict"].update(predict)
    return run_eval(c, out)


def test_export_casts_to_fp16_and_loads_as_fp32(tmp_path):
    from safetensors.torch import load_file

    trained = _tiny_lexical_model(tmp_path)
    sizes = md.save_fp16(trained, tmp_path / "release")
    md.write_checksums(tmp_path / "release")
    assert md.verify(tmp_path / "release")
    assert {v.dtype for v in load_file(str(tmp_path / "release" / md.WEIGHTS)).values()} == {torch.float16}
    assert sizes[md.WEIGHTS] < 0.6 * (trained / md.WEIGHTS).stat().st_size
    a, _ = md.load(trained)
    b, _ = md.load(tmp_path / "release")
    assert {p.dtype for p in b.parameters()} == {torch.float32}
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(pa.float(), pb.float(), rtol=1e-3, atol=1e-3), name
    with pytest.raises(md.ModelDirError, match=r"fp16 weights are .* MB, over the release limit of 0 MB"):
        md.save_fp16(trained, tmp_path / "too-big", max_bytes=1000)
    assert not (tmp_path / "too-big" / md.WEIGHTS).exists()


def test_model_card_reports_the_release_against_tfidf_and_its_studies(tmp_path, cache_dir, shared_dir):
    from biascard.eval.release import main

    trained = _tiny_lexical_model(tmp_path)
    release = tmp_path / md.RELEASE_NAME
    assert main(["export", "--model", str(trained), "--out", str(release)]) == 0
    own = _eval(release, tmp_path / "eval")
    off = _eval(release, tmp_path / "lexical_off", lexical=False)
    bf16 = _eval(release, tmp_path / "bf16", precision="bf16")
    assert any("lexical branches and fitted lexical models switched off" in n for n in off["notes"])
    assert any("ran in bf16" in n for n in bf16["notes"])

    def probs(run):
        rows = map(json.loads, (tmp_path / run / "predictions.jsonl").read_text().splitlines())
        return {r["id"]: r["prob"] for r in rows if r["system"] == "model" and r["task"] == "babe/language_bias"}

    p_own, p_off, p_bf16 = probs("eval"), probs("lexical_off"), probs("bf16")
    assert p_own.keys() == p_off.keys() == p_bf16.keys()
    assert max(abs(p_own[i] - p_off[i]) for i in p_own) > 0.05  # the branch moved P
    assert 0 < max(abs(p_own[i] - p_bf16[i]) for i in p_own) < 0.05  # rounding, not another model

    assert main(["card", str(release), "--eval", str(tmp_path / "eval"), "--n-boot", "30",
                 "--study", f"lexical off={tmp_path / 'lexical_off'}", "--study", f"bf16={tmp_path / 'bf16'}"]) == 0
    card = (release / md.MODEL_CARD).read_text()
    assert card.startswith("---\n") and "license: other" in card
    assert md.weights_version(release) in card and "AGPL-3.0" in card
    row = next(line for line in card.splitlines() if line.startswith("| babe/language_bias | macro_f1 |"))
    assert row.count("[") == 3  # model, TF-IDF+LR and their paired delta, each with its CI
    # the span head, which TF-IDF+LR cannot predict, against the eval's lexicon, paired likewise
    row = next(line for line in card.splitlines() if line.startswith("| babe/biased_words | span_f1 |"))
    assert row.count("[") == 3 and "(lexicon)" in row
    assert "### Study: lexical off" in card and "### Study: bf16" in card
    limitations = card.split("## Limitations", 1)[1]
    worse = [line.split(" | ")[0][2:] for line in card.splitlines() if line.endswith("| worse |")]
    assert worse and all(task in limitations for task in worse)  # each row below its baseline is named there
    assert "| language_bias | binary | sentence | 2 | 4096 buckets x 8 |" in card
    assert md.verify(release)  # the card is listed in SHA256SUMS

    # the card reports only the weights it describes: an eval of the fp32 dir is refused
    _eval(trained, tmp_path / "eval_fp32", precision="fp32")
    with pytest.raises(ValueError, match="evaluate the release itself"):
        main(["card", str(release), "--eval", str(tmp_path / "eval_fp32")])


def test_studies_are_not_the_served_model_for_targets():
    from biascard.eval.targets import _rechunked

    assert not _rechunked({"config": {"predict": {"precision": "fp32", "lexical": True}}})
    assert _rechunked({"config": {"predict": {"precision": "bf16"}}})
    assert _rechunked({"config": {"predict": {"lexical": False}}})


@pytest.mark.skipif(md.released_model() is None, reason="no released model in models/ (an install without the repo)")
def test_the_shipped_model_loads_and_composes_a_schema_valid_card():
    from biascard.card import validate
    from biascard.compose.article import Article
    from biascard.compose.composer import Composer

    path = md.released_model()
    assert md.verify(path) and (path / md.MODEL_CARD).is_file()
    assert (path / md.WEIGHTS).stat().st_size <= md.RELEASE_MAX_BYTES
    composer = Composer.from_model_dir(path)
    text = (ROOT / "serve" / "samples" / "article.txt").read_text()
    (card,) = composer.compose([Article(text=text, title="Riverside County Opens Its First Solar-Powered Water Treatment Plant")])
    validate(card)
    assert card["model"]["version"] == md.weights_version(path)
    assert all(c.get("expected_score") is not None for c in card["cognitive_concepts"])


def test_rescored_baselines_keep_their_own_decisions(tmp_path):
    """A baseline's rows re-scored from predictions.jsonl (compare, the card's paired deltas)
    decide at 0.5 as eval did, not at the model's saved thresholds."""
    from biascard.eval.runs import load_run, task_outputs

    meta = {"head": "sdg", "type": "multilabel", "labels": ["1", "2"], "thresholds": [0.9, 0.9]}
    (tmp_path / "metrics.json").write_text(json.dumps({"tasks": {"t/sdg": {"head": "sdg", "type": "multilabel",
                                                                           "labels": ["1", "2"], "meta": meta}}}))
    row = {"task": "t/sdg", "id": "a", "dataset": "t", "gold": [1, 0], "prob": [0.6, 0.1]}
    (tmp_path / "predictions.jsonl").write_text("".join(json.dumps({**row, "system": s}) + "\n" for s in ("model", "tfidf_lr")))
    metrics, rows = load_run(tmp_path)
    assert list(task_outputs(metrics, rows, "t/sdg", "model").thresholds) == [0.9, 0.9]
    assert task_outputs(metrics, rows, "t/sdg", "tfidf_lr").thresholds is None
