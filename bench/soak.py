"""Soak: N clients for S seconds against the real server; errors by status, latency, memory.

Starts `biascard serve` on 127.0.0.1 (a subprocess, as bench/fairness.py does; the model:
`--model DIR`, else fairness.py's tiny random model). `--clients` loops post for `--seconds`
to /predictions/{model}, cycling through realistic inputs: serve/samples/article.txt (a
made-up 600-word article; every 4th request) and pseudo-articles of 1-30 consecutive BABE
sentences (final_labels_SG2.csv from the data dir, read by the BABE adapter's reader).
Requests still in flight at the end are awaited. Every second a sampler records the server's
RSS (psutil: the process and all its children) and the requests done so far. Every 50th card
is checked against the schema.

Reports requests by status (client-side exceptions by type), p50/p95/max latency, cards/s,
RSS over time (start, min, max, end, and the slope over the second half), and the server
log's error lines; writes bench/results/soak.txt and soak.json.

  python bench/soak.py [--model DIR] [--clients 8] [--seconds 60] [overrides ...]
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from fairness import tiny_model  # noqa: E402
from serve_throughput import Server  # noqa: E402

SAMPLE = common.REPO / "serve" / "samples" / "article.txt"
VALIDATE_EVERY = 50  # schema checks cost client CPU on the same 2 cores, so only a sample


def payloads(n: int = 200, seed: int = 0) -> list[dict]:
    """Request bodies: the sample article every 4th, else 1-30 consecutive BABE sentences."""
    from biascard.data.adapters.babe import FILE, read_babe
    from biascard.data.errors import Report
    from biascard.data.paths import dataset_dir

    title, _, body = SAMPLE.read_text(encoding="utf-8").partition("\n\n")
    sentences = [r["text"] for r in read_babe(dataset_dir("babe") / FILE, Report(stream=io.StringIO()))]
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 4 == 0:
            out.append({"title": title.strip(), "text": body.strip(), "id": f"sample-{i}"})
            continue
        k = rng.randint(1, 30)
        start = rng.randrange(len(sentences) - k)
        out.append({"text": " ".join(sentences[start:start + k]), "id": f"babe-{start}-{k}"})
    return out


def tree_state() -> str:
    """HEAD and the modified tracked files: others edit this tree while benches run."""
    import subprocess

    git = lambda *a: subprocess.run(["git", *a], cwd=common.REPO, capture_output=True, text=True, check=False).stdout  # noqa: E731
    dirty = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()]
    return f"git {git('rev-parse', '--short', 'HEAD').strip()}, {len(dirty)} modified tracked files" + \
        (f" ({', '.join(dirty[:12])}{', ...' if len(dirty) > 12 else ''})" if dirty else "")


def rss_mib(pid: int) -> float:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:  # a child that just ended
            pass
    return total / 2**20


async def soak(url: str, name: str, pid: int, bodies: list[dict], clients: int, seconds: float) -> dict:
    import httpx

    from biascard.card.contract import CardError, validate

    lat, statuses, samples = [], {}, []
    checked = invalid = 0
    t0 = time.monotonic()
    stop = t0 + seconds

    async def loop(c: int, client: httpx.AsyncClient):
        nonlocal checked, invalid
        k = c
        while time.monotonic() < stop:
            body = bodies[k % len(bodies)]
            k += clients
            t = time.perf_counter()
            try:
                r = await client.post(f"/predictions/{name}", json=body)
                key = str(r.status_code)
            except httpx.HTTPError as e:
                r, key = None, f"exception:{type(e).__name__}"
            lat.append((time.monotonic() - t0, time.perf_counter() - t, key))
            statuses[key] = statuses.get(key, 0) + 1
            if r is not None and r.status_code == 200 and statuses[key] % VALIDATE_EVERY == 1:
                checked += 1
                try:
                    validate(r.json())
                except (CardError, ValueError):
                    invalid += 1

    async def sampler():
        while time.monotonic() < stop + 1:
            errors = sum(v for k, v in statuses.items() if k != "200")
            samples.append({"t": round(time.monotonic() - t0, 1), "rss_mib": round(rss_mib(pid), 1),
                            "done": len(lat), "errors": errors, "load1": round(os.getloadavg()[0], 2)})
            await asyncio.sleep(1.0)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        sampling = asyncio.create_task(sampler())
        await asyncio.gather(*(loop(c, client) for c in range(clients)))
        wall = time.monotonic() - t0
        sampling.cancel()
    return {"latencies": lat, "statuses": statuses, "samples": samples, "wall_s": wall,
            "cards_checked": checked, "cards_invalid": invalid}


def slope_mib_per_min(samples: list[dict]) -> float:
    """Least-squares slope of RSS over the second half of the run (a leak keeps growing)."""
    pts = [(s["t"], s["rss_mib"]) for s in samples[len(samples) // 2:] if s["rss_mib"] == s["rss_mib"]]
    if len(pts) < 2:
        return float("nan")
    mt = sum(t for t, _ in pts) / len(pts)
    mr = sum(r for _, r in pts) / len(pts)
    den = sum((t - mt) ** 2 for t, _ in pts)
    return 60 * sum((t - mt) * (r - mr) for t, r in pts) / den if den else float("nan")


def log_errors(path: Path) -> list[str]:
    """Error lines of the server log; a traceback is kept whole, up to its exception line."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.is_file() else []
    out, i = [], 0
    while i < len(lines):
        if lines[i].startswith("Traceback"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or lines[j].startswith("Traceback")
                                      or not lines[j].strip() or lines[j].startswith("During handling")):
                j += 1
            out.append("\n".join(lines[i:j + 1]))
            i = j + 1
        elif "ERROR" in lines[i] or "Exception" in lines[i]:
            out.append(lines[i])
            i += 1
        else:
            i += 1
    return out


