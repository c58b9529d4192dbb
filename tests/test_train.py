"""The training loop on debug=smoke (tiny random encoder, real BABE + GVFC rows), its
configs, the mixture sampler and the metrics."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from biascard.train.logging import read_metrics, resolve_wandb_mode
from biascard.train.sampling import MixtureBatchSampler, mixture_counts, mixture_probs

ALL_DATASETS = ["babe", "mbic", "basil", "ukraine", "gvfc", "logic", "allsides", "sdg_trail22"]


def _compose(*overrides: str):
    with initialize_config_module(config_module="biascard.configs", version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))




def _run_in_process(out_dir: Path, *overrides: str) -> dict:
    from biascard.train.loop import train

    cfg = _compose("debug=smoke", "logger=none", f"paths.output_dir={out_dir}", *overrides)
    threads = torch.get_num_threads()
    try:
        return train(cfg)
    finally:
        torch.set_num_threads(threads)  # smoke pins 1 thread; other tests keep theirs


# ---------------------------------------------------------------- configs


def test_quick_experiment_trains_every_dataset_head_on_minilm():
    cfg = _compose("experiment=quick")
    assert list(cfg.data.datasets) == ALL_DATASETS
    assert cfg.model.encoder == "minilm"
    assert cfg.model.max_length == 128
    assert cfg.trainer.max_steps and cfg.trainer.max_steps <= 400
    assert cfg.data.max_chunks and cfg.data.max_chunks <= 2  # long AllSides articles are cut
    assert cfg.trainer.mixed_precision == "auto"
    # every head of the dataset heads config is present (card heads come only from cards)
    assert {"language_bias", "biased_words", "political_leaning", "sdg", "fallacy", "gvfc_frame"} <= set(cfg.heads)


def test_full_and_debug_configs_compose():
    full = _compose("experiment=full")
    assert full.model.max_length == 512 and full.trainer.early_stopping.patience
    smoke = _compose("debug=smoke")
    assert smoke.model.encoder == "tiny" and smoke.trainer.max_steps <= 10
    dbg = _compose("debug=default")
    assert dbg.trainer.max_steps == 20


def test_optuna_search_space_and_direction():
    with initialize_config_module(config_module="biascard.configs", version_base="1.3"):
        cfg = compose(config_name="train", overrides=["hparams_search=optuna"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert "optuna" in sweeper._target_.lower()
    assert sweeper.direction == "maximize"
    assert str(cfg.hydra.mode).endswith("MULTIRUN")
    assert {"trainer.lr", "trainer.batch_size", "trainer.warmup_ratio"} <= set(sweeper.params)
    assert cfg.optimized_metric == "val/macro_f1_mean"


def test_wandb_mode_defaults_offline_without_key(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert resolve_wandb_mode(None) == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_wandb_mode(None) == "online"
    assert resolve_wandb_mode("disabled") == "disabled"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_wandb_mode(None) == "offline"
    with pytest.raises(ValueError, match="mode"):
        resolve_wandb_mode("sometimes")


# ---------------------------------------------------------------- sampling


def test_temperature_probabilities():
    assert np.allclose(mixture_probs([100, 400], 1.0), [0.2, 0.8])
    assert np.allclose(mixture_probs([100, 400], 2.0), [1 / 3, 2 / 3])  # sqrt: 10 vs 20
    assert np.allclose(mixture_probs([100, 400], 1e6), [0.5, 0.5], atol=1e-4)
    assert np.allclose(mixture_probs([0, 5], 2.0), [0.0, 1.0])
    counts = mixture_counts([100, 400, 900], 2.0, 1000)
    assert sum(counts) == 1000
    assert np.allclose(np.array(counts) / 1000, np.sqrt([100, 400, 900]) / 60, atol=1e-3)
    with pytest.raises(ValueError):
        mixture_probs([1, 2], 0)


def test_sampler_draws_the_mixture_and_oversamples_small_sets():
    sizes = [50, 1000]
    lengths = list(range(sum(sizes)))
    s = MixtureBatchSampler(sizes, lengths, 10, temperature=5.0, epoch_size=600, seed=3)
    seen = [i for b in s.epoch_batches(0) for i in b]
    by_ds = Counter(0 if i < 50 else 1 for i in seen)
    expected = mixture_counts(sizes, 5.0, 600)
    assert [by_ds[0], by_ds[1]] == expected
    assert by_ds[0] > 50  # the small dataset is repeated (permutations cycled)
    # each of its records appears floor or ceil of count/size times
    reps = Counter(i for i in seen if i < 50)
    assert set(reps.values()) <= {expected[0] // 50, expected[0] // 50 + 1}
    # deterministic per (seed, epoch), different across epochs
    assert s.epoch_batches(0) == s.epoch_batches(0)
    assert s.epoch_batches(0) != s.epoch_batches(1)


def test_length_grouping_reduces_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 500, size=2000).tolist()
    grouped = MixtureBatchSampler([2000], lengths, 16, seed=1, megabatch_factor=50)
    plain = MixtureBatchSampler([2000], lengths, 16, seed=1, megabatch_factor=1)

    def padded(s):
        return sum(len(b) * max(lengths[i] for i in b) for b in s.epoch_batches(0))

    assert padded(grouped) < 0.7 * padded(plain)


def test_sampler_shards_and_resumes_at_its_position():
    sizes, lengths = [30, 70], list(range(100))
    ranks = [MixtureBatchSampler(sizes, lengths, 4, seed=7, num_replicas=2, rank=r) for r in (0, 1)]
    b0, b1 = ranks[0].rank_batches(0), ranks[1].rank_batches(0)
    assert len(b0) == len(b1) == len(ranks[0])
    assert not {tuple(b) for b in b0} & {tuple(b) for b in b1}
    full = MixtureBatchSampler(sizes, lengths, 4, seed=7)
    it = iter(full)
    first = [next(it) for _ in range(37)]  # crosses an epoch boundary (25 batches per epoch)
    resumed = MixtureBatchSampler(sizes, lengths, 4, seed=7)
    resumed.load_state_dict(json.loads(json.dumps(MixtureBatchSampler(sizes, lengths, 4, seed=7).state_dict())))
    it2 = iter(resumed)
    assert [next(it2) for _ in range(37)] == first
    state = full.state_dict()
    assert (state["epoch"], state["position"]) == (1, 12)
    again = MixtureBatchSampler(sizes, lengths, 4, seed=7)
    again.load_state_dict(json.loads(json.dumps(state)))
    rest_a = [next(it) for _ in range(20)]
    it3 = iter(again)
    assert [next(it3) for _ in range(20)] == rest_a
    with pytest.raises(ValueError, match="counts"):
        MixtureBatchSampler(sizes, lengths, 4, seed=7, temperature=3.0).load_state_dict(state)


# ---------------------------------------------------------------- metrics


def test_head_metrics_by_type():
    from biascard.train.evaluation import aggregate
    from biascard.model.heads import HeadSpec

    specs = {
        "b": HeadSpec("b", "binary", labels=["0", "1"]),
        "m": HeadSpec("m", "multiclass", labels=["x", "y", "z"]),
        "ml": HeadSpec("ml", "multilabel", labels=["p", "q"]),
        "o": HeadSpec("o", "ordinal", labels=["1", "2", "3"]),
        "t": HeadSpec("t", "token", labels=["O", "B"]),
    }
    logits = {
        "b": [torch.tensor([2.0, -1.0, 3.0, 0.5])],
        "m": [torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0], [5.0, 0, 0]])],
        "ml": [torch.tensor([[3.0, -3.0], [3.0, 3.0], [-3.0, -3.0]])],
        # CORN: both conditionals high -> rank 2; first high only -> 1; none -> 0
        "o": [torch.tensor([[5.0, 5.0], [5.0, -5.0], [-5.0, -5.0]])],
        "t": [torch.tensor([[[0, 5.0], [5.0, 0], [0, 0]]]), torch.tensor([[[5.0, 0]]])],
    }
    labels = {
        "b": [torch.tensor([1.0, 0.0, -100.0, 0.0])],
        "m": [torch.tensor([0, 1, 2, -100])],
        "ml": [torch.tensor([[1.0, 0.0], [1.0, 1.0], [-100.0, -100.0]])],
        "o": [torch.tensor([2, 1, 1])],
        "t": [torch.tensor([[1, 0, -100]]), torch.tensor([[1]])],
    }
    m = aggregate(specs, logits, labels)
    assert m["val/b/n"] == 3 and m["val/b/accuracy"] == pytest.approx(2 / 3)
    assert m["val/m/macro_f1"] == 1.0 and m["val/m/n"] == 3
    assert m["val/ml/micro_f1"] == 1.0 and m["val/ml/n"] == 2
    assert m["val/o/mae"] == pytest.approx(1 / 3)
    assert m["val/t/n"] == 3 and m["val/t/f1"] == pytest.approx(2 / 3)
    mains = [m["val/b/macro_f1"], m["val/m/macro_f1"], m["val/ml/macro_f1"], m["val/o/macro_f1"], m["val/t/f1"]]
    assert m["val/macro_f1_mean"] == pytest.approx(np.mean(mains))


# ---------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def smoke_run(smoke_inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke-run")
    result = _run_in_process(out)
    return out, result


def test_smoke_run_writes_metrics_checkpoints_and_model(smoke_run):
    out, result = smoke_run
    rows = read_metrics(out / "metrics.jsonl")
    train = [r for r in rows if r["split"] == "train"]
    val = [r for r in rows if r["split"] == "val"]
    assert [r["step"] for r in train] == list(range(1, 9))
    assert all(np.isfinite(r["loss"]) and r["lr"] >= 0 and r["samples_per_s"] > 0 for r in train)
    assert [r["step"] for r in val] == [3, 6, 8]
    for key in ("val/macro_f1_mean", "val/language_bias/macro_f1", "val/biased_words/f1",
                "val/gvfc_frame/macro_f1", "val/topic/micro_f1"):
        assert all(0.0 <= r[key] <= 1.0 for r in val), key
    assert any(r["split"] == "log" and "heads (4)" in r["message"] for r in rows)
    assert (out / "config.yaml").is_file()
    assert OmegaConf.load(out / "config.yaml").data.datasets == ["babe", "gvfc"]

    state = json.loads((out / "checkpoints/last/trainer_state.json").read_text())
    assert state["step"] == 8 and state["finished"] is True
    assert (out / "checkpoints/last/model.safetensors").is_file()
    best = json.loads((out / "checkpoints/best/best.json").read_text())
    assert best["step"] == result["best_step"]
    assert result["val/macro_f1_mean"] == max(r["val/macro_f1_mean"] for r in val)


def test_smoke_model_dir_reloads_safetensors_only(smoke_run):
    from biascard.model.features import encode
    from biascard.model.model_dir import load as load_model_dir

    out, _ = smoke_run
    model_dir = out / "model"
    names = {p.name for p in model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pkl", ".pth"))]
    model, tok = load_model_dir(model_dir)
    specs = model.head_specs
    assert set(specs) == {"language_bias", "biased_words", "gvfc_frame", "topic"}
    # label sets resolved from the data travel with the model
    assert len(specs["gvfc_frame"].labels) >= 5 and "1" not in specs["gvfc_frame"].labels
    cfg = json.loads((model_dir / "config.json").read_text())
    assert cfg["heads"]["topic"]["labels"] == specs["topic"].labels
    batch = encode([{"text": "Radical lawmakers slammed the bill."}], tok, specs, max_length=64, stride=16,
                   with_labels=False)
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits["gvfc_frame"].shape == (1, len(specs["gvfc_frame"].labels))
    info = json.loads((model_dir / "training.json").read_text())
    assert info["datasets"] == ["babe", "gvfc"] and info["steps"] == 8
    # the multilabel head's decision thresholds were fit on validation and saved with it
    assert len(specs["topic"].thresholds) == len(specs["topic"].labels)
    assert specs["language_bias"].thresholds is None  # thresholds.types = [multilabel]
    fit = json.loads((model_dir / "thresholds.json").read_text())
    assert set(fit["heads"]) == {"topic"} and fit["datasets"] == {"babe": 32, "gvfc": 32}


def test_smoke_model_config_carries_the_validation_chunks(smoke_run):
    out, _ = smoke_run
    smoke = _compose("debug=smoke")
    for d in (out / "model", out / "checkpoints/best"):
        assert json.loads((d / "config.json").read_text())["max_chunks"] == smoke.data.eval_max_chunks, d


def test_inference_chunks_are_validations_not_trainings(smoke_inputs, tmp_path):
    """data.eval_max_chunks (what model selection read), not data.max_chunks, goes into the
    model's config, so eval and serve (the composer) read the chunks validation did."""
    from biascard.compose.composer import Composer
    from biascard.model.model_dir import load as load_model_dir

    _run_in_process(tmp_path, "data.max_chunks=1", "data.eval_max_chunks=3", "trainer.max_steps=3",
                    "thresholds.types=[]")
    assert json.loads((tmp_path / "model/config.json").read_text())["max_chunks"] == 3
    assert json.loads((tmp_path / "checkpoints/best/config.json").read_text())["max_chunks"] == 3
    model, _ = load_model_dir(tmp_path / "model")
    assert model.config.max_chunks == 3
    assert Composer.from_model_dir(tmp_path / "model").max_chunks == 3


