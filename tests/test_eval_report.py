"""End to end: a debug=smoke model, `biascard-eval` on it, the report in headless Chromium,
`compare` on two runs, and k-fold CV with a model trained per fold."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from biascard.eval.compare import compare, to_markdown
from biascard.eval.runner import score_systems
from biascard.eval.screenshot import chromium_path, screenshot
from biascard.eval.tasks import Outputs
from biascard.eval.writing import write_run


def _run(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


@pytest.fixture(scope="module")
def smoke_model(tmp_path_factory, cache_dir, shared_dir) -> Path:
    """A model trained by `biascard-train debug=smoke` (tiny random encoder, seconds)."""
    run = tmp_path_factory.mktemp("smoke-train")
    _run(["-m", "biascard.train", "debug=smoke", "logger=none", f"hydra.run.dir={run}"], cwd=run)
    assert (run / "model" / "model.safetensors").is_file()
    return run / "model"


@pytest.fixture(scope="module")
def eval_run(smoke_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval-run")
    _run(["-m", "biascard.eval", f"model={smoke_model}", "max_examples=120", "bootstrap.n_boot=100",
          "baselines.c_grid=[1.0]", "report.sample_cards=2", f"hydra.run.dir={out}"], cwd=out)
    return out


def _tiny_model(path: Path, max_chunks: int | None):
    """(model, tokenizer): a random tiny model reading 32-token chunks, with a sequence and a token head."""
    import torch

    from biascard.model.heads import HeadSpec
    from biascard.model.modeling import BiasCardModel, load_tokenizer
    from biascard.model.tiny import make_tiny_encoder

    encoder = make_tiny_encoder(path / "tiny-encoder")
    specs = {"language_bias": HeadSpec("language_bias", "binary", "sentence", ["0", "1"]),
             "biased_words": HeadSpec("biased_words", "token", "sentence", ["O", "BIASED"])}
    # seeded: with the global RNG wherever earlier tests left it, the long text's chunks could
    # happen to read almost alike (a 3e-4 difference in one full run)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BiasCardModel.from_encoder(encoder, specs, max_length=32, stride=8, max_chunks=max_chunks)
        with torch.no_grad():  # weights above the init's, so reading other chunks visibly moves P
            torch.nn.init.normal_(model.heads["language_bias"].proj.weight, std=0.3)
    return model.eval(), load_tokenizer(encoder)


LONG = ("The council voted on Tuesday to approve the budget after a heated debate that lasted well into the night. "
        "Critics called the plan a reckless giveaway, while supporters said it funds schools, roads and transit. "
        "The mayor did not respond to a request for comment on the outcome of the vote. ") * 2


def test_eval_predicts_with_the_models_max_chunks(tmp_path):
    from biascard.eval.predict import chunking, predict_records

    model, tok = _tiny_model(tmp_path, max_chunks=1)
    assert len(tok(LONG)["input_ids"]) > 3 * 32  # several chunks
    records = [{"id": "long", "text": LONG}, {"id": "short", "text": "The council met."}]
    assert chunking(model) == {"max_length": 32, "stride": 8, "max_chunks": 1, "model_max_chunks": 1, "overridden": False}
    assert chunking(model, 4)["overridden"] and chunking(model, 4)["max_chunks"] == 4

    def predict(**kw):
        got = predict_records(model, tok, records, token_threshold=0.0, **kw)
        # threshold 0: one span over every token read, so its end shows how far the model read
        return got["language_bias"]["prob"], got["biased_words"]["spans"][0][-1][1]

    own, own_end = predict()  # max_chunks=None: the model's config.max_chunks (1)
    one, one_end = predict(max_chunks=1)
    np.testing.assert_allclose(own, one)
    assert own_end == one_end < len(LONG) / 3
    model.config.max_chunks = None  # the same weights, reading every chunk
    full, full_end = predict()
    assert abs(full[0] - own[0]) > 1e-3  # the long document reads differently
    assert full[1] == pytest.approx(own[1], abs=1e-6)  # a one-chunk record does not
    assert full_end > len(LONG) - 10
    every, _ = predict(max_chunks=100)
    np.testing.assert_allclose(every, full, atol=1e-6)


def _eval_config(**over) -> dict:
    """configs/eval.yaml as a plain dict (no Hydra run), with `over` merged in."""
    from omegaconf import OmegaConf

    c = OmegaConf.to_container(OmegaConf.load(Path(__file__).resolve().parents[1] / "configs" / "eval.yaml"))
    for k in ("defaults", "hydra"):
        c.pop(k)
    c["paths"] = {}
    for k, v in over.items():
        c[k] = {**c[k], **v} if isinstance(v, dict) else v
    return c


def _babe_test() -> list[dict]:
    from biascard.data.prepare import prepare

    return prepare("babe")["test"].to_list()


def test_run_eval_reads_the_models_chunks_unless_overridden(tmp_path, cache_dir, shared_dir):
    from biascard.card import render_html
    from biascard.compose.article import Article
    from biascard.compose.composer import Composer
    from biascard.eval.runner import run_eval
    from biascard.model.model_dir import save

    model, tok = _tiny_model(tmp_path, max_chunks=1)
    save(model, tok, tmp_path / "model")
    c = _eval_config(model_dir=str(tmp_path / "model"), datasets=["babe"], systems=["model"], max_examples=40,
                     bootstrap={"n_boot": 20}, report={"sample_cards": 1, "plots": False})
    own = run_eval(c, tmp_path / "own")
    assert own["chunking"]["max_chunks"] == 1 and not own["chunking"]["overridden"]
    assert not any(n.startswith("chunking:") for n in own["notes"])
    assert "the first 1 chunk(s) per record (the model's config.json" in (tmp_path / "own" / "report.md").read_text()
    # the sample card is the server's card: the core Composer with the composed serve settings
    assert own["sample_cards"]["note"] is None and len(own["sample_cards"]["ids"]) == 1
    (rec,) = [r for r in _babe_test() if r["id"] == own["sample_cards"]["ids"][0]]
    (card,) = Composer.from_model_dir(tmp_path / "model").compose(
        [Article(text=rec["text"], id=rec["id"], source=rec.get("outlet"))])
    assert (tmp_path / "own" / "cards" / "card_1.html").read_text() == render_html(card)

    study = run_eval({**c, "predict": {**c["predict"], "max_chunks": 8}, "report": {"sample_cards": 0, "plots": False}},
                     tmp_path / "study")
    assert study["chunking"] == {**own["chunking"], "max_chunks": 8, "overridden": True}
    note = [n for n in study["notes"] if n.startswith("chunking:")]
    assert len(note) == 1 and "override" in note[0] and "the first 1 chunk(s)" in note[0]
    assert note[0] in (tmp_path / "study" / "report.md").read_text()

    def probs(run):
        rows = (tmp_path / run / "predictions.jsonl").read_text().splitlines()
        return {r["id"]: r["prob"] for r in map(json.loads, rows) if r["task"] == "babe/language_bias"}

    a, b = probs("own"), probs("study")
    assert a.keys() == b.keys()
    # BABE sentences over 32 tokens read more chunks in the study; the others read the same
    long_ids = [r["id"] for r in _babe_test() if r["id"] in a and len(tok(r["text"])["input_ids"]) > 32]
    assert long_ids and all(a[i] != pytest.approx(b[i], abs=1e-6) for i in long_ids)
    assert all(a[i] == pytest.approx(b[i], abs=1e-6) for i in a if i not in long_ids)


def test_eval_writes_metrics_with_cis_and_predictions(eval_run, smoke_model):
    for name in ("metrics.json", "predictions.jsonl", "report.md", "report.html"):
        assert (eval_run / name).is_file(), name
    m = json.loads((eval_run / "metrics.json").read_text())
    assert m["datasets"] == ["babe", "gvfc"]  # the model's training.json
    assert set(m["tasks"]) == {"babe/language_bias", "babe/biased_words", "babe/topic", "gvfc/gvfc_frame"}
    checked = 0
    for task, t in m["tasks"].items():
        assert set(t["systems"]) >= {"model", "majority"}, task
        for system, s in t["systems"].items():
            for name, v in s["metrics"].items():
                assert {"value", "lo", "hi", "n_boot"} <= set(v), (task, system, name)
                if v["lo"] is not None:
                    inside = v["lo"] - 1e-9 <= v["value"] <= v["hi"] + 1e-9
                    assert inside != v["point_outside"], (task, system, name, v)
                    # only metrics that are biased under resampling may leave their interval
                    assert inside or name in ("ece", "mAP"), (task, system, name, v)
                    checked += 1
    assert checked > 50
    lb = m["tasks"]["babe/language_bias"]
    assert lb["n"] <= 120 and {"roc_auc", "pr_auc", "ece", "macro_f1"} <= set(lb["systems"]["model"]["metrics"])
    assert "outlet" in lb["groups"] and lb["groups"]["outlet"]
    assert any("max_examples" in n or "subset" in n for n in m["notes"])
    rows = [json.loads(x) for x in (eval_run / "predictions.jsonl").read_text().splitlines()]
    expected = sum(t["n"] * len(t["systems"]) for t in m["tasks"].values())
    assert len(rows) == expected
    # the model's predictions in the file re-score to the reported number
    lb_rows = [r for r in rows if r["task"] == "babe/language_bias" and r["system"] == "model"]
    acc = np.mean([r["pred"] == r["gold"] for r in lb_rows])
    assert acc == pytest.approx(lb["systems"]["model"]["metrics"]["accuracy"]["value"])
    # by outlet, the model and the fitted baseline side by side, each re-scoring from the file
    outlet, entry = next((g, e) for g, e in lb["groups"]["outlet"].items() if "systems" in e)
    assert set(entry["systems"]) == set(lb["systems"]) - {"majority"} >= {"model", "tfidf_lr"}
    for system in entry["systems"]:
        got = [r["pred"] == r["gold"] for r in rows
               if r["task"] == "babe/language_bias" and r["system"] == system and r["outlet"] == outlet]
        assert len(got) == entry["n"]
        assert np.mean(got) == pytest.approx(entry["systems"][system]["accuracy"]["value"])
    assert "| model accuracy | TF-IDF + LR macro_f1 |" in (eval_run / "report.md").read_text()
    # predict.max_chunks is null: the model read the chunks its config.json names, and the report says so
    from biascard.model.model_dir import load_config

    cfg = load_config(smoke_model)
    own = cfg.max_chunks
    assert own is not None  # debug=smoke saves what its validation read
    assert m["chunking"] == {"max_length": cfg.max_length, "stride": cfg.stride, "max_chunks": own,
                             "model_max_chunks": own, "overridden": False}
    assert f"the first {own} chunk(s) per record (the model's config.json" in (eval_run / "report.md").read_text()


def test_report_html_shows_its_plots_in_chromium(eval_run, tmp_path):
    if chromium_path() is None:
        pytest.fail("Chromium is missing: `make browser` (apt-get install chromium) installs it")
    html = (eval_run / "report.html").read_text()
    pngs = sorted(p.relative_to(eval_run).as_posix() for p in (eval_run / "plots").glob("*.png"))
    # summary + a confusion matrix and a reliability diagram per classification task
    assert "plots/summary.png" in pngs and len(pngs) >= 5
    res = screenshot(eval_run / "report.html", tmp_path / "report.png")
    assert (tmp_path / "report.png").stat().st_size > 10_000
    srcs = [i["src"] for i in res["images"]]
    assert sorted(srcs) == pngs
    assert all(i["width"] > 0 for i in res["images"]), res["broken"]
    m = json.loads((eval_run / "metrics.json").read_text())
    cards = m["sample_cards"]
    if cards["note"]:  # the composer could not run: the report must say so
        assert cards["note"] in html
    else:
        assert len(cards["ids"]) == 2 and res["frames"] == 2
        assert len(list((eval_run / "cards").glob("*.html"))) == 2
    for a in ("0.804", "0.814", "0.588", "Spinde", "Krieger", "Jin"):
        assert a in html


def test_screenshot_script_fails_on_a_broken_image(tmp_path):
    if chromium_path() is None:
        pytest.fail("Chromium is missing: `make browser` installs it")
    page = tmp_path / "p.html"
    page.write_text('<html><body><img src="missing.png"></body></html>')
    proc = subprocess.run([sys.executable, "-m", "biascard.eval.screenshot", str(page), str(tmp_path / "p.png")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "1 broken" in proc.stdout


def _fake_outputs(task: str, quality: float, rng) -> Outputs:
    """One binary task's outputs whose 'model' is right on `quality` of 500 examples."""
    dataset, head = task.split("/")
    n = 500
    gold = np.random.default_rng(99).integers(0, 2, n)  # the same gold in every fake run
    right = rng.random(n) < quality
    prob = np.clip(np.where(right, gold, 1 - gold) * 0.7 + rng.random(n) * 0.3, 0, 1)
    return Outputs(task=task, head=head, type="binary", labels=["0", "1"],
                   ids=[f"r{i}" for i in range(n)], dataset=[dataset] * n, outlet=[None] * n, gold=gold, prob=prob)