def summary(r: dict, baseline: float, log_lines: list[str]) -> dict:
    ok = [d for _, d, k in r["latencies"] if k == "200"]
    alls = [d for _, d, _ in r["latencies"]]
    rss = [s["rss_mib"] for s in r["samples"]]
    return {
        "requests": len(alls), "by_status": dict(sorted(r["statuses"].items())),
        "errors": sum(v for k, v in r["statuses"].items() if k != "200"),
        "cards_per_s": len(ok) / r["wall_s"], "wall_s": r["wall_s"],
        "p50_s": common.percentile(ok, 0.5), "p95_s": common.percentile(ok, 0.95), "max_s": max(ok, default=float("nan")),
        "rss_mib": {"before": baseline, "first": rss[0], "min": min(rss), "max": max(rss), "end": rss[-1],
                    "growth": rss[-1] - rss[0], "slope_second_half_per_min": slope_mib_per_min(r["samples"])},
        "cards_checked": r["cards_checked"], "cards_invalid": r["cards_invalid"],
        "server_log_error_lines": log_lines,
    }


def print_summary(s: dict, samples: list[dict], latencies: list) -> None:
    print(f"\nrequests: {s['requests']} in {s['wall_s']:.1f} s; by status: "
          + ", ".join(f"{k}: {v}" for k, v in s["by_status"].items()) + f"; errors (not 200): {s['errors']}")
    print(f"cards/s {s['cards_per_s']:.2f}; latency of 200s: p50 {1000 * s['p50_s']:.0f} ms, "
          f"p95 {1000 * s['p95_s']:.0f} ms, max {1000 * s['max_s']:.0f} ms")
    m = s["rss_mib"]
    print(f"server RSS (process + children, MiB): before the soak {m['before']:.1f}; first sample {m['first']:.1f}, "
          f"min {m['min']:.1f}, max {m['max']:.1f}, end {m['end']:.1f}; growth {m['growth']:+.1f}; "
          f"slope over the second half {m['slope_second_half_per_min']:+.2f} MiB/min")
    print(f"cards checked against the schema: {s['cards_checked']}, invalid: {s['cards_invalid']}")
    print(f"server log errors (tracebacks or ERROR lines): {len(s['server_log_error_lines'])}")
    for block in s["server_log_error_lines"][:5]:
        print(textwrap.indent(block[-3000:], "  | "))
    rows = []
    for i, smp in enumerate(samples):
        if i % 5 == 0 or i == len(samples) - 1:
            window = [d for t, d, k in latencies if smp["t"] - 5 <= t < smp["t"] and k == "200"]
            p95 = f"{1000 * common.percentile(window, 0.95):.0f}" if window else "-"
            rows.append([f"{smp['t']:.0f}", f"{smp['rss_mib']:.1f}", smp["done"], smp["errors"], p95, smp["load1"]])
    print("\nmemory over time (every 5th 1-second sample):")
    print(common.table(rows, ["t s", "RSS MiB", "requests done", "errors", "p95 ms of the last 5 s", "load 1 min"]))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a model dir or .mar (default: a tiny random model built here)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--tag", help="results go to bench/results/soak-<tag>.txt/.json")
    ap.add_argument("--no-save", action="store_true")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of configs/serve.yaml for the server")
    args = ap.parse_args(argv)
    name = f"soak-{args.tag}" if args.tag else "soak"

    with common.report(name, argv, save=not args.no_save, script="soak"):
        work = Path(tempfile.mkdtemp(prefix="biascard-soak-"))
        model_dir = Path(args.model) if args.model else tiny_model(work / "model")
        bodies = payloads()
        print(f"model: {model_dir if args.model else 'tiny random (2 layers, hidden 32, max_length 64)'}")
        print(f"tree: {tree_state()}")
        print(f"inputs: {len(bodies)} bodies ({sum(1 for b in bodies if 'title' in b)} sample articles of "
              f"{len(bodies[0]['text'])} characters, the rest 1-30 BABE sentences, "
              f"{int(common.median([len(b['text']) for b in bodies if 'title' not in b]))} characters median)")
        server = Server("soak", model_dir, list(args.overrides), work)
        try:
            model_name = server.wait()
            print(f"server: {' '.join(server.cmd[1:])} (pid {server.proc.pid})")
            asyncio.run(soak(server.url, model_name, server.proc.pid, bodies[:8], 2, 2.0))  # warm-up
            baseline = rss_mib(server.proc.pid)
            print(f"{args.clients} clients for {args.seconds:.0f} s ...", flush=True)
            r = asyncio.run(soak(server.url, model_name, server.proc.pid, bodies, args.clients, args.seconds))
            alive = server.proc.poll() is None
        finally:
            server.stop()
        s = summary(r, baseline, log_errors(work / "serve-soak.log"))
        shutil.rmtree(work, ignore_errors=True)
        s["server_alive_at_end"] = alive
        print(f"server still running at the end: {alive}")
        print_summary(s, r["samples"], r["latencies"])
    if not args.no_save:
        out = {"summary": s, "samples": r["samples"], "clients": args.clients, "seconds": args.seconds,
               "model": str(args.model or "tiny")}
        (common.RESULTS / f"{name}.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