def test_early_stopping_stops_after_patience(smoke_inputs, tmp_path):
    # an improvement of 1.0 in a macro-F1 is impossible, so the second evaluation stops the run
    result = _run_in_process(tmp_path, "trainer.early_stopping.patience=1",
                             "trainer.early_stopping.min_delta=1.0", "trainer.max_steps=30")
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert max(r["step"] for r in rows if r["split"] == "train") == 6
    assert [r["step"] for r in rows if r["split"] == "val"] == [3, 6]
    assert any("early stopping at step 6" in r.get("message", "") for r in rows)
    assert result["best_step"] == 3 and result["steps"] == 6
    info = json.loads((tmp_path / "model/training.json").read_text())
    assert info["stopped_early"] is True and info["best_step"] == 3


def test_unlabeled_heads_fail_when_dropping_is_off(smoke_inputs, tmp_path):
    with pytest.raises(ValueError, match="no labels in the train splits"):
        _run_in_process(tmp_path, "data.drop_unlabeled_heads=false")


def test_optuna_sweep_runs_trials_and_maximizes_the_metric(smoke_inputs, tmp_path):
    import os
    import subprocess
    import sys

    import yaml

    r = subprocess.run(
        [sys.executable, "-m", "biascard.train", "hparams_search=optuna", "debug=smoke", "logger=none",
         "hydra.sweeper.n_trials=2", "trainer.max_steps=3", f"paths.log_dir={tmp_path}"],
        env={**os.environ, "WANDB_MODE": "disabled"}, capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    (sweep,) = (tmp_path / "train" / "multiruns").iterdir()
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    trials = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in trials] == ["0", "1"]
    # each trial returned its best val/macro_f1_mean; the study kept the larger
    values = [max(x["val/macro_f1_mean"] for x in read_metrics(p / "metrics.jsonl") if x["split"] == "val")
              for p in trials]
    assert results["best_value"] == pytest.approx(max(values))
    assert set(results["best_params"]) >= {"trainer.lr", "trainer.batch_size"}
    assert not (trials[0] / "model").exists()  # sweeps skip the final model dir
    assert "setup plugin alembic" not in r.stdout


