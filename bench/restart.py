"""kill -9 and restart: a training run resumed after SIGKILL, and a server restarted on a .mar.

Training: two `biascard train` runs of tests/test_resume.py's smoke config (debug=smoke, 24
steps, grad_accum 2, checkpoints every 2 steps) start together; A runs through, B is killed
with SIGKILL once it holds a checkpoint and has logged step >= `--kill-after`, then run again
with `resume=auto` in its run dir. Reports where B was killed and resumed, the final weights
of A and B (tensors bit-identical, max abs diff), the final validation metrics, and every
pickle-format file (`PICKLE_SUFFIXES`: .pkl, .bin, .pt, ...) in either run dir.

Server: `biascard archive` packs fairness.py's tiny random model into tiny.mar; `biascard serve`
starts on it (pinned with model_sha256, TMPDIR a private dir so other processes' extractions
are not touched), is killed with SIGKILL (its whole process group), and is started again on the
same port. Reports what $TMPDIR/biascard-archives holds at each point, whether the restart
swept the dead process's copy, /ping and one card (checked against the schema), and what is
left after a normal stop (SIGTERM). Writes bench/results/restart.txt and restart.json.

  python bench/restart.py [--kill-after 5] [--skip-train] [--skip-server] [--keep]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import serve_throughput  # noqa: E402
from fairness import tiny_model  # noqa: E402

# tests/test_resume.py's run: crosses two epoch ends after the resume, dropout and accumulation on
TRAIN_OVERRIDES = ["debug=smoke", "logger=none", "trainer.max_steps=24", "trainer.grad_accum=2",
                   "trainer.eval_every_n_steps=6", "trainer.checkpoint_every_n_steps=2"]


def biascard(*args: str) -> list[str]:
    exe = Path(sys.executable).with_name("biascard")
    return [str(exe), *args] if exe.exists() else [sys.executable, "-m", "biascard", *args]


# ---------------------------------------------------------------- training


def train_steps(run_dir: Path) -> list[int]:
    from biascard.train.logging import read_metrics

    path = run_dir / "metrics.jsonl"
    try:
        return [r["step"] for r in read_metrics(path) if r["split"] == "train"]
    except (OSError, ValueError):  # not written yet, or a line being written
        return []


def kill_when_checkpointed(proc: subprocess.Popen, run_dir: Path, after: int, timeout: float = 600) -> int | None:
    """SIGKILL `proc` once it has a checkpoint and has logged step >= after; the step logged."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        steps = train_steps(run_dir)
        if (run_dir / "checkpoints/last/trainer_state.json").is_file() and steps and max(steps) >= after:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return max(steps)
        time.sleep(0.02)
    return None


def compare_weights(a: Path, b: Path) -> dict:
    import torch
    from safetensors.torch import load_file

    wa, wb = load_file(str(a)), load_file(str(b))
    same = sum(1 for k in wa if k in wb and torch.equal(wa[k], wb[k]))
    diff = max((float((wa[k].double() - wb[k].double()).abs().max()) for k in wa if k in wb), default=float("nan"))
    return {"tensors": len(wa), "same_keys": wa.keys() == wb.keys(), "bit_identical_tensors": same,
            "max_abs_diff": diff}


def final_val(run_dir: Path) -> dict:
    from biascard.train.logging import read_metrics

    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["split"] == "val"]
    last = rows[-1]
    skip = {"step", "epoch", "elapsed_s", "val/time_s"}
    return {"step": last["step"], **{k: v for k, v in last.items() if isinstance(v, (int, float)) and k not in skip}}


def pickles(run_dir: Path) -> list[str]:
    from biascard.model.model_dir import PICKLE_SUFFIXES

    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES)


def train_check(work: Path, after: int) -> dict:
    a_dir, b_dir = work / "train-a", work / "train-b"
    subprocess.run(biascard("data", "prepare", "babe", "gvfc"), check=True, capture_output=True)  # cached once
    cmd = lambda d, *x: biascard("train", *TRAIN_OVERRIDES, f"hydra.run.dir={d}", *x)  # noqa: E731
    with contextlib.ExitStack() as stack:
        logs = {k: stack.enter_context(open(work / f"train-{k}.log", "w")) for k in ("a", "b", "b-resume")}
        t0 = time.perf_counter()
        a = subprocess.Popen(cmd(a_dir), stdout=logs["a"], stderr=subprocess.STDOUT, start_new_session=True)
        b = subprocess.Popen(cmd(b_dir), stdout=logs["b"], stderr=subprocess.STDOUT, start_new_session=True)
        killed = kill_when_checkpointed(b, b_dir, after)
        state = json.loads((b_dir / "checkpoints/last/trainer_state.json").read_text())
        left = sorted(p.name for p in (b_dir / "checkpoints").iterdir())
        a.wait()
        a_wall = time.perf_counter() - t0
        t1 = time.perf_counter()
        r = subprocess.run(cmd(b_dir, "resume=auto"), stdout=logs["b-resume"], stderr=subprocess.STDOUT, check=False)
        resume_wall = time.perf_counter() - t1
    resumed = [line for line in (work / "train-b-resume.log").read_text().splitlines() if "resumed from" in line]
    out = {"a_returncode": a.returncode, "b_returncode_after_kill": b.returncode, "killed_after_step": killed,
           "checkpoint_step": state["step"], "checkpoints_after_kill": left, "resume_returncode": r.returncode,
           "resumed_line": resumed[0].strip() if resumed else None, "a_wall_s": a_wall, "resume_wall_s": resume_wall,
           "train_steps_b": sorted(set(train_steps(b_dir)))}
    if a.returncode == 0 and r.returncode == 0:
        out["weights_last_checkpoint"] = compare_weights(a_dir / "checkpoints/last/model.safetensors",
                                                         b_dir / "checkpoints/last/model.safetensors")
        out["weights_model_dir"] = compare_weights(a_dir / "model/model.safetensors", b_dir / "model/model.safetensors")
        va, vb = final_val(a_dir), final_val(b_dir)
        out["final_val"] = {"a": va, "b": vb, "same_keys": va.keys() == vb.keys(),
                            "max_abs_diff": max(abs(va[k] - vb[k]) for k in va if k in vb and k != "step")}
    out["pickle_files"] = {"a": pickles(a_dir), "b": pickles(b_dir)}
    return out