def _fake_run(path: Path, quality: float, seed: int = 0, task: str = "fake/language_bias",
              more: dict[str, float] | None = None) -> Path:
    """An eval run dir of one binary task (plus `more`: {task: quality}) scored by a fake 'model'."""
    rng = np.random.default_rng(seed)
    outs = {t: _fake_outputs(t, q, rng) for t, q in {task: quality, **(more or {})}.items()}
    c = {"bootstrap": {"n_boot": 200, "seed": 0, "ci": 0.95}, "ece_bins": 10, "report": {"sample_cards": 0, "plots": False}}
    tasks = {t: {"dataset": o.dataset[0], "head": o.head, "type": "binary", "labels": ["0", "1"], "n": len(o.ids),
                 "n_train": 0, "primary": "macro_f1", "systems": score_systems({"model": o}, c)} for t, o in outs.items()}
    metrics = {"created": "test", "model_dir": None, "split": "test", "bootstrap": c["bootstrap"], "config": {},
               "command": "test", "notes": [], "datasets": sorted({o.dataset[0] for o in outs.values()}),
               "datasets_from": "test", "tasks": tasks}
    path.mkdir(parents=True)
    write_run(metrics, {t: {"model": o} for t, o in outs.items()}, c, path, None)
    return path


def test_compare_marks_clear_differences_only(tmp_path):
    weak, strong = _fake_run(tmp_path / "weak", 0.6, seed=1), _fake_run(tmp_path / "strong", 0.9, seed=2)
    res = compare(weak, strong, n_boot=300)
    rows = res["tasks"]["fake/language_bias"]
    assert rows["macro_f1"]["significant"] and rows["macro_f1"]["better"] == "B"
    assert rows["macro_f1"]["lo"] > 0 and rows["macro_f1"]["method"].startswith("paired bootstrap")
    assert rows["accuracy"]["delta"] == pytest.approx(rows["accuracy"]["b"] - rows["accuracy"]["a"])
    same = compare(weak, weak, n_boot=100)["tasks"]["fake/language_bias"]
    assert not any(r["significant"] for r in same.values())
    md = to_markdown(res)
    assert "| fake/language_bias | macro_f1 |" in md and "| * | B |" in md
    assert res["verdict"]["b_replaces_a"] and "B measures better and may replace A" in md
    # without saved predictions the CIs are compared instead
    (strong / "predictions.jsonl").unlink()
    unpaired = compare(weak, strong, n_boot=100)["tasks"]["fake/language_bias"]["macro_f1"]
    assert unpaired["method"].startswith("CI overlap") and unpaired["significant"]


