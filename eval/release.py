"""The released model (issue 18): `biascard eval release export|card`.

  biascard eval release export --model TRAINED_DIR --out models/biascard-minilm
  biascard eval model=models/biascard-minilm hydra.run.dir=outputs/release/eval
  biascard eval release card models/biascard-minilm --eval outputs/release/eval [--study NAME=RUN ...]

`export` copies a trained, calibrated model dir with its weights in fp16 (at most 50 MB: the repo
keeps one release in git). `card` writes the dir's README.md, a Hugging Face model card, from the
evaluation of exactly these weights (the run's model_version must be the dir's): every head
against TF-IDF+LR by a paired bootstrap over the same test examples. Each `--study NAME=RUN` adds
the paired deltas of a run of the same weights read another way (predict.max_chunks,
predict.lexical, predict.precision). Then the dir's SHA256SUMS.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from biascard.model import model_dir as md

from .compare import compare
from .data_loading import DATA_NOTE
from .formatting import ci, fmt
from .runs import load_metrics
from .targets import load_targets
from .template_files import template_text

# what each licence of configs' datasets asks of someone who uses weights trained on them
LICENCE_MEANING = {  # (kind, meaning), matched in this order against sources.json's licence text
    "AGPL": ("copyleft (AGPL-3.0)", ("redistributing the data, or a service built on it, carries AGPL-3.0 terms; "
                                     "whether trained weights are a derivative work is not settled")),
    "BY-NC": ("non-commercial (CC BY-NC)", "no commercial use of the data, and by caution of weights trained on it"),
    "CC BY 4.0": ("attribution (CC BY 4.0)", "credit the TRAIL22 authors"),
    "Apache": ("permissive repository (Apache-2.0)",
               "the repository is Apache-2.0; the article texts stay the outlets' and the labels AllSides'"),
    "unclear": ("no licence stated", "research use as in the paper; ask the authors before anything else"),
}


# the lexical baseline a head is read against: TF-IDF+LR, or for span heads (which it cannot
# predict) the eval's word lexicon
BASELINES = ("tfidf_lr", "lexicon")


def head_rows(run: str | Path, n_boot: int = 1000) -> list[dict]:
    """Per task and metric: the model, its lexical baseline, and model minus baseline by paired bootstrap."""
    metrics = load_metrics(run)
    paired = {b: compare(run, run, system=b, b_system="model", n_boot=n_boot)["tasks"] for b in BASELINES}
    wanted = {(t["dataset"], t["head"]): t["metric"] for t in load_targets()}
    rows = []
    for task, entry in metrics["tasks"].items():
        names = [entry["primary"]] + [m for m in ("top1_macro_f1", wanted.get((entry["dataset"], entry["head"])))
                                      if m and m != entry["primary"] and (m != "top1_macro_f1" or entry["type"] == "multilabel")]
        systems = entry["systems"]
        base = next((b for b in BASELINES if b in systems), BASELINES[0])
        for name in dict.fromkeys(names):
            rows.append({"task": task, "head": entry["head"], "metric": name, "n": entry["n"], "baseline": base,
                         "model": ci(systems.get("model", {}).get("metrics", {}).get(name)),
                         "baseline_value": ci(systems.get(base, {}).get("metrics", {}).get(name)),
                         "delta": (paired[base].get(task) or {}).get(name)})
    return rows


def _delta_text(d: dict | None) -> tuple[str, str]:
    if not d or d.get("delta") is None:
        return "–", "no paired predictions"
    text = f"{d['delta']:+.3f} [{fmt(d['lo'])}, {fmt(d['hi'])}]" if d.get("lo") is not None else f"{d['delta']:+.3f}"
    verdict = {"B": "better", "A": "worse"}.get(d.get("better"), "level (CI spans 0)")
    return text, verdict


def head_table(rows: list[dict]) -> str:
    lines = ["| task | metric | n | model | TF-IDF+LR | model − TF-IDF (95% CI) | |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        text, verdict = _delta_text(r["delta"])
        base = r["baseline_value"] + (f" ({r['baseline']})" if r["baseline"] != BASELINES[0] else "")
        lines.append(f"| {r['task']} | {r['metric']} | {r['n']} | {r['model']} | {base} | {text} | {verdict} |")
    return "\n".join(lines)


def study_table(main_run: str | Path, study_run: str | Path, n_boot: int = 1000) -> str:
    """Paired deltas (study minus the released reading) on the primary metric of every shared task."""
    res = compare(main_run, study_run, n_boot=n_boot)
    primary = {t: e["primary"] for t, e in load_metrics(main_run)["tasks"].items()}
    lines = ["| task | metric | released | study | study − released (95% CI) | |", "|---|---|---|---|---|---|"]
    for task, rows in res["tasks"].items():
        for name, d in rows.items():
            if name == primary.get(task) or name == "top1_macro_f1":
                text, verdict = _delta_text(d)
                lines.append(f"| {task} | {name} | {fmt(d['a'])} | {fmt(d['b'])} | {text} | {verdict} |")
    return "\n".join(lines)


def _training(directory: Path) -> dict:
    """training.json, with the recipe's overrides and wall time from its run dir when it is here."""
    rec = md.read_training_record(directory) or {}
    run = Path(rec.get("run_dir") or "/nonexistent")
    overrides = run / ".hydra" / "overrides.yaml"
    rec["command"] = "biascard train " + " ".join(
        line[2:].strip() for line in overrides.read_text().splitlines() if line.startswith("- ")
    ) if overrides.is_file() else None
    log = run / "metrics.jsonl"
    elapsed = [json.loads(x).get("elapsed_s") for x in log.read_text().splitlines() if x.strip()] if log.is_file() else []
    rec["hours"] = round(max(e for e in elapsed if e is not None) / 3600, 2) if any(e is not None for e in elapsed) else None
    return rec


