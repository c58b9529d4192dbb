"""The composer's aggregation choices against article-level labels (biascard.eval.composer_ablation)."""
import numpy as np
import pytest

from biascard.eval.composer_ablation import ARTICLE_RATIOS, articles, auroc, main, run, spearman, to_markdown

from test_serve_support import tiny_model  # noqa: F401 - fixture


def test_rank_statistics_and_their_intervals():
    x = np.arange(40, dtype=float)
    s = spearman(x, x ** 2, n_boot=200)
    assert s["value"] == pytest.approx(1.0) and s["lo"] == pytest.approx(1.0) and s["n"] == 40
    assert spearman(x, -x, n_boot=50)["value"] == pytest.approx(-1.0)
    assert np.isnan(spearman(x, np.ones(40), n_boot=50)["value"])  # a constant ratio has no ranking
    a = auroc(np.r_[np.zeros(20), np.ones(20)], np.r_[np.zeros(20), np.ones(20)].astype(int), n_boot=100)
    assert a["value"] == 1.0 and a["lo"] == 1.0


def test_articles_group_by_doc_and_drop_short_ones():
    recs = [{"doc_id": "a", "text": f"s{i}"} for i in range(6)] + [{"doc_id": "b", "text": "x"}, {"doc_id": None, "text": "y"}]
    arts = articles(recs, min_sentences=5)
    assert list(arts) == ["a"] and [r["text"] for r in arts["a"]] == [f"s{i}" for i in range(6)]


def test_ablation_runs_on_the_real_articles(tiny_model, cache_dir, tmp_path, capsys):
    res = run(tiny_model, n_boot=20, log=lambda m: None)
    # the tiny model has language_bias/informational_bias sentence heads, no framing one
    got = {(r["dataset"], r["concept"]) for r in res["ratios"]}
    assert ("basil", "language_bias") in got and ("basil", "bias_by_omission") in got
    assert ("ukraine", "framing_bias") not in got
    variants = {r["variant"] for r in res["ratios"] if r["dataset"] == "basil"}
    assert {"share >= 0.5", "top-3 mean", "mean", "card score (1-5)"} <= variants
    n = {r["spearman"]["n"] for r in res["ratios"] if r["dataset"] == "basil"}
    assert len(n) == 1 and n.pop() > 50  # BASIL validation+test articles
    assert res["stance"] and all(0 <= r["auroc"]["value"] <= 1 for r in res["stance"] if np.isfinite(r["auroc"]["value"]))
    assert "| basil | language_bias |" in to_markdown(res)
    assert set(ARTICLE_RATIOS) == {"basil", "ukraine"}
    assert main(["--model", str(tiny_model), "--n-boot", "10", "--splits", "test", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "composer_ablation.md").read_text().startswith("Model ")
    assert main(["--model", str(tiny_model), "--splits", "nosuchsplit"]) == 2
    assert "nosuchsplit" in capsys.readouterr().err
