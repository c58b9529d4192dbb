"""Cards/s of `biascard predict` in one process against `--engine ray` with 1 and 2 actors,
side by side in one run, and the peak memory (RSS) of each actor.

The same JSONL of 500-700-word AllSides test articles is scored by each variant in
interleaved rounds (a fresh output each time); a variant's time is the command's wall time,
Ray start-up and model loads included, because that is what a user waits for. Cards/s per
variant is articles / median wall time, and the command's own cards/s line is kept too.
Memory: the peak RSS of every Ray MapWorker process the run started, sampled every 0.2 s
(Ray may start more worker processes than actors; each is listed).

  python bench/ray_scaling.py [--model DIR] [--articles 48] [--rounds 2]
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

BIASCARD = str(Path(sys.executable).parent / "biascard")
RATE = re.compile(r"\(([\d.]+) cards/s\)")


def actor_peaks(stop: threading.Event, peaks: dict[int, float]) -> None:
    """Peak RSS of the actors of this run: MapWorker processes started after it began (a
    previous variant's workers may still be shutting down)."""
    import psutil

    began = time.time()
    while not stop.is_set():
        for p in psutil.process_iter(["pid", "cmdline", "create_time"]):
            try:
                if "MapWorker" in " ".join(p.info["cmdline"] or []) and p.info["create_time"] >= began:
                    peaks[p.pid] = max(peaks.get(p.pid, 0.0), p.memory_info().rss / 2**20)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        stop.wait(0.2)


def run_variant(cmd: list[str], peaks: dict[int, float]) -> tuple[float, float]:
    """(wall seconds, the command's own cards/s) of one predict run."""
    stop = threading.Event()
    watcher = threading.Thread(target=actor_peaks, args=(stop, peaks), daemon=True)
    watcher.start()
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    stop.set()
    watcher.join()
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    m = RATE.search(r.stderr)
    return wall, float(m.group(1)) if m else float("nan")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a model dir (default: the released model)")
    ap.add_argument("--articles", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    with common.report("ray_scaling", argv, save=not args.no_save):
        work = Path(tempfile.mkdtemp(prefix="biascard-ray-bench-"))
        arts = common.articles(args.articles)
        src = work / "articles.jsonl"
        src.write_text("".join(json.dumps(a) + "\n" for a in arts))
        words = sum(len(a["text"].split()) for a in arts) / len(arts)
        print(f"{len(arts)} AllSides test articles, {words:.0f} words on average; batch size {args.batch_size}")
        model = ["--model", args.model] if args.model else []
        base = [BIASCARD, "predict", *model, "--input", str(src), "--overwrite", "--no-progress",
                "--batch-size", str(args.batch_size)]
        variants = {
            "one process (2 threads)": [*base, "--threads", "2"],
            "ray, 1 actor (2 CPUs)": [*base, "--engine", "ray", "--actors", "1", "--cpus", "2"],
            "ray, 2 actors (1 CPU each)": [*base, "--engine", "ray", "--actors", "2", "--cpus", "2"],
        }
        walls: dict[str, list[float]] = {k: [] for k in variants}
        rates: dict[str, list[float]] = {k: [] for k in variants}
        peaks: dict[str, dict[int, float]] = {k: {} for k in variants}
        names = list(variants)
        for r in range(args.rounds):
            for k in names[r % len(names):] + names[: r % len(names)]:
                out = work / f"out-{len(walls[k])}.jsonl"
                wall, rate = run_variant([*variants[k], "--output", str(out)], peaks[k])
                walls[k].append(wall)
                rates[k].append(rate)
                print(f"  round {r + 1}: {k}: {wall:.1f}s wall, {rate:.2f} cards/s by the command", flush=True)
        one = len(arts) / common.median(walls[names[0]])
        rows = []
        for k in names:
            cps = len(arts) / common.median(walls[k])
            mem = ", ".join(f"{v:.0f}" for v in sorted(peaks[k].values())) or "–"
            rows.append([k, f"{common.median(walls[k]):.1f}", f"{cps:.2f}", f"{cps / one:.2f}x",
                         f"{common.median(rates[k]):.2f}", mem])
        print(common.table(rows, ["variant", "wall s (median)", "cards/s (wall)", "vs one process",
                                  "cards/s (command's line)", "peak RSS per actor, MiB"]))


if __name__ == "__main__":
    main()
