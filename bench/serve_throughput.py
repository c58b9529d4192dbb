"""Cards/s and p50/p95 latency through the real server (`biascard-serve`, uvicorn on
127.0.0.1, started here) with 1 and with 8 concurrent clients, on 500-700-word AllSides
test articles posted as JSON to /predictions/{model}.

Phases (1 client, 8 clients; per server variant) alternate in interleaved rounds;
cards/s is the median over rounds, latency percentiles pool every request of a phase.
`--variant NAME=OVERRIDE[,OVERRIDE...]` starts one more server per variant (Hydra overrides
of configs/serve.yaml, e.g. `int8=composer.runtime.precision=int8`); idle servers take no CPU,
so the variants are compared side by side in the same run. A variant's `model_path=DIR`
serves another model dir (e.g. the one-pass model of bench/one_pass_model.py).

  python bench/serve_throughput.py [--model DIR] [--rounds 3] [--requests-1 6] [--per-client 2]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, label: str, model_dir: Path, overrides: list[str], log_dir: Path):
        self.label, self.port = label, free_port()
        model_dir = next((o.split("=", 1)[1] for o in overrides if o.startswith("model_path=")), model_dir)
        overrides = [o for o in overrides if not o.startswith("model_path=")]
        self.url = f"http://127.0.0.1:{self.port}"
        exe = Path(sys.executable).with_name("biascard-serve")
        cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "biascard.serve"]),
               f"model_path={model_dir}", f"port={self.port}", "host=127.0.0.1", "log_level=warning", *overrides]
        self.cmd = cmd
        self.log = open(log_dir / f"serve-{label}.log", "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self, timeout: float = 180) -> str:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server {self.label} exited: see {self.log.name}")
            try:
                r = httpx.get(f"{self.url}/models", timeout=2)
                if r.status_code == 200:
                    return r.json()["models"][0]["modelName"]
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"server {self.label} did not start in {timeout}s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: only this server's processes
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


async def phase(url: str, name: str, arts: list[dict], clients: int, per_client: int, start: int) -> tuple[float, list[float]]:
    """(wall seconds, per-request latencies) of `clients` loops posting `per_client` articles each."""
    import httpx

    latencies: list[float] = []

    async def loop(c: int, client: httpx.AsyncClient):
        for k in range(per_client):
            a = arts[(start + c * per_client + k) % len(arts)]
            t = time.perf_counter()
            r = await client.post(f"/predictions/{name}", json={"text": a["text"], "title": a["title"], "id": a["id"]})
            latencies.append(time.perf_counter() - t)
            if r.status_code != 200:
                raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        t = time.perf_counter()
        await asyncio.gather(*(loop(c, client) for c in range(clients)))
        return time.perf_counter() - t, latencies


def batch_counts(url: str) -> tuple[float, float]:
    """(articles, batches) composed so far, from the server's /metrics."""
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=10).text
    s = re.search(r"^biascard_batch_size_sum (\S+)", text, re.M)
    n = re.search(r"^biascard_batch_size_count (\S+)", text, re.M)
    return (float(s.group(1)), float(n.group(1))) if s and n else (float("nan"), float("nan"))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a model dir (default: an untrained MiniLM model with the default heads)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests-1", type=int, default=6, help="requests of the 1-client phase per round")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--per-client", type=int, default=2, help="requests per client in the concurrent phase")
    ap.add_argument("--articles", type=int, default=24)
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=OVERRIDE[,OVERRIDE]")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)

    with common.report("serve_throughput", argv, save=not args.no_save):
        model_dir = Path(args.model) if args.model else common.default_model_dir()
        arts = common.articles(args.articles)
        words = sum(len(a["text"].split()) for a in arts) / len(arts)
        print(f"model: {model_dir}; {len(arts)} AllSides test articles, {words:.0f} words on average")
        variants = {"default": []}
        for v in args.variant:
            label, _, overrides = v.partition("=")
            variants[label] = [o for o in overrides.split(",") if o]
        log_dir = Path(tempfile.mkdtemp(prefix="biascard-serve-bench-"))
        print(f"server logs: {log_dir}")
        servers = {k: Server(k, model_dir, o, log_dir) for k, o in variants.items()}
        try:
            names = {k: s.wait() for k, s in servers.items()}
            for k, s in servers.items():
                print(f"server {k}: {' '.join(s.cmd[1:])}")
            phases = {}
            for k in servers:
                phases[f"{k}, 1 client"] = (k, 1, args.requests_1)
                phases[f"{k}, {args.clients} clients"] = (k, args.clients, args.per_client)
            for k, s in servers.items():  # warm-up: first requests pay for lazy inits
                asyncio.run(phase(s.url, names[k], arts, 2, 1, 0))
            walls = {p: [] for p in phases}
            lats = {p: [] for p in phases}
            batched = {p: [0.0, 0.0] for p in phases}  # articles, micro-batches
            counter = 0
            order = list(phases)
            for r in range(args.rounds):
                for p in order[r % len(order):] + order[: r % len(order)]:
                    k, clients, per = phases[p]
                    before = batch_counts(servers[k].url)
                    wall, lat = asyncio.run(phase(servers[k].url, names[k], arts, clients, per, counter))
                    after = batch_counts(servers[k].url)
                    batched[p][0] += after[0] - before[0]
                    batched[p][1] += after[1] - before[1]
                    counter += clients * per
                    walls[p].append(clients * per / wall)
                    lats[p].extend(lat)
                print(f"  round {r + 1}/{args.rounds}: " + ", ".join(f"{p} {walls[p][-1]:.3f} cards/s" for p in order)
                      + f"  [{common.load_line('now').split(': ')[1]}]", flush=True)
            rows = []
            for p in order:
                rows.append([p, len(lats[p]), f"{common.median(walls[p]):.3f}",
                             f"{common.percentile(lats[p], 0.5):.2f}", f"{common.percentile(lats[p], 0.95):.2f}",
                             f"{batched[p][0] / max(batched[p][1], 1):.1f}"])
            print()
            print(common.table(rows, ["server, clients", "requests", "cards/s (median)", "p50 s", "p95 s",
                                       "articles per micro-batch"]))
            for k, s in servers.items():
                one = common.median(walls[f"{k}, 1 client"])
                many = common.median(walls[f"{k}, {args.clients} clients"])
                p95 = common.percentile(lats[f"{k}, {args.clients} clients"], 0.95)
                print(f"{k}: {args.clients}-client / 1-client throughput = {many / one:.2f}x; "
                      f"p95 with {args.clients} clients {p95:.2f} s (target < 1 s: {'met' if p95 < 1 else 'missed'}; "
                      f"a closed loop of {args.clients} clients waits about {args.clients}/throughput = "
                      f"{args.clients / many:.2f} s, so < 1 s needs > {args.clients} cards/s)")
            base = "default"
            for k in servers:
                if k != base:
                    for c in (1, args.clients):
                        sfx = "1 client" if c == 1 else f"{c} clients"
                        ratio = common.median(walls[f"{k}, {sfx}"]) / common.median(walls[f"{base}, {sfx}"])
                        print(f"{k} vs {base}, {sfx}: {ratio:.2f}x cards/s")
        finally:
            for s in servers.values():
                s.stop()


if __name__ == "__main__":
    main()
