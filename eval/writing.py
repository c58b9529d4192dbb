"""What an eval run writes into its dir: predictions.jsonl, the report (plots, sample cards)
and metrics.json."""
from __future__ import annotations

import json
from pathlib import Path

from . import report, targets
from .data_loading import load_dataset_dict
from .tasks import Outputs, dumps


def _by_head(metrics: dict) -> dict:
    """head -> {dataset: task} for heads scored on more than one dataset."""
    heads: dict[str, dict[str, str]] = {}
    for task, t in metrics["tasks"].items():
        heads.setdefault(t["head"], {})[t["dataset"]] = task
    return {h: d for h, d in heads.items() if len(d) > 1}


def write_run(metrics: dict, outputs_all: dict[str, dict[str, Outputs]], c: dict, out_dir: Path, model_dir) -> dict:
    """Write predictions.jsonl, the report (plots, sample cards) and metrics.json of a run."""
    metrics["by_head"] = _by_head(metrics)
    metrics["anchors"] = report.match_anchors(metrics)
    metrics["targets"] = [r for r in targets.match([("this run", metrics)]) if r["measured"]]
    with open(out_dir / "predictions.jsonl", "w", encoding="utf-8") as fh:
        for task, outs in outputs_all.items():
            for system, o in outs.items():
                for row in o.rows(system):
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    for task, outs in outputs_all.items():
        first = next(iter(outs.values()), None)
        if first is not None:
            metrics["tasks"][task]["meta"] = first.meta()
    cards = None
    n_cards = int((c.get("report") or {}).get("sample_cards") or 0)
    if n_cards > 0 and model_dir and metrics["tasks"]:
        cards = sample_cards(model_dir, metrics, c, n_cards)
    plots = bool((c.get("report") or {}).get("plots", True))
    report.write_report(metrics, outputs_all, out_dir, plots=plots, sample_cards=cards, ece_bins=int(c["ece_bins"]))
    (out_dir / "metrics.json").write_text(dumps(metrics), encoding="utf-8")
    print(f"[eval] report: {out_dir / 'report.html'}", flush=True)
    return metrics


def sample_cards(model_dir, metrics: dict, c: dict, n: int) -> dict:
    """Cards for a few test articles, as the server composes them: the core Composer with the
    composed serve settings (configs/serve.yaml, then configs/local/serve.yaml), reading the
    chunks the model's config.json names. A failure becomes a note in the report, never a gap."""
    from biascard.compose.article import Article
    from biascard.compose.composer import Composer
    from biascard.compose.settings import composer_settings

    picked = _pick_articles(metrics, c, n)
    if not picked:
        return {"cards": [], "note": "sample cards skipped: no test record to show"}
    try:
        composer = Composer.from_model_dir(model_dir, composer_settings())
        cards = composer.compose([Article(text=r["text"], id=r["id"], source=r.get("outlet")) for r in picked])
    except Exception as e:  # noqa: BLE001 - a failing composer is reported, not raised
        return {"cards": [], "note": f"sample cards skipped: composing failed: {type(e).__name__}: {e}"}
    return {
        "cards": [{"record": {k: r[k] for k in ("id", "dataset", "unit", "outlet", "text")}, "card": card}
                  for r, card in zip(picked, cards)],
        "note": None,
    }


def _pick_articles(metrics: dict, c: dict, n: int) -> list[dict]:
    """Whole articles first (the card's unit), then the longest other test texts; deterministic."""
    notes: list[str] = []
    pool = []
    for name in metrics.get("datasets") or []:
        dsd = load_dataset_dict(name, c, notes)
        pool.extend(dsd[c.get("split", "test")].to_list())
    pool.sort(key=lambda r: (r["unit"] != "article", -len(r["text"]), r["id"]))
    return pool[:n]