def test_a_candidate_replaces_the_release_only_if_no_task_is_worse(tmp_path):
    """The release rule: a higher mean of primary metrics is not enough when one task is significantly worse."""
    released = _fake_run(tmp_path / "released", 0.6, seed=1, more={"logic/fallacy": 0.8})
    better = _fake_run(tmp_path / "better", 0.9, seed=2, more={"logic/fallacy": 0.8})
    mixed = _fake_run(tmp_path / "mixed", 0.95, seed=3, more={"logic/fallacy": 0.7})
    v = compare(released, better, n_boot=200)["verdict"]
    assert v["n_tasks"] == 2 and v["worse"] == [] and v["b_replaces_a"] and v["mean_gain"] > 0.1
    res = compare(released, mixed, n_boot=200)
    assert res["verdict"]["mean_gain"] > 0 and res["verdict"]["worse"] == ["logic/fallacy"]
    assert not res["verdict"]["b_replaces_a"] and "significantly worse in B: logic/fallacy" in to_markdown(res)


def test_report_shows_the_targets_this_run_measured(tmp_path):
    run = _fake_run(tmp_path / "logic", 0.9, seed=5, task="logic/fallacy")
    m = json.loads((run / "metrics.json").read_text())
    assert [t["task"] for t in m["targets"]] == ["logic/fallacy"]
    value = m["tasks"]["logic/fallacy"]["systems"]["model"]["metrics"]["macro_f1"]["value"]
    assert m["targets"][0]["gap"] == pytest.approx(value - 0.60)
    assert "## Default-model targets measured in this run" in (run / "report.md").read_text()
    assert "Default-model targets" in (run / "report.html").read_text()
    # a run without any target task shows no such section
    assert "Default-model targets" not in (_fake_run(tmp_path / "other", 0.9) / "report.md").read_text()


