"""Shared by the bench scripts: machine header, load average, interleaved timing, the
AllSides test articles, the default (untrained) model dir, the output tee and the
encoder's analytic FLOP count.

Every script compares variants measured side by side in one run (interleaved rounds,
medians), because the 2 cores are shared and absolute times drift with the load.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

for _k, _v in {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ.setdefault(_k, _v)

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
DEFAULT_MODEL_CACHE = Path(tempfile.gettempdir()) / "biascard-bench" / "minilm-default-untrained"


# ---------------------------------------------------------------- machine and load


def cpu_info() -> dict:
    info = {"model_name": platform.processor() or "?", "family": "?", "model": "?", "flags": set()}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "model name":
                info["model_name"] = value
            elif key == "cpu family":
                info["family"] = value
            elif key == "model":
                info["model"] = value
            elif key == "flags":
                info["flags"] = set(value.split())
                break
    return info


def native_bf16() -> bool:
    import torch

    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def machine_line() -> str:
    import torch

    c = cpu_info()
    wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8"]
    have = [f for f in wanted if f in c["flags"]]
    return (f"CPU {c['model_name']} (family {c['family']} model {c['model']}), {os.cpu_count()} logical cores, "
            f"flags: {' '.join(have) or '-'}; torch {torch.__version__} capability "
            f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {native_bf16()}, "
            f"intra-op threads {torch.get_num_threads()}")


def load_line(when: str) -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average ({when}): {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


@contextlib.contextmanager
def report(name: str, argv: list[str] | None = None, save: bool = True, script: str | None = None):
    """Header and footer with date, machine and load; stdout also goes to bench/results/<name>.txt."""
    out = None
    if save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = open(RESULTS / f"{name}.txt", "w", encoding="utf-8")
    real = sys.stdout

    class Tee:
        def write(self, s):
            real.write(s)
            if out:
                out.write(s)
            return len(s)

        def flush(self):
            real.flush()
            if out:
                out.flush()

        def isatty(self):  # no colour codes in the saved file
            return False

        def __getattr__(self, name):
            return getattr(real, name)

    sys.stdout = Tee()
    try:
        cmd = " ".join(["python", f"bench/{script or name}.py", *(argv if argv is not None else sys.argv[1:])])
        print(f"# {cmd}")
        print(f"# {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
        print(f"# {machine_line()}")
        print(f"# {load_line('start')}")
        yield
        print(f"# {load_line('end')}")
    finally:
        sys.stdout = real
        if out:
            out.close()


# ---------------------------------------------------------------- timing


def interleaved(variants: dict[str, Callable[[], object]], rounds: int, warmup: int = 1,
                log: bool = True) -> dict[str, list[float]]:
    """Seconds per call of each variant; each round runs every variant once, in a rotated
    order, so a load change hits all variants alike."""
    names = list(variants)
    for _ in range(warmup):
        for n in names:
            variants[n]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            t = time.perf_counter()
            variants[n]()
            times[n].append(time.perf_counter() - t)
        if log:
            print(f"  round {r + 1}/{rounds}: " + ", ".join(f"{n} {times[n][-1]:.2f}s" for n in names)
                  + f"  [{load_line('now').split(': ')[1]}]", flush=True)
    return times


def median(xs) -> float:
    return float(statistics.median(xs))


def percentile(xs, q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def table(rows: list[list], header: list[str]) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in cells[1:]])


def encoder_flops(cfg, length: int) -> float:
    """Forward FLOPs of one sequence: 2 per multiply-add of every Linear, plus QK^T and AV."""
    h, i, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    linear = 2 * length * (4 * h * h + 2 * h * i)  # Q, K, V, output projections; FFN up and down
    attention = 2 * 2 * length * length * h  # QK^T and AV over all heads
    return float(n * (linear + attention))


# ---------------------------------------------------------------- data and model


def leaning_heads() -> dict:
    """The AllSides leaning head alone: what `encode` needs to chunk articles without labels."""
    from biascard.model.heads import HeadSpec

    return {"political_leaning": HeadSpec("political_leaning", "multiclass", "document", ["left", "center", "right"])}


def articles(n: int, lo: int = 500, hi: int = 700, seed: int = 0) -> list[dict]:
    """`n` AllSides test articles whose body has lo..hi words: {id, title, text}.
    AllSides records read "title\\n\\nbody"; the title goes in its own field, as a client sends it."""

    from biascard.data.prepare import prepare

    test = prepare("allsides")["test"]
    picked = []
    for rec in test:
        title, sep, body = rec["text"].partition("\n\n")
        if not sep:
            title, body = None, rec["text"]
        if lo <= len(body.split()) <= hi:
            picked.append({"id": rec["id"], "title": title, "text": body})
    if len(picked) < n:
        raise ValueError(f"only {len(picked)} AllSides test articles have {lo}-{hi} words; asked for {n}")
    random.Random(seed).shuffle(picked)
    return picked[:n]


def default_model_dir(path: Path = DEFAULT_MODEL_CACHE) -> Path:
    """An untrained MiniLM BiasCardModel with every default head that has training labels
    (label sets resolved from configs/data/all.yaml's datasets); weights do not change speed.
    Built once into a temp dir and reused."""
    if (path / "model.safetensors").is_file():
        return path
    import shutil

    import torch
    from omegaconf import OmegaConf

    from biascard.data.prepare import prepare
    from biascard.model.heads import load_heads, resolve_labels
    from biascard.model.modeling import BiasCardModel, load_tokenizer
    from biascard.model.model_dir import save as save_model_dir

    heads = load_heads(OmegaConf.load(REPO / "configs" / "heads" / "default.yaml"))
    model_cfg = OmegaConf.load(REPO / "configs" / "model" / "minilm.yaml")
    names = list(OmegaConf.load(REPO / "configs" / "data" / "all.yaml").datasets)
    dsds = [prepare(n) for n in names]
    labeled: set[str] = set()
    for d in dsds:
        for row in d["train"].data.column("labels").to_pylist():
            labeled.update(k for k, v in row.items() if v is not None)
    heads = {k: v for k, v in heads.items() if k in labeled}
    heads = resolve_labels(heads, [{"train": d["train"], "validation": d["validation"]} for d in dsds])
    torch.manual_seed(0)
    model = BiasCardModel.from_encoder("minilm", heads, max_length=int(model_cfg.max_length),
                                       stride=int(model_cfg.stride))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=path.parent))
    save_model_dir(model, load_tokenizer("minilm"), tmp)
    try:
        os.replace(tmp, path)
    except OSError:  # another script built it first
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def article_objects(arts: list[dict]):
    from biascard.compose.article import Article

    return [Article(text=a["text"], title=a["title"], id=a["id"]) for a in arts]


def make_composer(model, tokenizer, runtime: dict | None = None, settings: dict | None = None):
    """serve's Composer with the shipped settings, `runtime` flags overriding composer.runtime."""
    from biascard.compose.composer import Composer

    return Composer(model, tokenizer, [settings, {"runtime": dict(runtime or {})}])


def encoder_work(composer, arts) -> dict[str, tuple[int, int, int, float]]:
    """Per pass: (texts, batches, real tokens, padded tokens, encoder FLOPs) the composer's
    batching gives for `arts` (Article objects). Deterministic, unlike a timing."""
    from biascard.compose.runtime import batches
    from biascard.compose.sentences import split_sentences
    from biascard.model.features import encode

    config = composer.model.config
    cfg = config.encoder_config()
    max_length, stride = int(config.max_length), int(config.stride)
    out = {}
    sentences = [s.text for a in arts for s in split_sentences(a.text)]
    passes = [("sentence pass", sentences, None),
              # the document pass reads the model's max_chunks chunks per article, as the composer does
              ("document pass", [composer.document_text(a) for a in arts], composer.max_chunks)]
    if getattr(composer, "one_pass", False):  # one pass: the titles ride with the sentences
        passes = [("sentence pass", sentences + [a.title for a in arts if a.title], None)]
    for name, texts, chunks in passes:
        groups = batches(composer.tokenizer, texts, composer.runtime, max_length, stride,
                         composer.settings.get("sentence_batch_size"))
        real = padded = 0
        flops = 0.0
        for g in groups:
            b = encode([{"text": texts[i]} for i in g], composer.tokenizer, composer.specs, max_length, stride,
                       with_labels=False, max_chunks=chunks)
            real += int(b["attention_mask"].sum())
            padded += b["input_ids"].numel()
            flops += b["input_ids"].shape[0] * encoder_flops(cfg, b["input_ids"].shape[1])
        out[name] = (len(texts), len(groups), real, padded, flops)
    return out