# ---------------------------------------------------------------- server


@contextlib.contextmanager
def fixed_port(port: int):
    """serve_throughput.Server picks a free port; a restart must take the same one."""
    real = serve_throughput.free_port
    serve_throughput.free_port = lambda: port
    try:
        yield
    finally:
        serve_throughput.free_port = real


def listing(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def card_check(url: str, name: str) -> dict:
    import httpx

    from biascard.card.contract import CardError, validate

    ping = httpx.get(f"{url}/ping", timeout=30)
    text = (common.REPO / "serve" / "samples" / "article.txt").read_text(encoding="utf-8")
    r = httpx.post(f"{url}/predictions/{name}", json={"text": text}, timeout=120)
    valid = None
    if r.status_code == 200:
        try:
            validate(r.json())
            valid = True
        except (CardError, ValueError):
            valid = False
    return {"ping_status": ping.status_code, "ping_body": ping.text[:200], "card_status": r.status_code,
            "card_valid": valid}


def server_check(work: Path) -> dict:
    model = tiny_model(work / "model")
    mar = work / "tiny.mar"
    done = subprocess.run(biascard("archive", "--model", str(model), "--output", str(mar)),
                          check=True, capture_output=True, text=True)
    sha = next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("sha256 "))
    tmp = work / "tmpdir"
    tmp.mkdir()
    root = tmp / "biascard-archives"
    os.environ["TMPDIR"] = str(tmp)  # inherited by the servers; this process's tempdir is already set
    over = [f"model_sha256={sha}"]
    first = serve_throughput.Server("restart-1", mar, over, work)
    name = first.wait()
    out = {"archive": mar.name, "model_name": name, "first_pid": first.proc.pid, "while_running": listing(root),
           "first_card": card_check(first.url, name)}
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait()
    first.stop()  # only closes its log now
    out["first_returncode"] = first.proc.returncode
    out["after_kill"] = listing(root)
    out["after_kill_owner_alive"] = {d: pid_alive(int(d.split("-")[0])) for d in out["after_kill"]}
    t = time.perf_counter()
    with fixed_port(first.port):
        second = serve_throughput.Server("restart-2", mar, over, work)
    try:
        second.wait()
        out["restart_ready_s"] = time.perf_counter() - t
        out["same_port"] = second.port == first.port
        out["second_pid"] = second.proc.pid
        out["after_restart"] = listing(root)
        out["stale_swept"] = not set(out["after_kill"]) & set(out["after_restart"])
        out["second_card"] = card_check(second.url, name)
    finally:
        second.stop()
    out["second_returncode_after_sigterm"] = second.proc.returncode
    out["after_sigterm"] = listing(root)
    return out


# ---------------------------------------------------------------- output


def print_train(t: dict) -> None:
    print("\ntraining (kill -9, then resume=auto):")
    for k in ("a_returncode", "b_returncode_after_kill", "killed_after_step", "checkpoint_step",
              "checkpoints_after_kill", "resume_returncode", "resumed_line", "train_steps_b"):
        print(f"  {k}: {t[k]}")
    print(f"  wall: A {t['a_wall_s']:.1f} s (B ran beside it until the kill); resumed B {t['resume_wall_s']:.1f} s")
    for k in ("weights_last_checkpoint", "weights_model_dir"):
        if k in t:
            w = t[k]
            print(f"  {k}: {w['bit_identical_tensors']}/{w['tensors']} tensors bit-identical, "
                  f"max abs diff {w['max_abs_diff']:.3g}, same keys {w['same_keys']}")
    if "final_val" in t:
        v = t["final_val"]
        print(f"  final validation (step {v['a']['step']}): {len(v['a']) - 1} numbers, max abs diff A vs B "
              f"{v['max_abs_diff']:.3g}; val/macro_f1_mean A {v['a'].get('val/macro_f1_mean')} "
              f"B {v['b'].get('val/macro_f1_mean')}")
    print(f"  pickle-format files: A {t['pickle_files']['a'] or 'none'}, B {t['pickle_files']['b'] or 'none'}")


def print_server(s: dict) -> None:
    print("\nserver on a .mar (kill -9, then restart on the same port):")
    for k, v in s.items():
        print(f"  {k}: {v:.2f}" if isinstance(v, float) else f"  {k}: {v}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kill-after", type=int, default=5, help="kill the training run once it logged this step")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--skip-server", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (run dirs, logs)")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    results = {}
    with common.report("restart", argv, save=not args.no_save):
        work = Path(tempfile.mkdtemp(prefix="biascard-restart-"))
        print(f"work dir: {work}")
        if not args.skip_train:
            results["train"] = train_check(work, args.kill_after)
            print_train(results["train"])
        if not args.skip_server:
            results["server"] = server_check(work)
            print_server(results["server"])
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if not args.no_save:
        (common.RESULTS / "restart.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