def test_compare_command_line(tmp_path):
    a, b = _fake_run(tmp_path / "a", 0.9, seed=3), _fake_run(tmp_path / "b", 0.6, seed=4)
    proc = _run(["-m", "biascard.eval", "compare", str(a), str(b), "--n-boot", "100", "--out", str(tmp_path / "cmp")],
                cwd=tmp_path)
    assert "| fake/language_bias | macro_f1 |" in proc.stdout and "| * | A |" in proc.stdout
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["tasks"]["fake/language_bias"]["macro_f1"]["better"] == "A"


def test_cv_trains_the_model_per_fold(smoke_model, tmp_path, cache_dir):
    """BABE k-fold CV with a debug=smoke model trained on each fold, beside the baselines."""
    _run(["-m", "biascard.eval", "cv.folds=3", "cv.dataset=babe", "cv.train_model=true",
          "cv.train_overrides=['debug=smoke']", "cv.heads=[language_bias]", "max_examples=150",
          "bootstrap.n_boot=50", "baselines.c_grid=[1.0]", f"hydra.run.dir={tmp_path}"], cwd=tmp_path)
    m = json.loads((tmp_path / "metrics.json").read_text())
    res = m["cv"]["results"]["babe/language_bias"]
    assert set(res["systems"]) == {"model", "majority", "tfidf_lr"}
    from biascard.data.prepare import prepare

    dsd = prepare("babe")
    n_labeled = sum(1 for s in dsd for lab in dsd[s]["labels"] if lab["language_bias"] is not None)
    for system, v in res["systems"].items():
        assert len(v["folds"]) == 3
        assert sum(f["n"] for f in v["folds"]) == n_labeled, system
    for f in range(3):
        assert (tmp_path / "cv" / f"fold_{f}" / "model" / "model.safetensors").is_file()
        # the fold's records, not the dataset's fixed splits, are what the fold model trained on
        sizes = m["cv"]["fold_sizes"][f]
        assert f"/{sizes['train']}, validation " in _data_message(tmp_path, f)
        assert _data_message(tmp_path, f).endswith(f"/{sizes['validation']}")
    from biascard.model.model_dir import load_config

    fold_chunks = load_config(tmp_path / "cv" / "fold_0" / "model").max_chunks
    assert m["cv"]["chunking"]["max_chunks"] == fold_chunks and not m["cv"]["chunking"]["overridden"]
    assert "3-fold cross-validation" in (tmp_path / "report.html").read_text()
    assert (tmp_path / "plots" / "cv.png").is_file()


