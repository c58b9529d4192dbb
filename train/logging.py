"""One sink for what a run reports: console, `metrics.jsonl` and (optionally) wandb.

Console output goes only through `RunLogger.message` / `RunLogger.metrics`, which write the
same content to metrics.jsonl, so the file is a complete record of the run. Python
`logging` records and `warnings` of libraries are routed through it too.
"""
from __future__ import annotations

import json
import logging
import math
import os
import secrets
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
WANDB_ID_FILE = "wandb_run_id.txt"


def resolve_wandb_mode(mode: str | None) -> str:
    """online|offline|disabled; unset = $WANDB_MODE, else online only with an API key."""
    mode = mode or os.environ.get("WANDB_MODE")
    if mode:
        if mode not in ("online", "offline", "disabled", "dryrun", "run"):
            raise ValueError(f"logger.wandb.mode: {mode!r} is not one of online, offline, disabled")
        return mode
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    return value


class _Forward(logging.Handler):
    def __init__(self, run: "RunLogger"):
        super().__init__(level=logging.WARNING)
        self.run = run

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.run.message(record.getMessage(), level=record.levelname.lower(), source=record.name)
        except Exception:  # noqa: BLE001 - a logging handler must never raise
            self.handleError(record)


class RunLogger:
    """Writes on the main process only; other processes keep quiet (their errors still raise)."""

    def __init__(self, output_dir: str | Path, *, enabled: bool = True, progress: bool = True, stream=None):
        self.output_dir = Path(output_dir)
        self.enabled = enabled
        self.progress_enabled = progress and enabled
        self.stream = stream or sys.stdout
        self.start = time.time()
        self.context: dict[str, Any] = {"step": 0, "epoch": 0}
        self._wandb = None
        self._bar = None
        self._fh = None
        if enabled:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            path = self.output_dir / METRICS_FILE
            # a killed run may have left half a line; start ours on a fresh one
            torn = path.is_file() and path.stat().st_size and not path.read_bytes().endswith(b"\n")
            # append: a resumed run continues the same file
            self._fh = open(path, "a", encoding="utf-8")
            if torn:
                self._fh.write("\n")
        self._handler = _Forward(self)
        logging.getLogger().addHandler(self._handler)
        logging.captureWarnings(True)

    # ------------------------------------------------------------------ writing
    def _write(self, obj: dict) -> None:
        if self._fh is None:
            return
        self._fh.write(json.dumps({k: _jsonable(v) for k, v in obj.items()}, ensure_ascii=False) + "\n")
        self._fh.flush()

    def _print(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def _base(self) -> dict:
        now = time.time()
        return {
            "time": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds"),
            "elapsed_s": round(now - self.start, 3),
            **self.context,
        }

    def message(self, text: str, *, level: str = "info", **fields) -> None:
        """A console line, also recorded in metrics.jsonl (split "log")."""
        self._write({**self._base(), "split": "log", "level": level, "message": text, **fields})
        prefix = "" if level == "info" else f"{level.upper()}: "
        self._print(prefix + text)

    def metrics(self, values: dict[str, Any], *, split: str, console: bool | str = False, **fields) -> None:
        """One metrics line; wandb gets it too. `console`: True prints every value, a string
        prints that summary of them (evaluations)."""
        values = {k: _jsonable(v) for k, v in values.items()}
        self._write({**self._base(), "split": split, **fields, **values})
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in {**fields, **values}.items() if isinstance(v, (int, float))},
                            step=int(self.context.get("step", 0)))
        if isinstance(console, str):
            self._print(f"[{split} step {self.context.get('step')}] {console}")
        elif console:
            shown = ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
            self._print(f"[{split} step {self.context.get('step')}] {shown}")

    # ------------------------------------------------------------------ progress
    def progress(self, total: int, initial: int = 0):
        if not self.progress_enabled:
            return None
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True, file=sys.stderr)
        return self._bar

    def close_progress(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # ------------------------------------------------------------------ wandb
    def start_wandb(self, cfg: dict | None, config: dict, run_id: str | None = None) -> str | None:
        """Start (or resume, with `run_id`) a wandb run; return its id. No-op when cfg is None."""
        if not self.enabled or not cfg:
            return None
        mode = resolve_wandb_mode(cfg.get("mode"))
        if mode == "disabled":
            self.message("wandb disabled")
            return None
        import wandb

        id_file = self.output_dir / WANDB_ID_FILE
        if run_id is None and id_file.is_file():
            run_id = id_file.read_text().strip() or None
        # secrets, not random: drawing from the seeded RNGs would change the run
        run_id = run_id or secrets.token_hex(4)
        wdir = Path(cfg.get("dir") or self.output_dir)
        wdir.mkdir(parents=True, exist_ok=True)
        self._wandb = wandb.init(
            project=cfg.get("project"),
            entity=cfg.get("entity"),
            group=cfg.get("group"),
            name=cfg.get("name"),
            tags=list(cfg.get("tags") or []),
            mode=mode,
            dir=str(wdir),
            id=run_id,
            resume="allow",
            config=config,
            # silent: our message below is the console line; no stats sampler on 2 shared cores
            settings=wandb.Settings(silent=True, console="off", x_disable_stats=True),
        )
        id_file.write_text(run_id + "\n")
        self.message(f"wandb {mode} run {run_id} in {wdir}", wandb_id=run_id, wandb_mode=mode)
        return run_id

    def close(self) -> None:
        self.close_progress()
        logging.getLogger().removeHandler(self._handler)
        logging.captureWarnings(False)
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class TrainWindow:
    """Train losses and timings since the last train log row (`values` is that row)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)  # micro-batches per head
        # time spent in training steps only (tokenizing included; eval and checkpoints not)
        self.busy, self.busy_cpu, self.samples, self.steps = 0.0, 0.0, 0, 0

    def values(self, lr: float, num_processes: int, epoch_progress: float) -> dict[str, float]:
        n_steps = self.steps  # fewer than log_every right after a resume
        values = {"loss": self.sums["loss"] / n_steps, "lr": lr}
        values.update({k: self.sums[k] / self.counts[k.split("/", 1)[1]] for k in self.sums if k.startswith("loss/")})
        values.update({
            "samples_per_s": self.samples * num_processes / max(self.busy, 1e-9),
            "step_time_s": self.busy / n_steps,
            # CPU seconds of this process per step: comparable across loaded and idle machines
            "step_cpu_s": self.busy_cpu / n_steps,
            "epoch_progress": epoch_progress,
        })
        return values


def read_metrics(path: str | Path) -> list[dict]:
    """All lines of a metrics.jsonl (a half-written last line, from a killed run, is skipped)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out
