"""The accelerate side of a run: its Accelerator (device, processes, mixed precision), the
run dir every process shares, and library output routed through the run logger."""
from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import torch


def mixed_precision(setting: str, cpu: bool) -> str:
    """trainer.mixed_precision resolved: auto = bf16 where the hardware has it natively, else no."""
    setting = str(setting)
    if setting in ("no", "bf16", "fp16"):
        return setting
    if setting != "auto":
        raise ValueError(f"trainer.mixed_precision: {setting!r} is not one of auto, bf16, no")
    if torch.cuda.is_available() and not cpu:
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    # CPU: only with native bf16 (AVX512-BF16/AMX); emulated on AVX2 a training step was
    # ~4x slower than fp32 here
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return "bf16" if native else "no"


def make_accelerator(tr):
    """(Accelerator, mixed precision) for the `trainer` config; sets trainer.num_threads first."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, InitProcessGroupKwargs

    if tr.get("num_threads"):
        torch.set_num_threads(int(tr.num_threads))
    mp = mixed_precision(tr.get("mixed_precision", "auto"), bool(tr.get("cpu")))
    accelerator = Accelerator(
        cpu=bool(tr.get("cpu")),
        mixed_precision=mp,
        # heads without labels in a batch get no gradient
        kwargs_handlers=[
            DistributedDataParallelKwargs(find_unused_parameters=True),
            # the other processes wait while the main one evaluates; CPU evals can be long
            InitProcessGroupKwargs(timeout=timedelta(hours=2)),
        ],
    )
    return accelerator, mp


def shared_output_dir(accelerator, output_dir: str) -> Path:
    """All processes write into rank 0's run dir (their `${now:}` stamps can differ)."""
    from accelerate.utils import broadcast_object_list

    if accelerator.num_processes == 1:
        return Path(output_dir)
    box = [str(output_dir)]
    broadcast_object_list(box, from_process=0)
    mine, shared = Path(output_dir), Path(box[0])
    if mine.resolve() != shared.resolve() and mine.is_dir():
        # Hydra made a run dir for this process too; it holds nothing but its .hydra copy
        if {p.name for p in mine.iterdir()} <= {".hydra"}:
            shutil.rmtree(mine, ignore_errors=True)
    return shared


def quiet_libraries() -> None:
    """Route library output through our logger (python logging) instead of the console."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_default_handler()
    transformers.utils.logging.enable_propagation()
    transformers.utils.logging.disable_progress_bar()