def _data_message(run, fold: int) -> str:
    """The training log's line on what the fold model read ("data NAME: train a/b, validation c/d")."""
    lines = (run / "cv" / f"fold_{fold}" / "metrics.jsonl").read_text().splitlines()
    return next(r["message"] for r in map(json.loads, lines) if str(r.get("message", "")).startswith("data "))


def test_cv_fuses_each_fold_model_and_scores_both(smoke_model, tmp_path, cache_dir):
    """cv.fuse: each fold model gets fitted lexical models (fit on its train folds, weight chosen
    on its validation fold); the fused model is `model`, the trained one `model_unfused`, and the
    model is paired against both on the pooled out-of-fold examples."""
    _run(["-m", "biascard.eval", "cv.folds=3", "cv.dataset=gvfc", "cv.train_model=true",
          "cv.train_overrides=['debug=smoke']", "cv.heads=[gvfc_frame]", "max_examples=150",
          "cv.fuse.heads={gvfc_frame: 200}", "bootstrap.n_boot=50", "baselines.c_grid=[1.0]",
          f"hydra.run.dir={tmp_path}"], cwd=tmp_path)
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["cv"]["fuse"] == {"heads": {"gvfc_frame": [200, None]}, "C": 1.0}
    res = m["cv"]["results"]["gvfc/gvfc_frame"]
    assert set(res["systems"]) == {"model", "model_unfused", "majority", "tfidf_lr"}
    assert set(res["paired"]) == {"model_unfused", "majority", "tfidf_lr"}
    for f in range(3):
        record = json.loads((tmp_path / "cv" / f"fold_{f}" / "model_fused" / "fuse.json").read_text())
        assert record["heads"]["gvfc_frame"]["train_texts"] <= 150
    fused, unfused = (res["systems"][s]["pooled"]["macro_f1"]["value"] for s in ("model", "model_unfused"))
    d = res["paired"]["model_unfused"]["macro_f1"]
    assert d["delta"] == pytest.approx(fused - unfused) and d["b"] == pytest.approx(fused)
    report = (tmp_path / "report.md").read_text()
    assert "model before fusing" in report and "| gvfc/gvfc_frame | TF-IDF + LR | macro_f1 |" in report