def test_param_groups_give_heads_their_lr_and_skip_decay_on_norms():
    from biascard.model.heads import HeadSpec
    from biascard.train.optimization import param_groups
    from biascard.model.modeling import BiasCardModel

    model = BiasCardModel.from_encoder("tiny", {"a": HeadSpec("a", "binary", labels=["0", "1"])},
                                       max_length=64, stride=16)
    groups = param_groups(model, OmegaConf.create({"lr": 1e-4, "head_lr": 3e-3, "weight_decay": 0.01}))
    by_id = {id(p): g for g in groups for p in g["params"]}
    for name, p in model.named_parameters():
        g = by_id[id(p)]
        assert g["lr"] == (3e-3 if name.startswith("heads.") else 1e-4), name
        assert g["weight_decay"] == (0.0 if name.endswith(("bias", "LayerNorm.weight")) else 0.01), name
    same = param_groups(model, OmegaConf.create({"lr": 1e-4, "head_lr": None, "weight_decay": 0.0}))
    assert {g["lr"] for g in same} == {1e-4}


def test_thresholds_cli_refits_on_the_runs_validation_records(smoke_run, tmp_path, capsys):
    """`python -m biascard.train.thresholds` on a trained model dir rebuilds training's validation
    records from the run's config.yaml, so it reproduces the thresholds training saved."""
    import shutil

    from biascard.train.thresholds import main

    out, _ = smoke_run
    model_dir = tmp_path / "model"
    shutil.copytree(out / "model", model_dir)
    saved = json.loads((model_dir / "config.json").read_text())["heads"]["topic"]["thresholds"]
    (model_dir / "thresholds.json").unlink()
    assert main(["--model", str(model_dir)]) == 0
    fit = json.loads((model_dir / "thresholds.json").read_text())
    assert fit["datasets"] == {"babe": 32, "gvfc": 32}
    assert fit["heads"]["topic"]["thresholds"] == saved
    assert main(["--model", str(tmp_path / "absent")]) == 2
    assert "not a model dir" in capsys.readouterr().err


