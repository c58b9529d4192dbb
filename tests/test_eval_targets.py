"""`biascard eval targets`: which run measured each default-model target, on its own protocol."""
import json

from biascard.eval.targets import load_targets, main, match


def _m(value, lo=None, hi=None):
    return {"value": value, "lo": lo, "hi": hi, "n_boot": 10, "point_outside": False}


def fixed_run(max_examples=None, split="test"):
    return {"split": split, "config": {"max_examples": max_examples}, "tasks": {
        "logic/fallacy": {"n": 300, "systems": {"model": {"metrics": {"macro_f1": _m(0.55, 0.5, 0.6)}},
                                                 "tfidf_lr": {"metrics": {"macro_f1": _m(0.49)}}}},
        # TRAIL22's target is the single-label protocol: top-1 macro-F1, not the thresholded macro-F1
        "sdg_trail22/sdg": {"n": 553, "systems": {"model": {"metrics": {"macro_f1": _m(0.6, 0.58, 0.62),
                                                                       "top1_macro_f1": _m(0.9, 0.88, 0.92)}}}},
    }}


def cv_run(folds=5, train_cap=None, with_model=True):
    systems = {"tfidf_lr": {"fold_mean": {"macro_f1": 0.72}, "fold_sd": {"macro_f1": 0.01},
                            "pooled": {"macro_f1": _m(0.72)}, "folds": [{"n": 10}] * folds}}
    if with_model:
        systems["model"] = {"fold_mean": {"macro_f1": 0.78}, "fold_sd": {"macro_f1": 0.02},
                            "pooled": {"macro_f1": _m(0.779, 0.76, 0.8)}, "folds": [{"n": 730}] * folds}
    return {"split": "test", "config": {}, "tasks": {}, "cv": {
        "dataset": "babe", "folds": folds, "train_cap": train_cap, "train_overrides": ["heads=babe"],
        "results": {"babe/language_bias": {"systems": systems}}}}


def by_task(rows):
    return {r["task"]: r for r in rows}


def test_targets_are_read_from_the_protocol_they_name():
    assert {t["task"] if "task" in t else f"{t['dataset']}/{t['head']}" for t in load_targets()} == {
        "babe/language_bias", "logic/fallacy", "gvfc/gvfc_frame", "sdg_trail22/sdg", "allsides/political_leaning"}
    rows = by_task(match([("fixed", fixed_run()), ("cv", cv_run())]))
    logic = rows["logic/fallacy"]
    assert logic["run"] == "fixed" and logic["status"] == "missed"
    assert abs(logic["gap"] - (0.55 - 0.60)) < 1e-12
    assert rows["sdg_trail22/sdg"]["status"] == "met"
    assert abs(rows["sdg_trail22/sdg"]["measured"]["value"] - 0.9) < 1e-12
    babe = rows["babe/language_bias"]
    assert babe["run"] == "cv" and abs(babe["measured"]["value"] - 0.78) < 1e-12
    assert babe["measured"]["trained_with"] == "heads=babe"
    # BABE's fixed test split is not its protocol, and nobody measured GVFC or AllSides
    assert rows["gvfc/gvfc_frame"]["status"] == "not measured"
    assert rows["allsides/political_leaning"]["measured"] is None


def test_subsets_smoke_caps_and_baseline_only_cv_do_not_count():
    rows = by_task(match([("capped", fixed_run(max_examples=100)), ("val", fixed_run(split="validation")),
                          ("cap", cv_run(train_cap=150)), ("k3", cv_run(folds=3)), ("nomodel", cv_run(with_model=False))]))
    assert all(r["status"] == "not measured" for r in rows.values()), rows


def test_runs_that_override_the_models_chunking_do_not_count():
    chunks = {"max_length": 256, "stride": 64, "max_chunks": 1, "model_max_chunks": 4}
    fixed, cv = fixed_run(), cv_run()
    fixed["chunking"] = {**chunks, "overridden": True}
    cv["cv"]["chunking"] = {**chunks, "overridden": True}
    rows = by_task(match([("fixed", fixed), ("cv", cv)]))
    assert all(r["status"] == "not measured" for r in rows.values()), rows
    # the model's own chunking (or a run from before chunking was recorded) counts
    fixed["chunking"] = cv["cv"]["chunking"] = {**chunks, "max_chunks": 4, "overridden": False}
    rows = by_task(match([("fixed", fixed), ("cv", cv)]))
    assert rows["logic/fallacy"]["run"] == "fixed" and rows["babe/language_bias"]["run"] == "cv"


def test_command_prints_the_table(tmp_path, capsys):
    for name, m in (("a", fixed_run()), ("b", cv_run())):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(m))
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "| `fallacy` | logic | macro-F1, official test split | 0.506 | 0.490 | 0.550 [0.500, 0.600] | ≥ 0.6 | -0.050 | missed |" in out
    assert "0.780 ± 0.020" in out and "not measured" in out
