"""Across all eight datasets: every head of the contract is fed, and the CLI describes them."""
import pytest

from biascard.cli import main
from biascard.data.errors import Report
from biascard.data.prepare import head_stats, prepare

# The table: head -> datasets that must feed it.
FED_BY = {
    "language_bias": ["babe"],
    "language_bias_crowd": ["mbic"],
    "biased_words": ["babe"],
    "informational_bias": ["basil"],
    "lexical_bias": ["basil"],
    "framing": ["ukraine"],
    "subjectivity": ["ukraine"],
    "hidden_assumptions": ["ukraine"],
    "gvfc_frame": ["gvfc"],
    "fallacy": ["logic"],
    "false_dilemma": ["logic"],
    "sdg": ["sdg_trail22"],
    "political_leaning": ["allsides"],
    "topic": ["allsides", "babe"],
}
DATASETS = sorted({d for ds in FED_BY.values() for d in ds})


@pytest.fixture(scope="module")
def prepared(cache_dir):
    return {name: prepare(name, cache_dir=cache_dir) for name in DATASETS}


@pytest.mark.parametrize("head", sorted(FED_BY))
def test_every_head_is_fed_in_every_split(prepared, head):
    for name in FED_BY[head]:
        stats = head_stats(prepared[name])
        assert head in stats, f"{name} does not feed {head}"
        for split in ("train", "validation", "test"):
            assert sum(stats[head].get(split, {}).values()) > 0, f"{name}/{split} has no {head} labels"


def test_cli_stats_prints_every_dataset(capsys, cache_dir):
    assert main(["data", "stats", *DATASETS]) == 0
    out = capsys.readouterr().out
    for name in DATASETS:
        assert name in out
    for head in FED_BY:
        assert head in out


def test_cli_list_names_all_adapters(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in [*DATASETS, "mbic", "cards"]:
        assert name in out


def test_unknown_dataset_is_a_clear_error(capsys):
    assert main(["data", "prepare", "nope"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err


def test_a_cache_hit_still_reports_skipped_rows(tmp_path, capsys):
    first, second = Report(), Report()
    prepare("basil", cache_dir=tmp_path, report=first)
    assert len(first.bad) == 8  # BASIL's 8 empty sentences
    capsys.readouterr()
    prepare("basil", cache_dir=tmp_path, report=second)
    assert [str(b) for b in second.bad] == [str(b) for b in first.bad]
    # the caller holds the report, so nothing is printed for it to capture
    assert "8 bad row(s) skipped (cached build" in second.note("basil")
    assert capsys.readouterr().out == ""
    # without a report to return it to, prepare prints the summary
    prepare("basil", cache_dir=tmp_path)
    assert "8 bad row(s) skipped (cached build" in capsys.readouterr().err


def test_prepare_report_returns_the_report(tmp_path):
    from biascard.data.prepare import prepare_report

    dsd, report = prepare_report("basil", cache_dir=tmp_path)
    assert len(report.bad) == 8 and set(dsd) == {"train", "validation", "test"}


@pytest.mark.parametrize("name", ["logic", "gvfc"])
def test_refold_recuts_train_and_validation_and_keeps_test(prepared, name):
    from biascard.data.errors import DataError
    from biascard.data.splits import connected_groups, fold_assignment, refold

    dsd = prepared[name]
    pool = list(dsd["train"]["id"]) + list(dsd["validation"]["id"])
    vals = []
    for fold in range(3):
        out = refold(dsd, name, 3, fold)
        assert list(out["test"]["id"]) == list(dsd["test"]["id"])
        assert sorted(list(out["train"]["id"]) + list(out["validation"]["id"])) == sorted(pool)
        vals.append(set(out["validation"]["id"]))
        recs = out["train"].to_list() + out["validation"].to_list()
        comp = connected_groups(recs)  # no group or text on both sides of the cut
        n = len(out["train"])
        assert not set(comp[:n]) & set(comp[n:])
    assert sum(map(len, vals)) == len(set().union(*vals))  # the validation folds are disjoint
    recs = dsd["train"].to_list() + dsd["validation"].to_list()
    folds, _ = fold_assignment(name, recs, 3, None)
    assert {r["id"] for r, f in zip(recs, folds) if f is not None} <= set().union(*vals)
    with pytest.raises(DataError, match=f"{name}: refold needs"):
        refold(dsd, name, 3, 3)
