"""The optimizer side of a run: AdamW parameter groups (head lr, no decay on norms, layer-wise
lr decay), the run's step count and its warmup."""
from __future__ import annotations

import math
import re
from collections import defaultdict

_LAYER = re.compile(r"\.layers?\.(\d+)\.")


def lr_scale(name: str, num_layers: int, decay: float | None) -> float:
    """Layer-wise lr decay: the top encoder layer keeps lr, each layer below gets `decay` times
    the one above, embeddings the lowest; heads and anything above the layers keep 1."""
    if not decay or decay == 1.0 or not name.startswith("encoder."):
        return 1.0
    m = _LAYER.search(name)
    if m:
        depth = int(m.group(1)) + 1
    elif "embeddings" in name:
        depth = 0
    else:
        return 1.0
    return float(decay) ** (num_layers - depth)


def param_groups(model, tr) -> list[dict]:
    """AdamW groups: no decay on biases and norms; fresh heads may take a larger lr; encoder
    layers may take a layer-wise decayed lr (`trainer.layer_decay`). Lexical branches
    (`biascard.model.lexical`) take head_lr x `trainer.lexical_lr_scale` (absent/null = 1), no
    decay on their n-gram bags, in groups after the others (older checkpoints' group order holds)."""
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    lr, head_lr = float(tr.lr), float(tr.get("head_lr") or tr.lr)
    decay = tr.get("layer_decay")
    if decay is not None and not 0.0 < float(decay) <= 1.0:
        raise ValueError(f"trainer.layer_decay: {decay!r} must be in (0, 1] or null")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    num_layers = 1 + max((int(m.group(1)) for n, _ in named if n.startswith("encoder.") and (m := _LAYER.search(n))),
                         default=-1)
    groups: dict[tuple, list] = defaultdict(list)
    lexical: dict[bool, list] = defaultdict(list)
    for n, p in named:
        if n.startswith("lexical."):
            # decoupled decay would shrink every bag row at every step, also while its n-gram is absent
            lexical[n.endswith(no_decay) or ".bag." in n].append(p)
            continue
        is_head = n.startswith("heads.")
        scale = 1.0 if is_head else lr_scale(n, num_layers, decay)
        groups[(is_head, n.endswith(no_decay), scale)].append(p)
    lexical_lr = head_lr * float(tr.get("lexical_lr_scale") or 1.0)
    return [
        {"params": ps, "lr": head_lr if is_head else lr * scale, "weight_decay": 0.0 if nd else float(tr.weight_decay)}
        for (is_head, nd, scale), ps in sorted(groups.items())
    ] + [{"params": ps, "lr": lexical_lr, "weight_decay": 0.0 if nd else float(tr.weight_decay)}
         for nd, ps in sorted(lexical.items())]


def planned_steps(tr, batches_per_epoch: int) -> int:
    """Optimizer steps of a run: trainer.max_steps, else max_epochs of batches / grad_accum."""
    if tr.get("max_steps"):
        return int(tr.max_steps)
    return math.ceil(float(tr.max_epochs) * batches_per_epoch / int(tr.grad_accum))


def warmup_steps(tr, total_steps: int) -> int:
    """trainer.warmup_steps, else warmup_ratio of the run's steps."""
    if tr.get("warmup_steps") is not None:
        return int(tr.warmup_steps)
    return round(float(tr.warmup_ratio) * total_steps)