def _datasets(names: list[str]) -> list[dict]:
    from biascard.data.adapters import ADAPTERS
    from biascard.data.fetch import load_manifest

    src = load_manifest().get("datasets", {})
    out = []
    for name in names:
        entry = src.get(getattr(ADAPTERS.get(name), "folder", name)) or {}
        lic = entry.get("license", "unknown")
        kind, meaning = next((v for k, v in LICENCE_MEANING.items() if k.lower() in lic.lower()),
                             LICENCE_MEANING["unclear"])
        out.append({"name": name, "title": entry.get("title", name), "license": lic, "kind": kind, "meaning": meaning})
    return out


def render_card(directory: str | Path, eval_run: str | Path, studies: dict[str, str], n_boot: int = 1000) -> str:
    import jinja2

    directory = Path(directory)
    metrics = load_metrics(eval_run)
    version = md.weights_version(directory)
    if metrics.get("model_version") != version:
        raise ValueError(f"{eval_run}: evaluated weights {metrics.get('model_version')}, not {directory}'s {version}; "
                         f"evaluate the release itself: biascard eval model={directory}")
    if metrics.get("split") != "test" or (metrics.get("config") or {}).get("max_examples"):
        raise ValueError(f"{eval_run}: the card reports the whole test split (no max_examples)")
    config = json.loads((directory / md.CONFIG).read_text())
    training = _training(directory)
    datasets = _datasets(training.get("datasets") or [])
    groups: dict[str, list[str]] = {}
    for d in datasets:
        groups.setdefault(d["kind"], []).append(d["name"])
    rows = head_rows(eval_run, n_boot)
    reading = (f"the first {config['max_chunks']} windows of a record" if config.get("max_chunks")
               else "every window of a record: whole articles")
    env = jinja2.Environment(autoescape=False, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    return env.from_string(template_text("model_card.md.j2")).render(
        name=directory.name, version=version, config=config, heads=config.get("heads", {}),
        fitted=sorted(n for n, h in config.get("heads", {}).items() if h.get("fitted")),
        training=training, datasets=datasets, licence_groups=groups, reading=reading,
        size_mb=round((directory / md.WEIGHTS).stat().st_size / 1e6, 1),
        eval_command=metrics.get("command"), table=head_table(rows), worse=_worse(rows), n_boot=n_boot,
        studies=[_study(k, v, eval_run, metrics, n_boot) for k, v in studies.items()],
    ) + "\n"


def _worse(rows: list[dict]) -> list[str]:
    """The table's rows below their baseline with the interval excluding 0, as 'task metric'."""
    return [f"{r['task']} {r['metric']}" for r in rows if (r["delta"] or {}).get("better") == "A"]


def _study(name: str, run: str, eval_run, metrics: dict, n_boot: int) -> dict:
    study = load_metrics(run)
    return {"name": name, "command": study.get("command"), "table": study_table(eval_run, run, n_boot),
            # what the study changed: its notes that the released reading does not have. Its data
            # notes are left out: the same test rows, whose note names a cache path that can differ
            "notes": [n for n in study.get("notes") or []
                      if n not in (metrics.get("notes") or []) and not n.startswith(DATA_NOTE)]}


def _studies(pairs: list[str]) -> dict[str, str]:
    bad = [p for p in pairs if "=" not in p]
    if bad:
        raise SystemExit(f"biascard eval release card: --study wants NAME=RUN, got {bad[0]!r}")
    return dict(p.split("=", 1) for p in pairs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="biascard eval release", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="copy a trained model dir with fp16 weights")
    ex.add_argument("--model", required=True, help="the trained, calibrated model dir")
    ex.add_argument("--out", required=True, help=f"the release dir, e.g. models/{md.RELEASE_NAME}")
    cd = sub.add_parser("card", help="write the release's README.md from its evaluation")
    cd.add_argument("release", help="the release dir (after export)")
    cd.add_argument("--eval", required=True, help="eval run of the release on the whole test split")
    cd.add_argument("--study", action="append", default=[], metavar="NAME=RUN", help="a study run of the same weights")
    cd.add_argument("--n-boot", type=int, default=1000)
    args = ap.parse_args(argv)
    if args.command == "export":
        sizes = md.save_fp16(args.model, args.out)
        md.write_checksums(args.out)
        print(f"wrote {args.out}: {sum(sizes.values()) / 1e6:.1f} MB in {len(sizes)} files "
              f"(weights {sizes[md.WEIGHTS] / 1e6:.1f} MB fp16, {md.weights_version(args.out)})")
        return 0
    text = render_card(args.release, args.eval, _studies(args.study), args.n_boot)
    (Path(args.release) / md.MODEL_CARD).write_text(text, encoding="utf-8")
    md.write_checksums(args.release)
    print(f"wrote {Path(args.release) / md.MODEL_CARD}")
    return 0