def test_refold_trains_on_the_recut_splits(smoke_inputs, tmp_path):
    from biascard.data.prepare import prepare
    from biascard.data.splits import refold
    from biascard.train.thresholds import main

    _run_in_process(tmp_path, "data.refold={k:3,fold:2}", "data.eval_caps.babe=null", "data.eval_caps.gvfc=null")
    rows = read_metrics(tmp_path / "metrics.jsonl")
    for name in ("babe", "gvfc"):
        expect = len(refold(prepare(name), name, 3, 2)["validation"])
        got = [r.get("validation_records") for r in rows if r.get("dataset") == name and "validation_records" in r]
        assert got == [expect], (name, got, expect)
        assert any(f"{name}: train+validation re-cut, fold 2 of 3" in r.get("message", "") for r in rows)
    # the thresholds CLI rebuilds the same re-cut validation records from the run's config
    model_dir = tmp_path / "model"
    saved = json.loads((model_dir / "config.json").read_text())["heads"]["topic"]["thresholds"]
    assert main(["--model", str(model_dir)]) == 0
    fit = json.loads((model_dir / "thresholds.json").read_text())
    assert fit["datasets"]["babe"] == len(refold(prepare("babe"), "babe", 3, 2)["validation"])
    assert fit["heads"]["topic"]["thresholds"] == saved


EXPERIMENTS = sorted(p.stem for p in (Path(__file__).parents[1] / "configs" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_declares_valid_heads(name):
    """A recipe the docs tell readers to train (`make candidate RECIPE=...`) must compose, and its
    head overrides (lexical branch sizes, weighting) must pass the checks training applies."""
    from biascard.model.heads import load_heads

    cfg = _compose(f"experiment={name}")
    specs = load_heads(cfg.heads)
    assert specs and set(specs) == set(cfg.heads)


def test_a_branch_override_keeps_what_it_does_not_name():
    """`topic: {lexical: {weighting, dim}}` merges into the inherited branch: its bucket count
    stays the first release's (experiment=release), not LEXICAL_DEFAULTS'."""
    from biascard.model.heads import load_heads

    topic = load_heads(_compose("experiment=release_topic_tfidf").heads)["topic"]
    assert topic.lexical == {"buckets": 32768, "dim": 16, "weighting": "tfidf"}