def test_summary_plot_takes_a_point_outside_its_interval(tmp_path):
    """Bootstrap intervals of biased metrics (mAP, macro-F1 at fitted thresholds near 1) can sit
    beside their point; the plot drew negative error bars there and lost a 12-minute run's report."""
    from biascard.eval.report import plot_summary

    def m(value, lo, hi):
        return {"value": value, "lo": lo, "hi": hi, "n_boot": 100, "point_outside": not lo <= value <= hi}

    metrics = {"tasks": {"allsides/topic": {"primary": "macro_f1", "systems": {
        "model": {"metrics": {"macro_f1": m(0.99, 0.95, 0.98)}},
        "tfidf_lr": {"metrics": {"macro_f1": m(0.40, 0.42, 0.50)}}}}}}
    assert plot_summary(metrics, tmp_path / "summary.png")
    assert (tmp_path / "summary.png").stat().st_size > 0


def test_groups_score_every_fitted_system_even_without_a_model():
    """A baseline-only run (`systems=[tfidf_lr]`, the C sweep of `make leaning-gap`) gets its
    outlet table too; the majority class never does."""
    import dataclasses

    from biascard.eval.runner import group_breakdown

    rng = np.random.default_rng(0)
    base = _fake_outputs("fake/language_bias", 0.8, rng)
    outlets = ["A" if i % 2 else "B" for i in range(len(base.ids))]
    tfidf = dataclasses.replace(base, outlet=outlets)
    majority = dataclasses.replace(_fake_outputs("fake/language_bias", 0.5, rng), outlet=outlets)
    c = {"bootstrap": {"n_boot": 50, "seed": 0, "ci": 0.95}, "ece_bins": 10, "min_group_size": 20}
    groups = group_breakdown({"majority": majority, "tfidf_lr": tfidf}, "outlet", c)
    assert set(groups) == {"A", "B"} and all(set(g["systems"]) == {"tfidf_lr"} for g in groups.values())
    right = (tfidf.prob >= 0.5) == tfidf.gold
    assert groups["A"]["systems"]["tfidf_lr"]["accuracy"]["value"] == pytest.approx(right[1::2].mean())
    assert group_breakdown({"majority": majority}, "outlet", c) == {}
