"""`biascard eval ablations`: paired deltas between eval runs named in templates/ablations.json."""
import json

import numpy as np
import pytest

from biascard.eval import ablations
from biascard.eval.tasks import Outputs


def _run(root, rel, prob, gold, task="logic/fallacy"):
    out = Outputs(task=task, head="fallacy", type="multiclass", labels=["a", "b", "c"],
                  ids=[f"x{i}" for i in range(len(gold))], dataset=["logic"] * len(gold), outlet=[None] * len(gold),
                  gold=gold, prob=prob)
    d = root / rel
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"tasks": {task: {**out.meta(), "systems": {"model": {}}}}}))
    (d / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in out.rows("model")))
    return out


def test_paired_delta_not_run_rows_and_ensembles(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 120)
    right = np.eye(3)[gold] * 0.6 + 0.4 / 3
    noise = rng.dirichlet(np.ones(3), 120)
    _run(tmp_path, "a/eval", noise, gold)
    _run(tmp_path, "b/eval", right, gold)
    _run(tmp_path, "c/eval", noise[::-1].copy(), gold)
    specs = [
        {"name": "better", "task": "logic/fallacy", "metric": "macro_f1", "a": "a/eval", "a_label": "A",
         "b": "b/eval", "b_label": "B"},
        {"name": "missing", "task": "logic/fallacy", "metric": "macro_f1", "a": "a/eval", "a_label": "A",
         "b": "nope/eval", "b_label": "B"},
        {"name": "ens", "task": "logic/fallacy", "metric": "macro_f1", "a": "a/eval", "a_label": "A",
         "b": ["b/eval", "c/eval"], "b_label": "B+C"},
    ]
    monkeypatch.setattr(ablations, "load_ablations", lambda: specs)
    rows = [ablations.measure(tmp_path, s, n_boot=200) for s in specs]
    assert rows[0]["status"] == "measured" and rows[0]["value_b"] == 1.0 and rows[0]["significant"]
    assert rows[0]["lo"] > 0 and rows[0]["n"] == 120
    assert rows[1]["status"] == "not run" and rows[1]["missing"] == ["nope/eval"]
    # the ensemble averages B's (right) and C's (noise) probabilities: far better than noise alone
    assert rows[2]["value_b"] > rows[2]["value_a"] + 0.3 and rows[2]["value_b"] < 1.0
    md = ablations.table(rows)
    assert "not run" in md and "| better |" in md and "*" in md
    assert ablations.main([str(tmp_path), "--n-boot", "50"]) == 0
    assert ablations.main([str(tmp_path / "absent")]) == 2


def test_ensemble_refuses_different_label_sets(tmp_path):
    a = _run(tmp_path, "a/eval", np.full((4, 3), 1 / 3), np.array([0, 1, 2, 0]))
    b = Outputs(**{**{k: getattr(a, k) for k in ("task", "head", "type", "ids", "dataset", "outlet", "gold", "prob")},
                   "labels": ["a", "b", "d"]})
    with pytest.raises(ValueError, match="differ"):
        ablations.ensemble([a, b])


def test_template_names_existing_tasks_and_metrics():
    for ab in ablations.load_ablations():
        assert ab["metric"] in ("macro_f1", "accuracy") and "/" in ab["task"]
        assert ab["a_label"] and ab["b_label"]
