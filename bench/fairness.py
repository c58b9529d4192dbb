"""Latency of small requests with and without a client sending maximum-size requests.

Starts `biascard serve` on 127.0.0.1 (a subprocess; the model: `--model DIR`, else a tiny
random model built here). Phase "alone": `--clients` loops post one small article each to
/predictions/{model}. Phase "with big": the same, plus one loop posting KServe requests as
large as the server's limits allow (max_instances instances of up to max_chars characters,
filled up to max_request_tokens, under max_body_bytes). Each phase runs `--seconds`, then
stops; requests still in flight at the end are awaited. Reports p50/p95/max latency of the
small requests per phase side by side, and the big requests' count and latency.

  python bench/fairness.py [--model DIR] [--seconds 30] [--clients 4] [--rounds 1] [overrides ...]

Overrides are Hydra overrides of configs/serve.yaml for the server (e.g. max_batch_tokens=null).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from serve_throughput import Server  # noqa: E402

SMALL = ("The city council voted 7-2 on Tuesday to approve the budget. Supporters said it funds schools, "
         "roads and transit. Critics called it reckless. The mayor did not comment.")
SENTENCE = "Officials said the long debate over the regional budget continued late into the night. "
# heads of the tiny model: a document and a sentence head per kind, enough for a full card
TINY_HEADS = {
    "language_bias": ("binary", "sentence", ["0", "1"]),
    "false_dilemma": ("binary", "sentence", ["0", "1"]),
    "biased_words": ("token", "sentence", ["O", "BIASED"]),
    "card_language_bias": ("ordinal", "document", ["1", "2", "3", "4", "5"]),
    "topic": ("multilabel", "document", ["budget", "education", "elections", "health"]),
    "political_leaning": ("multiclass", "document", ["left", "center", "right"]),
}


def tiny_model(path: Path) -> Path:
    """A tiny random BiasCardModel (2 layers, hidden 32), as the tests build."""
    from biascard.model.heads import HeadSpec
    from biascard.model.model_dir import save as save_model_dir
    from biascard.model.modeling import BiasCardModel, load_tokenizer
    from biascard.model.tiny import make_tiny_encoder

    encoder = make_tiny_encoder(path.parent / "tiny-encoder")
    specs = {n: HeadSpec(n, t, lvl, labels) for n, (t, lvl, labels) in TINY_HEADS.items()}
    model = BiasCardModel.from_encoder(encoder, specs, max_length=64, stride=16)
    save_model_dir(model, load_tokenizer(encoder), path)
    return path


def big_payload(model_dir: Path, limits: dict) -> tuple[dict, int]:
    """The largest KServe request the limits allow, and its token count."""
    from biascard.model.modeling import load_tokenizer

    tok = load_tokenizer(model_dir)
    per_sentence = len(tok(SENTENCE, add_special_tokens=False, verbose=False)["input_ids"])
    sentences = limits["max_chars"] // len(SENTENCE)
    budget = limits.get("max_request_tokens") or per_sentence * sentences * limits["max_instances"]
    sentences = max(1, min(sentences, budget // per_sentence))  # one article may be over alone
    text = SENTENCE * sentences
    n = max(1, min(limits["max_instances"], budget // (per_sentence * sentences),
                   (limits["max_body_bytes"] - 64) // (len(text) + 16)))
    payload = {"instances": [text] * n}
    tokens = sum(len(tok(t, add_special_tokens=False, verbose=False)["input_ids"]) for t in payload["instances"])
    return payload, tokens


async def run_phase(url: str, name: str, clients: int, seconds: float, big: dict | None) -> dict:
    import httpx

    small_lat, big_lat, statuses = [], [], {}
    stop = time.monotonic() + seconds

    async def loop(client, path, kwargs, out):
        while time.monotonic() < stop:
            t = time.perf_counter()
            r = await client.post(path, **kwargs)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if r.status_code == 200:
                out.append(time.perf_counter() - t)

    limits = httpx.Limits(max_connections=clients + 1)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        loops = [loop(client, f"/predictions/{name}", {"json": {"text": SMALL}}, small_lat) for _ in range(clients)]
        if big is not None:
            body = json.dumps(big).encode()
            loops.append(loop(client, f"/v1/models/{name}:predict",
                              {"content": body, "headers": {"Content-Type": "application/json"}}, big_lat))
        await asyncio.gather(*loops)
    return {"small": small_lat, "big": big_lat, "statuses": statuses}


def row(label: str, r: dict) -> list:
    s, b = r["small"], r["big"]
    ms = lambda x: f"{1000 * x:.0f}"  # noqa: E731
    return [label, len(s), ms(common.percentile(s, 0.5)) if s else "-", ms(common.percentile(s, 0.95)) if s else "-",
            ms(max(s)) if s else "-", len(b), f"{common.median(b):.1f}" if b else "-",
            " ".join(f"{k}:{v}" for k, v in sorted(r["statuses"].items()))]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a model dir (default: a tiny random model built here)")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each phase")
    ap.add_argument("--clients", type=int, default=4, help="small-request clients")
    ap.add_argument("--rounds", type=int, default=1, help="alternations of the two phases")
    ap.add_argument("--no-save", action="store_true")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of configs/serve.yaml for the server")
    args = ap.parse_args(argv)

    from biascard.compose.settings import serve_config

    with common.report("fairness", argv, save=not args.no_save):
        work = Path(tempfile.mkdtemp(prefix="biascard-fairness-"))
        model_dir = Path(args.model) if args.model else tiny_model(work / "model")
        limits = serve_config(list(args.overrides))
        payload, tokens = big_payload(model_dir, limits)
        print(f"model: {model_dir if args.model else 'tiny random (2 layers, hidden 32, max_length 64)'}")
        print(f"big request: {len(payload['instances'])} instances of {len(payload['instances'][0])} characters, "
              f"{tokens} tokens (max_request_tokens={limits.get('max_request_tokens')}, "
              f"max_batch_tokens={limits.get('max_batch_tokens')}); small: {len(SMALL)} characters")
        server = Server("fairness", model_dir, list(args.overrides), work)
        try:
            name = server.wait()
            print(f"server: {' '.join(server.cmd[1:])}")
            asyncio.run(run_phase(server.url, name, 2, 1.0, None))  # warm-up
            results = {"alone": {"small": [], "big": [], "statuses": {}},
                       "with big": {"small": [], "big": [], "statuses": {}}}
            for _ in range(args.rounds):
                for label, big in (("alone", None), ("with big", payload)):
                    r = asyncio.run(run_phase(server.url, name, args.clients, args.seconds, big))
                    for k in ("small", "big"):
                        results[label][k] += r[k]
                    for k, v in r["statuses"].items():
                        results[label]["statuses"][k] = results[label]["statuses"].get(k, 0) + v
        finally:
            server.stop()
        header = ["phase", "small reqs", "p50 ms", "p95 ms", "max ms", "big reqs", "big median s", "statuses"]
        print(common.table([row(k, v) for k, v in results.items()], header))


if __name__ == "__main__":
    main()
